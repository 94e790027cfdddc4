# The fermentry image: the service and the simulators (same distribution, one command).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY telemetry ./telemetry
COPY controllers ./controllers
COPY simulators ./simulators
COPY config ./config
RUN pip install --no-cache-dir .
ENTRYPOINT ["fermentry"]
CMD ["--help"]
