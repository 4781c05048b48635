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
from typing import Any

from lsp_server.ledger.connection import open_connection
from lsp_server.ledger.schema import COLUMNS, PARTIAL_ACCEPT_COLUMNS, ledger_id

# What ships of a row: no reason texts, they stay on the machine. Taken as plain tuples
# (version first, then the values as SQLite holds them) so that shipping a batch is a few C
# calls per row and barely holds the GIL while the server answers requests.
SHIPPED_COLUMNS = ("row_id", *(c for c in COLUMNS if c != "reasons" and c not in PARTIAL_ACCEPT_COLUMNS))
_TAKE = (
    f"SELECT q.version, q.row_id, {', '.join(f'a.{c}' for c in SHIPPED_COLUMNS[1:])} "
    "FROM ship_queue q JOIN attempts a ON a.id = q.row_id WHERE q.row_id <= ? ORDER BY q.row_id LIMIT ?"
)
Queued = tuple[Any, ...]  # (version, row_id, *the rest of SHIPPED_COLUMNS)


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

    def take(self, limit: int, up_to: int) -> list[Queued]:
        return self._conn.execute(_TAKE, (up_to, limit)).fetchall()

    def shipped(self, rows: Sequence[Queued]) -> None:
        """Forget entries that are in the team ledger, unless they changed since they were read."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "DELETE FROM ship_queue WHERE row_id = ? AND version = ?", [(r[1], r[0]) for r in rows]
            )
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


__all__ = ["SHIPPED_COLUMNS", "Outbox", "Queued"]
