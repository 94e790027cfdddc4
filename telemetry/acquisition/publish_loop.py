"""Several PublishRequests outstanding per session, as OPC UA Part 4 5.13.5 recommends.

A server answers a subscription's publishing cycle with a PublishRequest the client sent
earlier; when none is waiting, the notifications wait for the next one. asyncua's client keeps
exactly one request outstanding: it sends the next only after the previous response has been
decoded and handed to the subscription. Whenever the client's event loop is busy at that moment
(a control scan writing its outputs, the recorder encoding a batch), the server's next cycle
finds no request and the values sit on the server until one arrives: late by however long the
client was busy, on the very values a control scan waits for.

:func:`install_publish_pipeline` replaces the session's publish loop (this session only) with one
that keeps ``depth`` requests outstanding. Responses are handled strictly in the order the
requests were sent, which is the order the server answers them (it takes waiting requests
first in, first out), so a tag's values still reach the table in order. Acknowledgements ride
on the next request sent, as in asyncua's loop; its handling of each outcome is kept:
``BadTimeout`` and an unparsable response are skipped, ``BadNoSubscription`` or a response for
subscription 0 ends the loop, a broken connection or any other failure is logged once per run
of failures (a connection error without a traceback) and retried every second.
"""

from __future__ import annotations

import asyncio
from collections import deque

from asyncua import ua
from asyncua.client.ua_session import SessionState, UaSession
from asyncua.ua.uaerrors import BadNoSubscription, BadTimeout, UaStructParsingError

__all__ = ["DEFAULT_DEPTH", "install_publish_pipeline"]

#: requests kept outstanding: one being answered, one waiting for the next cycle, one spare
DEFAULT_DEPTH = 3
_ENDED = (SessionState.CLOSING, SessionState.CLOSED)


def install_publish_pipeline(session: UaSession, depth: int = DEFAULT_DEPTH) -> None:
    """Make ``session`` keep ``depth`` PublishRequests outstanding once its publish loop starts.

    An instance patch of ``UaSession._publish_loop``, which asyncua starts when the session's
    first subscription is created; install before that. The session's own ``publish`` (which
    may be patched too, see ``publish_decode.install_fast_publish``) sends each request.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth!r}")

    async def publish_loop() -> None:
        acks: list[ua.SubscriptionAcknowledgement] = []
        failing = False  # the last request failed: the next failure is not logged again
        inflight: deque[asyncio.Future[ua.PublishResponse]] = deque()
        try:
            while session._state not in _ENDED:
                while len(inflight) < depth:
                    inflight.append(asyncio.ensure_future(session.publish(acks)))
                    acks = []
                try:
                    response = await inflight.popleft()
                except (BadTimeout, UaStructParsingError):
                    continue
                except BadNoSubscription:
                    session.logger.info("BadNoSubscription received, ignoring because it's probably valid.")
                    return
                except asyncio.CancelledError:
                    raise
                except ConnectionError as exc:
                    # The connection broke: every outstanding request fails the same way. The
                    # endpoint's supervisor reports the loss and reconnects; here it is said once
                    # per outage, not once a second, and without a traceback.
                    if not failing:
                        session.logger.warning("publishing stopped: %s; retrying every 1 s", exc)
                    failing = True
                    _cancel(inflight)
                    await asyncio.sleep(1.0)
                    continue
                except Exception:
                    if not failing:
                        session.logger.exception("Publish iteration crashed; retrying every 1 s")
                    failing = True
                    _cancel(inflight)
                    await asyncio.sleep(1.0)
                    continue
                if failing:
                    session.logger.info("publishing resumed")
                    failing = False
                subscription_id = response.Parameters.SubscriptionId
                if not subscription_id:  # Part 4 5.13.5: no subscriptions left
                    return
                callback = session._subscription_callbacks.get(subscription_id)
                if callback is None:
                    session.logger.warning("Received data for unknown subscription %s active are %s",
                                           subscription_id, session._subscription_callbacks.keys())
                else:
                    try:
                        result = callback(response.Parameters)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:
                        session.logger.exception("Exception while calling user callback")
                if response.Parameters.NotificationMessage.NotificationData:
                    acks.append(ua.SubscriptionAcknowledgement(
                        SubscriptionId=subscription_id, SequenceNumber=response.Parameters.NotificationMessage.SequenceNumber))
        finally:
            _cancel(inflight)

    session._publish_loop = publish_loop  # type: ignore[method-assign]


def _cancel(inflight: deque[asyncio.Future[ua.PublishResponse]]) -> None:
    """Cancel the outstanding requests, their outcomes retrieved (nobody awaits them any more)."""
    while inflight:
        future = inflight.popleft()
        future.cancel()
        future.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[ua.PublishResponse]) -> None:
    if not future.cancelled():
        future.exception()
