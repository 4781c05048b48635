"""Retries of a remote call: how many, how long in all, and how long to wait between them."""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from lsp_server.backends.base import CancelToken, ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed request again.

    Exponential backoff with +/- `jitter` (a fraction) so that many clients do not
    retry in step; a server's `Retry-After` replaces the backoff. No retry is started
    that would end after `deadline_s` from the first attempt.
    """

    max_attempts: int = 3
    base_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter: float = 0.2
    deadline_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_backoff_s < 0 or self.max_backoff_s < 0 or self.deadline_s <= 0:
            raise ValueError("backoffs must be >= 0 and deadline_s > 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")

    def delay_s(self, attempt: int, error: ProviderError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if error.retry_after_s is not None:
            return max(0.0, error.retry_after_s)
        raw = min(self.max_backoff_s, self.base_backoff_s * (2 ** (attempt - 1)))
        return max(0.0, raw * (1.0 + random.uniform(-self.jitter, self.jitter)))


NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: either delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


async def sleep_unless_cancelled(
    delay: float, cancel: CancelToken | None, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
) -> bool:
    """Sleep `delay` seconds in short steps; True if the cancel token fired meanwhile."""
    end = clock() + delay
    while True:
        if cancel is not None and cancel.cancelled:
            return True
        remaining = end - clock()
        if remaining <= 0:
            return False
        await sleep(min(remaining, 0.05))
