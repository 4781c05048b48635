"""A debounce that follows the user's typing speed.

While someone types in a burst, a request made after one keystroke will almost
always be superseded by the next one; starting a generation for it only takes the
model away from the request that matters. The wait is a little longer than the
typical gap between the user's recent keystrokes, within bounds, and nothing at all
when they have paused (a cursor move, the first key after a break).
"""

from __future__ import annotations

import statistics
import time
from collections import deque


class AdaptiveDebounce:
    def __init__(
        self,
        min_ms: float = 0.0,
        max_ms: float = 120.0,
        *,
        factor: float = 1.4,
        burst_gap_ms: float = 600.0,
        history: int = 12,
    ) -> None:
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.factor = factor
        self.burst_gap_ms = burst_gap_ms
        self._gaps: deque[float] = deque(maxlen=history)
        self._last: float | None = None

    def keystroke(self, now: float | None = None) -> None:
        """Called for every document change."""
        now = time.monotonic() if now is None else now
        if self._last is not None:
            gap = (now - self._last) * 1000.0
            if gap < self.burst_gap_ms:  # pauses say nothing about typing speed
                self._gaps.append(gap)
        self._last = now

    def delay_ms(self, now: float | None = None) -> float:
        """How long a new automatic request should wait before it starts a generation."""
        now = time.monotonic() if now is None else now
        if self._last is None or not self._gaps:
            return self.min_ms
        since_key = (now - self._last) * 1000.0
        if since_key >= self.burst_gap_ms:
            return self.min_ms  # not typing: answer at once
        expected = statistics.median(self._gaps) * self.factor
        # Time already spent since the keystroke counts towards the wait.
        return max(self.min_ms, min(self.max_ms, expected) - since_key)
