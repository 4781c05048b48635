"""Reading a running (or just stopped) server's ledger from a test: the row arrives when the
server's ledger thread has written it, so the test polls, with a generous bound."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_for_row(
    ledger: Path, query: str, *params: Any, until: Callable[[tuple[Any, ...]], bool] = bool, timeout_s: float = 30
) -> tuple[Any, ...]:
    """The first row `query` returns once `until(row)` holds; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    row: tuple[Any, ...] | None = None
    while time.monotonic() < deadline:
        if ledger.exists():
            conn = sqlite3.connect(ledger, timeout=5)
            try:
                row = conn.execute(query, params).fetchone()
            except sqlite3.OperationalError:
                row = None  # not migrated yet
            finally:
                conn.close()
            if row is not None and until(row):
                return tuple(row)
        time.sleep(0.1)
    raise AssertionError(f"no such ledger row in {timeout_s} s (last seen: {row})")
