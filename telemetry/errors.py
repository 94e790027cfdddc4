"""The small exception hierarchy of Fermentry's telemetry side.

Library exceptions (urllib3, influxdb-client, sqlite3) are translated into these at the
boundary, so a runner decides what to do from the class and two attributes alone: whether a
retry can help (``retryable``) and how long the server asked us to wait (``retry_after_s``).
"""

from __future__ import annotations

from collections.abc import Sequence


class FermentryError(Exception):
    """Base class of every error Fermentry raises on purpose."""


class ConfigError(FermentryError):
    """A configuration value is missing or invalid; raised at start-up, never retried."""


class StoreError(FermentryError):
    """The durable local store could not take or give data (disk full, corrupt file)."""


class SinkError(FermentryError):
    """A sink could not take a batch.

    Parameters
    ----------
    message : str
        What went wrong, with the server's own words when it sent any.
    retryable : bool
        True when sending the same batch again later can succeed (server down, overloaded).
    retry_after_s : float or None
        Seconds the server asked us to wait (``Retry-After``), None when it did not say.
    status : int or None
        HTTP status code, None for transport errors.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.status = status


class SinkUnavailable(SinkError):
    """Connection refused/reset, timeout, 5xx, 429: the batch stays and is sent again later."""


class SinkAuthError(SinkError):
    """401/403: credentials are wrong. Data is kept; an operator has to act."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=False, status=status)


class SinkTooLarge(SinkError):
    """413: the request body was too large; the runner splits the batch and retries the halves."""

    def __init__(self, message: str, *, status: int | None = 413) -> None:
        super().__init__(message, retryable=False, status=status)


class SinkRejected(SinkError):
    """400-class: the server refused (some of) the lines; resending the same lines cannot help.

    ``bad_lines`` holds the refused lines when the server named them, else it is empty and the
    runner bisects the batch to find them.
    """

    def __init__(self, message: str, *, bad_lines: Sequence[str] = (), status: int | None = 400) -> None:
        super().__init__(message, retryable=False, status=status)
        self.bad_lines = tuple(bad_lines)
