"""Reconnect back-off: exponential, capped, with jitter so many clients do not retry in step."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial_s * factor**n`` capped at ``max_s``, each scaled by ``1 +- jitter``.

    Jitter matters when one plant network hosts many fermenters: after a switch reboots,
    their clients would otherwise reconnect in lock-step and hit each server at once.
    """

    def __init__(
        self,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not (0 < initial_s <= max_s) or factor < 1 or not 0 <= jitter < 1:
            raise ValueError(f"need 0 < initial_s <= max_s, factor >= 1, 0 <= jitter < 1; got {initial_s}, {max_s}, {factor}, {jitter}")
        self.initial_s, self.max_s, self.factor, self.jitter = initial_s, max_s, factor, jitter
        self._rng = rng or random.Random()
        self._n = 0

    def next_delay(self) -> float:
        """The wait before the next attempt (seconds); each call lengthens the next one."""
        base = min(self.max_s, self.initial_s * self.factor**self._n)
        self._n = min(self._n + 1, 64)  # factor**n stays finite
        return min(self.max_s, base * (1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)))

    def reset(self) -> None:
        """Call after a success: the next failure starts from ``initial_s`` again."""
        self._n = 0
