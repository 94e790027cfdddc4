"""Acquisition errors: asyncua's exceptions are translated into these at the boundary."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from asyncua import ua

from telemetry.errors import FermentryError

# status codes that mean "your credentials or certificates are wrong": retrying alone cannot fix them
_REFUSALS = {
    ua.StatusCodes.BadCertificateUntrusted,
    ua.StatusCodes.BadCertificateInvalid,
    ua.StatusCodes.BadCertificateTimeInvalid,
    ua.StatusCodes.BadCertificateUriInvalid,
    ua.StatusCodes.BadCertificateUseNotAllowed,
    ua.StatusCodes.BadSecurityChecksFailed,
    ua.StatusCodes.BadSecurityPolicyRejected,
    ua.StatusCodes.BadUserAccessDenied,
    ua.StatusCodes.BadIdentityTokenInvalid,
    ua.StatusCodes.BadIdentityTokenRejected,
}


class AcquisitionError(FermentryError):
    """An endpoint could not be reached or used.

    ``retryable`` is False when the server refused us (certificates, credentials):
    the supervisor keeps trying at its longest back-off, but an operator has to act.
    ``status`` is the OPC UA status code when the server sent one.
    """

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class EndpointUnavailable(AcquisitionError):
    """Connection refused, reset, timed out, or the session died."""


class EndpointRefused(AcquisitionError):
    """The server refused our certificate or credentials, or we refused its certificate."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=False, status=status)


@contextmanager
def map_exceptions(endpoint: str, doing: str) -> Iterator[None]:
    """Translate asyncua/transport exceptions raised while ``doing`` into AcquisitionErrors."""
    try:
        yield
    except ua.UaStatusCodeError as exc:
        code = exc.code
        name = ua.StatusCode(code).name
        cls = EndpointRefused if code in _REFUSALS else EndpointUnavailable
        raise cls(f"{endpoint}: {doing}: {name}", status=code) from exc
    except (OSError, asyncio.TimeoutError, ConnectionError, EOFError) as exc:
        raise EndpointUnavailable(f"{endpoint}: {doing}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
    except ua.UaError as exc:
        # e.g. "Server certificate mismatch", endpoint not found for the requested policy
        raise EndpointRefused(f"{endpoint}: {doing}: {exc}") from exc
