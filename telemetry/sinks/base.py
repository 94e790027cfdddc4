"""The Sink contract: where forwarded line-protocol batches go.

Who calls it: exactly one :class:`telemetry.sinks.forwarder.Forwarder` per sink, one ``write`` at a
time, from the event loop. A sink does no buffering, batching or retrying: the forwarder owns
those. A sink only sends a batch once and translates the outcome into
:mod:`telemetry.errors` (``error_from_response`` below does it for HTTP answers).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from telemetry.errors import SinkAuthError, SinkError, SinkRejected, SinkTooLarge, SinkUnavailable


@runtime_checkable
class Sink(Protocol):
    name: str
    """Stable name; it keys the sink's durable cursor in the store."""

    async def write(self, lines: Sequence[str] | bytes) -> None:
        """Send the lines (or a body of ``\n``-separated UTF-8 lines, as the store keeps them)
        as one request; return only when the server has accepted all of them.

        Raises
        ------
        SinkUnavailable
            Transport error, timeout, 429 or 5xx: send again later (honour ``retry_after_s``).
        SinkAuthError
            401/403.
        SinkTooLarge
            413: send smaller batches.
        SinkRejected
            Other 4xx: some lines are bad.
        """
        ...

    async def close(self) -> None:
        """Release connections; called once when the forwarder stops."""
        ...


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)


def error_from_response(status: int, body: bytes | str | None, headers: Mapping[str, str] | None) -> SinkError:
    """Translate a non-2xx HTTP answer from a write endpoint into the error hierarchy."""
    if isinstance(body, bytes):
        text = body.decode("utf-8", "replace")
    else:
        text = body or ""
    text = text.strip()[:1000]
    retry_after = None
    if headers:
        lowered = {k.lower(): v for k, v in headers.items()}
        retry_after = parse_retry_after(lowered.get("retry-after"))
    message = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    if status in (401, 403):
        return SinkAuthError(message, status=status)
    if status == 413:
        return SinkTooLarge(message, status=status)
    if status == 429 or status >= 500:
        return SinkUnavailable(message, retryable=True, retry_after_s=retry_after, status=status)
    if 400 <= status < 500:
        return SinkRejected(message, status=status)
    return SinkUnavailable(message, retryable=True, retry_after_s=retry_after, status=status)
