"""The ledger: one SQLite row per attempt, with no content in it.

Each attempt of each request gets one row: route, model, token counts, latency, cost, and
what the frontier would have charged for the same tokens. Prompts, completions, file
contents and keys never get in: the row model takes only short codes (guards.py), and
`record()` checks every row again before it writes. This file is the source of truth; the
team ledger (team/) is a copy shipped from it.

"The ledger never loses a row": if the database can't be used (corrupt file, directory in
the way, full disk, locked longer than busy_timeout), `record()` logs once and keeps the
row in memory. The next successful write stores it first.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from local_models.paths import ninetyten_home
from lsp_server.ledger import journal as journals
from lsp_server.ledger.connection import is_busy, open_connection
from lsp_server.ledger.errors import LedgerError
from lsp_server.ledger.guards import request_id_adapter
from lsp_server.ledger.reads import LedgerReads
from lsp_server.ledger.reservations import Reservation
from lsp_server.ledger.row import LedgerRow, PartialAccept, checked
from lsp_server.ledger.schema import (
    INSERT,
    insert_missing,
    ledger_id,
    row_values,
    tier_filter,
    update_feedback,
)
from lsp_server.ledger.units import NANO, as_utc, to_nusd

log = logging.getLogger(__name__)

LEDGER_FILENAME = "ledger.sqlite3"
BUSY_TIMEOUT_S = 5.0
STALE_RESERVATION_S = 600.0  # a reservation this old belongs to a crashed process (or a runaway request)
MAX_SPILL_ROWS = 100_000  # bound memory if the DB stays broken for a very long time
_UNUSABLE = (sqlite3.Error, OSError, LedgerError)

T = TypeVar("T")


class Ledger(LedgerReads):
    """The attempt ledger in one SQLite file, shared by every ninetyten process of a user."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        stale_after_s: float = STALE_RESERVATION_S,
    ) -> None:
        self.path = Path(path) if path is not None else ninetyten_home() / LEDGER_FILENAME
        self._busy_timeout_s = busy_timeout_s
        self._stale_after_s = stale_after_s
        # One connection per Ledger, serialised by a lock: writes serialise in SQLite anyway.
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._spill: list[LedgerRow] = []
        self._pending_feedback: dict[str, tuple[bool | None, bool | None, PartialAccept | None]] = {}
        self._dropped = 0
        self._failing = False  # an outage is already logged
        self._journal: journals.Journal | None = None
        self._ledger_id: str | None = None
        with self._lock:
            try:
                self._connection()
                self.recover_journals()
            except _UNUSABLE as exc:
                self._note_failure(exc)

    # --- identity ---

    @property
    def ledger_id(self) -> str:
        """This ledger's random id: with a row id, the row's stable id in the team ledger."""
        if self._ledger_id is None:
            with self._lock:
                self._ledger_id = ledger_id(self._connection())
        return self._ledger_id

    def row_uid(self, row_id: int) -> str:
        return f"{self.ledger_id}:{row_id}"

    # --- the journal of answered rows (see journal.py) ---

    @property
    def journal_dir(self) -> Path:
        return self.path.parent / journals.JOURNAL_DIRNAME

    def journal_append(self, values: dict[str, Any]) -> bool:
        """Write a row's values to this process's journal; False if that is not possible."""
        try:
            if self._journal is None:
                self._journal = journals.Journal(self.journal_dir)
            self._journal.append(values)
            return True
        except OSError as exc:
            log.warning("Ledger journal unavailable (%s); rows are only in memory until stored.", exc)
            return False

    def journal_committed(self) -> None:
        if self._journal is not None:
            try:
                self._journal.committed()
            except OSError:
                log.debug("journal truncate failed", exc_info=True)

    def recover_journals(self) -> int:
        """Store rows from the journals of processes that ended before storing them; returns how many."""
        recovered = 0
        for path in journals.orphaned_journals(self.journal_dir):
            claimed = journals.claim(path)
            if claimed is None:
                continue
            rows = journals.journal_rows(claimed)
            if rows:
                recovered += self._transaction(lambda conn: insert_missing(conn, rows))
            claimed.unlink(missing_ok=True)
        if recovered:
            log.warning(
                "Ledger %s: stored %d rows from processes that ended before writing them.", self.path, recovered
            )
        return recovered

    # --- connection and failure handling ---

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # Forked: the parent's connection must not be used (or closed) here.
            self._conn, self._pid = None, os.getpid()
        if self._conn is None:
            self._conn = open_connection(self.path, self._busy_timeout_s)
        return self._conn

    def _note_failure(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "Ledger %s is not usable (%s); keeping rows in memory until it is.%s",
                self.path,
                exc,
                " If the file is corrupt, move it aside and ninetyten will start a new one."
                if type(exc) is sqlite3.DatabaseError
                else "",
            )
        if not (isinstance(exc, sqlite3.OperationalError) and is_busy(exc)):
            self._drop_connection()  # reopen next time: the file may have been fixed or replaced

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run body in a write transaction, storing spilled rows and feedback first."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in self._spill:
                conn.execute(INSERT, row_values(row))
            for request_id, (shown, accepted, partial) in self._pending_feedback.items():
                update_feedback(conn, request_id, shown, accepted, partial)
            result = body(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        if self._spill or self._pending_feedback or self._failing:
            log.info("Ledger %s is usable again; stored %d kept rows.", self.path, len(self._spill))
        self._spill.clear()
        self._pending_feedback.clear()
        self._failing = False
        return result

    def _keep(self, row: LedgerRow) -> None:
        self._spill.append(row)
        if len(self._spill) > MAX_SPILL_ROWS:
            del self._spill[0]
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                log.error("Ledger %s: unusable for too long; dropped %d oldest kept rows.", self.path, self._dropped)

    @property
    def spilled(self) -> int:
        """How many rows are kept in memory waiting for the database."""
        with self._lock:
            return len(self._spill)

    # --- writes ---

    def record(self, row: LedgerRow) -> int:
        """Store one attempt; returns its id, or 0 if it is kept in memory for now.

        Raises only if the row fails validation (it would carry something that isn't a code).
        """
        row = checked(row)
        with self._lock:
            try:
                return self._transaction(lambda conn: int(conn.execute(INSERT, row_values(row)).lastrowid or 0))
            except _UNUSABLE as exc:
                self._note_failure(exc)
                self._keep(row)
                return 0

    def flush(self) -> bool:
        """Try to store rows kept in memory; True if nothing is left waiting."""
        with self._lock:
            if not self._spill and not self._pending_feedback:
                return True
            try:
                self._transaction(lambda conn: None)
            except _UNUSABLE as exc:
                self._note_failure(exc)
                return False
            return True

    def reserve(
        self, amount_usd: float, cap_usd: float, *, since: datetime, tiers: Collection[str] | None = None
    ) -> Reservation | None:
        """Hold `amount_usd` if spend since `since` (in `tiers`, default all) plus live reservations
        plus this amount stays within `cap_usd`; None if it wouldn't, or if the ledger is unusable
        (a budget that can't be checked is treated as spent).

        Atomic across threads and processes: check and insert run in one BEGIN IMMEDIATE transaction.
        """
        for name, value in (("amount_usd", amount_usd), ("cap_usd", cap_usd)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        amount, cap = to_nusd(amount_usd), to_nusd(cap_usd)
        since_ts = as_utc(since).timestamp()
        where, params = tier_filter(tiers)

        def body(conn: sqlite3.Connection) -> int | None:
            now = time.time()
            conn.execute("DELETE FROM reservations WHERE created < ?", (now - self._stale_after_s,))
            spent = conn.execute(
                f"SELECT COALESCE(SUM(cost_nusd), 0) FROM attempts WHERE ts >= ?{where}", (since_ts, *params)
            ).fetchone()[0]
            held = conn.execute("SELECT COALESCE(SUM(amount_nusd), 0) FROM reservations").fetchone()[0]
            if spent + held + amount > cap:
                return None
            cursor = conn.execute(
                "INSERT INTO reservations (created, amount_nusd, pid) VALUES (?, ?, ?)", (now, amount, os.getpid())
            )
            return int(cursor.lastrowid or 0)

        with self._lock:
            try:
                reservation_id = self._transaction(body)
            except _UNUSABLE as exc:
                self._note_failure(exc)
                return None
        return None if reservation_id is None else Reservation(self, reservation_id, amount / NANO)

    def _commit_reservation(self, reservation_id: int, row: LedgerRow) -> int:
        row = checked(row)

        def body(conn: sqlite3.Connection) -> int:
            row_id = int(conn.execute(INSERT, row_values(row)).lastrowid or 0)
            conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            return row_id

        with self._lock:
            try:
                return self._transaction(body)
            except _UNUSABLE as exc:
                # The reservation stays until it goes stale, so the budget errs on the safe side.
                self._note_failure(exc)
                self._keep(row)
                return 0

    def _release_reservation(self, reservation_id: int) -> None:
        with self._lock:
            try:
                self._transaction(lambda conn: conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,)))
            except _UNUSABLE as exc:
                self._note_failure(exc)  # it will go stale

    def mark_feedback(
        self,
        request_id: str,
        *,
        shown: bool | None = None,
        accepted: bool | None = None,
        partial: PartialAccept | None = None,
    ) -> None:
        """Record whether the request's answer (its last attempt) was shown / accepted, and what
        a partial accept kept of it."""
        request_id = request_id_adapter.validate_python(request_id)
        if (accepted or partial is not None) and shown is None:
            shown = True  # accepting implies it was shown
        if shown is None and accepted is None and partial is None:
            return
        with self._lock:
            kept = [i for i, row in enumerate(self._spill) if row.request_id == request_id]
            if kept:
                last = max(kept, key=lambda i: self._spill[i].attempt)
                row = self._spill[last]
                update: dict[str, Any] = {
                    "shown": row.shown if shown is None else shown,
                    "accepted": row.accepted if accepted is None else accepted,
                    **(partial.row_update(row) if partial is not None else {}),
                }
                self._spill[last] = row.model_copy(update=update)
                return
            try:
                self._transaction(lambda conn: update_feedback(conn, request_id, shown, accepted, partial))
            except _UNUSABLE as exc:
                self._note_failure(exc)
                old_shown, old_accepted, old_partial = self._pending_feedback.get(request_id, (None, None, None))
                self._pending_feedback[request_id] = (
                    old_shown if shown is None else shown,
                    old_accepted if accepted is None else accepted,
                    partial if old_partial is None else old_partial.merged(partial),
                )

    # --- reads ---

    def _read(self, query: str, params: Collection[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            self.flush()
            try:
                return self._connection().execute(query, tuple(params)).fetchall()
            except (sqlite3.Error, OSError) as exc:
                self._note_failure(exc)
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc

    def read_snapshot(
        self, body: Callable[[sqlite3.Connection, list[LedgerRow]], T], since: datetime | None = None
    ) -> T:
        """`body(connection, kept rows since `since`)`: several reads that see one state of the
        ledger (one read transaction; nobody's writes land in between). LedgerError if unreadable."""
        since_ts = -math.inf if since is None else as_utc(since).timestamp()
        with self._lock:
            self.flush()
            try:
                conn = self._connection()
                conn.execute("BEGIN")
                try:
                    return body(conn, self._kept_since(since_ts))
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")  # nothing was written: this ends the read transaction
            except (sqlite3.Error, OSError) as exc:
                self._note_failure(exc)
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc

    def _kept_since(self, since_ts: float) -> list[LedgerRow]:
        with self._lock:  # rows still waiting in memory count too
            return [r for r in self._spill if r.ts.timestamp() >= since_ts]

    def close(self) -> None:
        with self._lock:
            if not self.flush():
                log.error("Ledger %s: closing with %d rows that could not be stored.", self.path, len(self._spill))
            self._drop_connection()
            if self._journal is not None:
                self._journal.close()  # kept on disk if rows in it were never stored
                self._journal = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["BUSY_TIMEOUT_S", "LEDGER_FILENAME", "Ledger", "STALE_RESERVATION_S"]
