"""The shipper: copies the local ledger's queued rows to the team ledger, off the request path.

At least once and idempotent: a batch is upserted by each row's stable id in one PostgreSQL
transaction, and only then forgotten locally (outbox.py). A kill, a network cut or a server
restart at any point leaves each row either in the team ledger or still queued, or both
(then the next batch upserts it again); never duplicated, never lost.

One process ships at a time (a lock file next to the ledger); the language server ships in
the background, woken when rows are stored, and polls now and then for rows that hooks and
one-off commands queued. When the team ledger is unreachable it backs off (up to five
minutes) and catches up when it is back; `ninetyten ledger sync` ships everything queued now
and returns.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock

from lsp_server import __version__
from lsp_server.ledger.errors import LedgerError, TeamLedgerError
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.identity import user_key
from lsp_server.ledger.team.outbox import SHIPPED_COLUMNS, Outbox, Queued
from lsp_server.ledger.team.pg import connect, describe, is_connection_error, scrub
from lsp_server.ledger.team.schema import SCHEMA, ensure_schema

log = logging.getLogger(__name__)

LOCK_FILENAME = "ledger-ship.lock"
# The batch arrives as SQLite holds it (unix seconds, 0/1 flags); PostgreSQL converts it.
_INCOMING = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming (row_id bigint, ts double precision, request_id text, attempt integer, "
    "task text, tier text, backend text, model text, prompt_tokens bigint, completion_tokens bigint, "
    "cached_tokens bigint, latency_ms double precision, cost_nusd bigint, frontier_cost_nusd bigint, outcome text, "
    "escalated integer, escalation_reason text, error_kind text, policy_hash text, shown integer, accepted integer, "
    "repo text, frontier_price text) ON COMMIT DELETE ROWS"
)
assert _INCOMING.count(",") + 1 == len(SHIPPED_COLUMNS)
PG_COLUMNS = (
    "uid",
    "ledger_id",
    "row_id",
    "ts",
    "user_key",
    "repo",
    "request_id",
    "attempt",
    "task",
    "tier",
    "backend",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_ms",
    "cost_nusd",
    "frontier_cost_nusd",
    "frontier_price",
    "outcome",
    "escalated",
    "escalation_reason",
    "error_kind",
    "policy_hash",
    "shown",
    "accepted",
    "client_version",
)
_UPSERT = (
    f"INSERT INTO {SCHEMA}.attempts ({', '.join(PG_COLUMNS)}) "
    "SELECT %(ledger)s || ':' || row_id, %(ledger)s, row_id, to_timestamp(ts), %(user)s, repo, request_id, attempt, "
    "task, tier, backend, model, prompt_tokens, completion_tokens, cached_tokens, latency_ms, cost_nusd, "
    "frontier_cost_nusd, frontier_price, outcome, escalated <> 0, escalation_reason, error_kind, policy_hash, "
    "shown <> 0, accepted <> 0, %(version)s FROM pg_temp.incoming "
    f"ON CONFLICT (uid) DO UPDATE SET shown = EXCLUDED.shown, accepted = EXCLUDED.accepted "
    f"WHERE {SCHEMA}.attempts.shown IS DISTINCT FROM EXCLUDED.shown "
    f"OR {SCHEMA}.attempts.accepted IS DISTINCT FROM EXCLUDED.accepted"
)
_COPY = f"COPY pg_temp.incoming ({', '.join(SHIPPED_COLUMNS)}) FROM STDIN"


class Shipper:
    def __init__(
        self,
        ledger_path: Path,
        settings: TeamLedgerSettings,
        *,
        on_unreachable: Callable[[str], None] | None = None,
        on_back: Callable[[], None] | None = None,
        idle_s: float = 60.0,
        gather_s: float = 1.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        self.settings = settings
        self.target = describe(settings.url or "")
        try:
            self.outbox = Outbox(ledger_path)
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot open the ledger {ledger_path}: {exc}") from None
        self._file_lock = filelock.FileLock(str(ledger_path.parent / LOCK_FILENAME))
        self._conn: Any = None
        self._user_key: str | None = None
        self._on_unreachable = on_unreachable
        self._on_back = on_back
        self._idle_s, self._gather_s, self._max_backoff_s = idle_s, gather_s, max_backoff_s
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one ship at a time in this process

    # --- shipping ---

    def pending(self) -> int:
        return self.outbox.pending()

    def ship_now(self, progress: Callable[[int], None] | None = None, *, wait_for_lock_s: float = 300.0) -> int:
        """Ship every row queued now (waiting for another process's shipping to finish first);
        returns how many this call shipped. TeamLedgerError when the team ledger fails; what
        was not shipped stays queued."""
        try:
            with self._file_lock.acquire(timeout=wait_for_lock_s):
                return self._ship(progress)
        except filelock.Timeout:
            raise TeamLedgerError(
                f"another ninetyten process has been shipping for over {wait_for_lock_s:.0f} s; try again later"
            ) from None
        except sqlite3.Error as error:
            raise LedgerError(f"cannot read the rows to ship from {self.outbox.path}: {error}") from None

    def _ship(self, progress: Callable[[int], None] | None = None) -> int:
        with self._lock:
            up_to = self.outbox.last_queued()
            total = 0
            while True:
                rows = self.outbox.take(self.settings.batch_rows, up_to)
                if not rows:
                    return total
                self._send(rows)
                self.outbox.shipped(rows)
                total += len(rows)
                if progress is not None:
                    progress(total)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            conn = connect(self.settings, role="shipper")
            try:
                state = ensure_schema(conn, write=True)
                self._user_key = user_key(self.settings, state.pseudonym_key)
                with conn.cursor() as cur:
                    cur.execute(_INCOMING)
                conn.commit()
            except Exception as error:
                conn.close()
                if isinstance(error, TeamLedgerError):
                    raise
                raise TeamLedgerError(
                    f"the team ledger ({self.target}) refused the schema set-up: "
                    f"{scrub(str(error).strip(), self.settings.url or '')}"
                ) from None
            self._conn = conn
        return self._conn

    def _send(self, rows: list[Queued]) -> None:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                with cur.copy(_COPY) as copy:
                    for row in rows:
                        copy.write_row(row[1:])  # without the queue version
                cur.execute(_UPSERT, {"ledger": self.outbox.ledger_id, "user": self._user_key, "version": __version__})
            conn.commit()
        except Exception as error:
            broken = is_connection_error(error) or conn.closed or conn.broken
            try:
                if broken:
                    conn.close()
                else:
                    conn.rollback()
            except Exception:
                conn.close()
            if conn.closed:
                self._conn = None
            raise TeamLedgerError(
                f"shipping to the team ledger ({self.target}) failed: "
                f"{scrub(str(error).strip(), self.settings.url or '')}"
            ) from None

    # --- in the background ---

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ninetyten-shipper", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Rows were stored: ship soon."""
        self._wake.set()

    def _run(self) -> None:
        delay, failing = 0.0, False
        next_try = time.monotonic()
        while not self._closing.is_set():
            # New rows wake the shipper at once, except while it backs off from a failure.
            if self._wake.wait(timeout=max(next_try - time.monotonic(), 0.0)):
                self._wake.clear()
                if failing and time.monotonic() < next_try:
                    continue
                self._closing.wait(self._gather_s)  # let a burst of rows make one batch
            if self._closing.is_set():
                return
            try:
                if self._file_lock.acquire(timeout=0):
                    try:
                        self._ship()
                    finally:
                        self._file_lock.release()
            except filelock.Timeout:
                pass  # another process is shipping: it takes our rows too
            except (TeamLedgerError, LedgerError, sqlite3.Error) as error:
                if not failing and self._on_unreachable is not None:
                    self._on_unreachable(str(error))
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "team ledger: %s; rows stay queued and ship when it is back",
                    error,
                )
                failing, delay = True, min(max(delay * 2, 5.0), self._max_backoff_s)
                next_try = time.monotonic() + delay
                continue
            except Exception:  # never let the thread die: rows would stop shipping silently
                log.exception("team ledger shipper failed")
                next_try = time.monotonic() + self._max_backoff_s
                continue
            if failing:
                log.warning("team ledger %s is reachable again; queued rows shipped", self.target)
                if self._on_back is not None:
                    self._on_back()
            failing, delay = False, 0.0
            next_try = time.monotonic() + self._idle_s  # poll for rows other processes queued

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None
            self.outbox.close()


__all__ = ["LOCK_FILENAME", "PG_COLUMNS", "Shipper"]
