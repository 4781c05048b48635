"""Opening the SQLite ledger for several processes and threads at once.

Several processes (the language server, a git hook, the CLI) and threads may write at once:
WAL, busy_timeout, and BEGIN IMMEDIATE for every write. A writer that has to wait for the
lock waits in the busy handler and does not fail at once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from lsp_server.ledger.schema import migrate

log = logging.getLogger(__name__)


def open_connection(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        _enable_wal(conn, path, busy_timeout_s)
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, path: Path, busy_timeout_s: float) -> None:
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            # Another process may be creating the file right now.
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if str(mode).lower() != "wal":
        log.warning(
            "Ledger %s: WAL mode unavailable (journal_mode=%s); concurrent writers will wait longer.", path, mode
        )


def is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


__all__ = ["is_busy", "open_connection"]
