"""Ledger writes off the request path: one thread per process, flushed on close so no row is lost.

The request path only journals a row's values (one append) and queues it; the row is built,
validated and stored on the ledger thread. Stored rows then go to the observers (metrics
export) and wake the team shipper, all on this thread or their own.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from lsp_server.ledger.budget import BudgetCaps, hold_budget
from lsp_server.ledger.reservations import BudgetHold, Reservation
from lsp_server.ledger.row import LedgerRow
from lsp_server.ledger.store import Ledger

if TYPE_CHECKING:
    from lsp_server.ledger.team.link import TeamLink

log = logging.getLogger(__name__)

Observer = Callable[[LedgerRow], None]


class _Committable(Protocol):
    def commit(self, row: LedgerRow) -> int: ...


def _money(values: dict[str, object] | None) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    cost = float(values.get("cost_usd", 0.0) or 0.0)  # type: ignore[arg-type]
    frontier = float(values.get("frontier_cost_usd", 0.0) or 0.0)  # type: ignore[arg-type]
    return cost, frontier - cost


class LedgerSink:
    """Queues rows for the ledger thread; also the place a process's team link and metrics
    observers hang off, so the engine knows none of them."""

    def __init__(self, ledger: Ledger | None) -> None:
        self.ledger = ledger
        self._queue: queue.Queue[
            tuple[Callable[[], LedgerRow | None], _Committable | None, bool, tuple[float, float]] | None
        ] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Money in rows queued but not stored yet, so reads need not wait for the thread.
        self.pending_cost_usd = 0.0
        self.pending_savings_usd = 0.0
        self._reader: Ledger | None = None
        self.repo: str | None = None  # stamped on rows that name none (the workspace's repository)
        self.team: TeamLink | None = None
        self.observers: list[Observer] = []

    @property
    def reader(self) -> Ledger | None:
        """A connection of its own for reads on the event loop: the writer may be waiting
        for another process's lock, and WAL readers never wait for writers."""
        if self._reader is None and self.ledger is not None:
            self._reader = Ledger(self.ledger.path)
        return self._reader

    def reserve(self, estimate_usd: float, caps: BudgetCaps) -> tuple[bool, BudgetHold | None]:
        """Hold a paid call's worst-case cost against the caps in force (budget.py); blocking."""
        if self.ledger is None:
            return True, None
        return hold_budget(self.ledger, self.team.budget if self.team else None, estimate_usd, caps)

    def team_spend_today_usd(self) -> float | None:
        """The team's paid spend today as last read from the team ledger (refreshed in the
        background, never waited for); None without a team ledger or while it is out of reach."""
        budget = self.team.budget if self.team is not None else None
        return budget.spent_today_usd() if budget is not None else None

    def put(
        self,
        row: Callable[[], LedgerRow],
        reservation: Reservation | BudgetHold | None = None,
        journal: dict[str, object] | None = None,
    ) -> None:
        """Queue a row; it is built (and validated) on the ledger thread, off the request path.

        `journal`: the row's values, written to the ledger's journal now, so the row
        survives the process being killed before the thread stores it.
        """
        if self.ledger is None:
            return
        if journal is not None and self.repo is not None and journal.get("repo") is None:
            journal = {**journal, "repo": self.repo}
        journaled = journal is not None and self.ledger.journal_append(journal)
        money = _money(journal)
        with self._lock:
            self.pending_cost_usd += money[0]
            self.pending_savings_usd += money[1]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ninetyten-ledger", daemon=True)
                self._thread.start()
            self._queue.put((row, reservation, journaled, money))

    def call(self, action: Callable[[Ledger], None]) -> None:
        """Run `action` on the ledger thread, after the rows queued before it."""
        ledger = self.ledger
        if ledger is None:
            return

        def run() -> None:
            action(ledger)
            return None

        self.put(run)  # type: ignore[arg-type]

    def _run(self) -> None:
        assert self.ledger is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            make_row, reservation, journaled, money = item
            stored = 0
            try:
                row = make_row()
                if row is None:  # an action queued with call()
                    if self.team is not None:
                        self.team.rows_stored()  # feedback changes rows too
                    continue
                if row.repo is None and self.repo is not None:
                    row = row.model_copy(update={"repo": self.repo})
                # A budget reservation becomes the real row in the same transaction.
                stored = reservation.commit(row) if reservation is not None else self.ledger.record(row)
                if journaled and stored:
                    self.ledger.journal_committed()
                self._observe(row)
            except Exception:  # a row that fails validation is a bug; never kill the thread
                log.exception("ledger row rejected")
            if stored and money != (0.0, 0.0):
                with self._lock:  # a row kept in memory (database unusable) stays counted as pending
                    self.pending_cost_usd -= money[0]
                    self.pending_savings_usd -= money[1]

    def _observe(self, row: LedgerRow) -> None:
        if self.team is not None:
            self.team.rows_stored()
        for observer in self.observers:
            try:
                observer(row)
            except Exception:  # an exporter's failure never costs a row
                log.exception("ledger observer failed")

    def flush(self) -> None:
        """Wait until every queued row is written."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout=30)

    def close(self) -> None:
        self.flush()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        team, self.team = self.team, None
        if team is not None:
            team.close()
        for observer in self.observers:
            close = getattr(observer, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing a ledger observer failed")
        self.observers = []


__all__ = ["LedgerSink", "Observer"]
