"""Budget reservations: the worst-case cost of a paid call, held until its row is written.

A `Reservation` holds budget in the local SQLite ledger; a team hold (team/budget.py) holds
it in the team's PostgreSQL database. `BudgetHold` is what a request carries: whichever of
the two apply, committed together when the row is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Self

from lsp_server.ledger.row import LedgerRow

if TYPE_CHECKING:
    from lsp_server.ledger.store import Ledger


class Reservation:
    """Budget held in the local ledger for one in-flight request until `commit()` or `release()`.

    Also a context manager: leaving the block without committing releases it.
    """

    def __init__(self, ledger: Ledger, reservation_id: int, amount_usd: float) -> None:
        self.id = reservation_id
        self.amount_usd = amount_usd
        self._ledger = ledger
        self._done = False

    def commit(self, row: LedgerRow) -> int:
        """Record the real row and drop the reservation in one transaction; returns the row id (0 if spilled)."""
        if self._done:
            raise RuntimeError("this reservation was already committed or released")
        self._done = True
        return self._ledger._commit_reservation(self.id, row)

    def release(self) -> None:
        """Give the budget back (no-op if already committed or released)."""
        if not self._done:
            self._done = True
            self._ledger._release_reservation(self.id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class RemoteHold(Protocol):
    """Budget held somewhere else (the team ledger); settled with the row's real cost."""

    def settle(self, uid: str | None, cost_usd: float) -> None: ...

    def release(self) -> None: ...


class BudgetHold:
    """The holds of one paid request: local, remote, or both; committed as one."""

    def __init__(self, ledger: Ledger, local: Reservation | None, remote: RemoteHold | None) -> None:
        self._ledger = ledger
        self.local = local
        self.remote = remote
        self._done = False

    def commit(self, row: LedgerRow) -> int:
        """Record the row (turning the local hold into it) and settle the remote hold with the
        row's stable id and real cost; returns the local row id (0 if kept in memory)."""
        if self._done:
            raise RuntimeError("this budget hold was already committed or released")
        self._done = True
        row_id = self.local.commit(row) if self.local is not None else self._ledger.record(row)
        if self.remote is not None:
            # A row kept in memory has no id yet: its hold then stays until it goes stale,
            # which errs on the side of the cap.
            self.remote.settle(self._ledger.row_uid(row_id) if row_id else None, row.cost_usd)
        return row_id

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        if self.local is not None:
            self.local.release()
        if self.remote is not None:
            self.remote.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


__all__ = ["BudgetHold", "RemoteHold", "Reservation"]
