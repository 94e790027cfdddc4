"""The feed bank's state across service restarts, one store key per reactor.

A feed started by a one-off event (an OUR drop at depletion) must resume after a crash or an
update, or the culture starves; the totaliser must go on counting from what was already fed.
After each control scan the service saves each reactor's rows of
:meth:`controllers.feeding.FeedBank.snapshot` under ``feeds/<reactor>`` together with the
reactor's batch id; at start it restores a reactor's rows only if the saved batch id is the
reactor's current one, so a new batch never inherits an old batch's feeds. The save's process
time goes along: a feed that was pumping when the service went away kept pumping at its last
rate (the PLC holds the setpoint), and the restore credits that volume to its totaliser.

A reactor's restore waits until its batch id is known (read from the plant after connecting);
until it is decided nothing is saved for it, so the saved state is never overwritten by the
fresh bank's. Store calls are blocking: the runner runs them in a worker thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

from controllers.feeding import FeedBank, FeedEvent
from telemetry.store import Store

log = logging.getLogger(__name__)


def state_key(reactor: str) -> str:
    return f"feeds/{reactor}"


class FeedStateKeeper:
    """Saves and restores one :class:`FeedBank`'s state in a :class:`Store`.

    Parameters
    ----------
    bank : FeedBank
        The service's bank; row reactor indexes follow ``reactors``.
    reactors : sequence of str
        Reactor names in the bank's order.
    store : Store
    """

    def __init__(self, bank: FeedBank, reactors: Sequence[str], store: Store) -> None:
        self.bank = bank
        self.reactors = tuple(reactors)
        self.store = store
        with_feeds = {inst.reactor for inst in bank.instances}
        self.pending: set[str] = {r for i, r in enumerate(self.reactors) if i in with_feeds}
        """Reactors whose restore is not decided yet (batch id unknown): never saved meanwhile."""
        self._saved: dict[str, str] = {}  # reactor -> JSON of the state last saved (without its time)
        self._pending_saved: dict[str, str] = {}

    def restore(self, batch_of: Mapping[str, str], known: set[str], t_s: float) -> list[FeedEvent]:
        """Restore the pending reactors whose batch id is ``known`` (blocking: reads the store).

        Returns the bank's ``feed_restored`` events; a reactor whose saved batch differs, or
        without saved state, just starts afresh.
        """
        events: list[FeedEvent] = []
        for reactor in sorted(self.pending & known):
            self.pending.discard(reactor)
            raw = self.store.get_state(state_key(reactor))
            if raw is None:
                continue
            index = self.reactors.index(reactor)
            try:
                saved = json.loads(raw)
                if saved.get("batch") != batch_of.get(reactor, "unknown"):
                    log.info("%s: saved feed state is of batch %r, not %r: feeds start afresh", reactor,
                             saved.get("batch"), batch_of.get(reactor))
                    continue
                # The key names the reactor: its rows go to its present index (the order may change).
                rows = [{**row, "reactor": index} for row in saved["bank"]["rows"]]
                counted = saved.get("counted_until_s")
                events += self.bank.restore({**saved["bank"], "rows": rows},
                                            rows_ok=lambda _feed, r: r == index, t_s=t_s,
                                            counted_until_s=None if counted is None else float(counted))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.error("%s: saved feed state unreadable, feeds start afresh: %r", reactor, exc)
        return events

    def changes(self, batch_of: Mapping[str, str], counted_until_s: float | None = None) -> dict[str, str]:
        """Store key -> JSON of each decided reactor whose state changed since the last save.

        ``counted_until_s`` (the last scan's time plus its interval: how far the totalisers
        have counted) is saved along, so a restore can credit what the pumps fed while the
        service was away; it alone does not count as a change.
        """
        by_reactor: dict[int, list[dict[str, object]]] = {}
        snap = self.bank.snapshot()
        for row in snap["rows"]:  # type: ignore[attr-defined]
            by_reactor.setdefault(int(row["reactor"]), []).append(row)
        out = {}
        for index, rows in by_reactor.items():
            reactor = self.reactors[index]
            if reactor in self.pending:
                continue
            state = {"batch": batch_of.get(reactor, "unknown"), "bank": {"version": snap["version"], "rows": rows}}
            text = json.dumps(state, allow_nan=False)
            if self._saved.get(reactor) != text:
                self._pending_saved[reactor] = text
                out[state_key(reactor)] = text if counted_until_s is None else json.dumps(
                    {**state, "counted_until_s": counted_until_s}, allow_nan=False)
        return out

    def save(self, items: Mapping[str, str]) -> None:
        """Commit what :meth:`changes` returned (blocking: one transaction)."""
        self.store.put_states(items)
        prefix = len(state_key(""))
        for key in items:
            text = self._pending_saved.pop(key[prefix:], None)
            if text is not None:
                self._saved[key[prefix:]] = text
