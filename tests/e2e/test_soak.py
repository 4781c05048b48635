"""A short soak (the long one is `make bench`): random edits, half the requests cancelled."""

from __future__ import annotations

from pathlib import Path

from bench.soak import run_soak


async def test_a_thousand_requests_after_warm_up_leak_nothing(tiny_model_path: Path, tmp_path: Path):
    result = await run_soak(tiny_model_path, 2000, home=tmp_path / "home", warmup=1000)
    assert result.unanswered == 0  # no deadlock: every request that was not cancelled got its answer
    assert result.errors == {}
    assert 800 <= result.cancelled <= 1200 and result.answered >= 800
    assert result.end.threads <= result.warm.threads
    assert result.end.fds <= result.warm.fds
    assert result.rss_growth < 0.05, result.to_json()
    # pygls keeps a future per notification unless the server drops it: thousands would be left.
    assert result.tracked_requests <= 1
