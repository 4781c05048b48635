"""A short soak (the long one is `make bench`): random edits, half the requests cancelled."""

from __future__ import annotations

import os
from pathlib import Path

from bench.soak import run_soak


async def test_a_thousand_requests_after_warm_up_leak_nothing(tiny_model_path: Path, tmp_path: Path):
    result = await run_soak(tiny_model_path, 2000, home=tmp_path / "home", warmup=1000)
    assert result.unanswered == 0  # no deadlock: every request that was not cancelled got its answer
    assert result.errors == {}
    assert result.answered == result.requests - result.cancelled
    # Every cancelled request got exactly one response: the cancellation error, or its answer when
    # that won the race; and the server did honour the cancels (a few milliseconds is early enough).
    assert result.cancel_acknowledged + result.cancel_too_late == result.cancelled, result.to_json()
    assert result.cancel_acknowledged > result.cancelled // 2, result.to_json()
    # Thread pools grow on demand up to their cap (asyncio's default executor, which the server
    # uses per request, holds min(32, CPUs + 4)); a leak grows with the requests, past any cap.
    assert result.end.threads <= result.warm.threads + min(32, (os.cpu_count() or 1) + 4), result.to_json()
    assert result.end.fds <= result.warm.fds
    assert result.rss_growth < 0.05, result.to_json()
    # pygls keeps a future per notification unless the server drops it: thousands would be left.
    assert result.tracked_requests <= 1
