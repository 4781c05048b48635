"""A circuit breaker per remote tier: after repeated failures the tier rests for a while."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lsp_server.backends.base import (
    ProviderError,
)

log = logging.getLogger(__name__)


# Failures that say nothing about the tier's health: the caller's own mistakes.
_NOT_COUNTED: frozenset[str] = frozenset({"bad_request", "missing_key", "insecure_transport", "cooling_down"})


class Cooldown:
    """Per-backend circuit breaker.

    After `failures` consecutive failed calls (a call's retries count once) the tier
    rests for `cooldown_s`: calls fail at once with `cooling_down`, no request is
    sent. Afterwards one call is let through; if it fails too the tier rests again,
    a success closes the breaker.
    """

    def __init__(
        self, failures: int = 3, cooldown_s: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or cooldown_s < 0:
            raise ValueError("failures must be >= 1 and cooldown_s >= 0")
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def remaining_s(self) -> float:
        return max(0.0, self._open_until - self._clock())

    @property
    def is_open(self) -> bool:
        return self.remaining_s > 0

    def check(self, name: str) -> None:
        remaining = self.remaining_s
        if remaining > 0:
            raise ProviderError(
                "cooling_down",
                f"{name} is resting after {self._failures} consecutive failures; next try in {remaining:.1f}s",
                retry_after_s=remaining,
            )

    def record_success(self) -> None:
        self._failures = 0
        self._open_until = 0.0

    def record_failure(self, error: ProviderError | None = None) -> None:
        if error is not None and error.kind in _NOT_COUNTED:
            return
        self._failures += 1
        if self._failures >= self.threshold:
            self._open_until = self._clock() + self.cooldown_s
            log.warning("remote tier cooling down for %.1fs after %d failures", self.cooldown_s, self._failures)

    def __repr__(self) -> str:
        return f"Cooldown(failures={self.threshold}, cooldown_s={self.cooldown_s}, open={self.is_open})"
