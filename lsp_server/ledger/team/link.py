"""A process's link to the team ledger: its shipper and its team budget, and one notice."""

from __future__ import annotations

import threading
from collections.abc import Callable

from lsp_server.ledger.team.budget import TeamBudget
from lsp_server.ledger.team.shipper import Shipper


class Notice:
    """Tells the user once that the team ledger is out of reach, not once per request."""

    def __init__(self, notify: Callable[[str], None] | None) -> None:
        self._notify = notify
        self._told = False
        self._lock = threading.Lock()

    def unreachable(self, detail: str) -> None:
        with self._lock:
            if self._told:
                return
            self._told = True
        if self._notify is not None:
            self._notify(
                f"{detail}. Rows are kept on this machine and shipped when it is back; "
                "the local budget rules apply meanwhile."
            )

    def back(self) -> None:
        with self._lock:
            self._told = False


class TeamLink:
    def __init__(self, shipper: Shipper | None, budget: TeamBudget | None) -> None:
        self.shipper = shipper
        self.budget = budget

    def rows_stored(self) -> None:
        if self.shipper is not None:
            self.shipper.wake()

    def close(self) -> None:
        if self.shipper is not None:
            self.shipper.close()
        if self.budget is not None:
            self.budget.close()


__all__ = ["Notice", "TeamLink"]
