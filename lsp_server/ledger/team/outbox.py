"""The local side of shipping: the rows the SQLite ledger has queued for the team ledger.

Triggers queue a row when it is inserted and again when its feedback changes (schema.py),
in the writer's own transaction. The shipper reads a batch with the version each entry had,
and after PostgreSQL committed the batch deletes only the entries whose version is unchanged:
a row whose feedback arrived meanwhile stays queued and ships again. A crash between the
PostgreSQL commit and this delete ships the batch twice, which the team ledger absorbs (rows
are upserted by their stable id): at least once, never duplicated.

The outbox has its own connection, so shipping never waits for the ledger thread's lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ..connection import open_connection
from ..schema import COLUMNS, ledger_id

_SHIPPED = ("row_id", "version", *(c for c in COLUMNS if c != "reasons"))
_TAKE = (f"SELECT q.row_id, q.version, {', '.join(f'a.{c}' for c in _SHIPPED[2:])} "
         "FROM ship_queue q JOIN attempts a ON a.id = q.row_id WHERE q.row_id <= ? ORDER BY q.row_id LIMIT ?")


class QueuedRow(NamedTuple):
    """A queued row as the team ledger needs it (no reason texts: they stay on the machine)."""

    row_id: int
    version: int
    ts: float
    request_id: str
    attempt: int
    task: str
    tier: str
    backend: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_ms: float
    cost_nusd: int
    frontier_cost_nusd: int
    outcome: str
    escalated: int
    escalation_reason: str | None
    error_kind: str | None
    policy_hash: str | None
    shown: int | None
    accepted: int | None
    repo: str | None
    frontier_price: str | None


assert QueuedRow._fields == _SHIPPED


class Outbox:
    def __init__(self, ledger_path: Path, busy_timeout_s: float = 30.0) -> None:
        self.path = ledger_path
        self._conn = open_connection(ledger_path, busy_timeout_s)
        self.ledger_id = ledger_id(self._conn)

    def pending(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM ship_queue").fetchone()[0])

    def last_queued(self) -> int:
        """The newest queued row id: `sync` ships up to here and stops, however busy the writers."""
        return int(self._conn.execute("SELECT COALESCE(MAX(row_id), 0) FROM ship_queue").fetchone()[0])

    def take(self, limit: int, up_to: int) -> list[QueuedRow]:
        return [QueuedRow._make(values) for values in self._conn.execute(_TAKE, (up_to, limit))]

    def shipped(self, rows: Sequence[QueuedRow]) -> None:
        """Forget entries that are in the team ledger, unless they changed since they were read."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("DELETE FROM ship_queue WHERE row_id = ? AND version = ?",
                                   [(r.row_id, r.version) for r in rows])
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error:
            pass


def uid(ledger: str, row_id: int) -> str:
    return f"{ledger}:{row_id}"


__all__ = ["Outbox", "QueuedRow", "uid"]
