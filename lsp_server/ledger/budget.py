"""Which budget holds a paid call needs: the developer's daily cap, the team's, or both.

- `budget.daily_usd`: this developer's paid spend per UTC day, held in the local ledger.
- `budget.team_daily_usd`: the whole team's, held in the team ledger (PostgreSQL), atomic
  across developers.
- When the team ledger is not configured or cannot be reached, the local rules apply: the
  team cap is checked against this developer's own spend (they alone cannot spend more than
  the whole team may), together with their own cap if there is one. The team link tells the
  user once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from lsp_server.ledger.errors import TeamLedgerError
from lsp_server.ledger.reservations import BudgetHold, RemoteHold
from lsp_server.ledger.store import Ledger
from lsp_server.ledger.units import utc_midnight


class BudgetCaps(Protocol):
    """The policy's `[budget]` table, as far as holds are concerned."""

    @property
    def daily_usd(self) -> float | None: ...

    @property
    def team_daily_usd(self) -> float | None: ...


class RemoteBudget(Protocol):
    def reserve(self, amount_usd: float, cap_usd: float, since: datetime) -> RemoteHold | None:
        """A hold, or None when the cap leaves no room; raises TeamLedgerError when unusable."""
        ...


def _min(*caps: float | None) -> float | None:
    present = [cap for cap in caps if cap is not None]
    return min(present) if present else None


def hold_budget(
    ledger: Ledger, team: RemoteBudget | None, estimate_usd: float, caps: BudgetCaps, now: datetime | None = None
) -> tuple[bool, BudgetHold | None]:
    """(True, hold) when the call fits every cap in force, (True, None) when none applies,
    (False, None) when it does not fit."""
    personal, team_cap = caps.daily_usd, caps.team_daily_usd
    if personal is None and team_cap is None:
        return True, None
    since = utc_midnight(now)
    remote: RemoteHold | None = None
    local_cap = personal
    if team_cap is not None:
        if team is None:
            local_cap = _min(personal, team_cap)
        else:
            try:
                remote = team.reserve(estimate_usd, team_cap, since)
            except TeamLedgerError:
                local_cap = _min(personal, team_cap)
            else:
                if remote is None:
                    return False, None
    local = None
    if local_cap is not None:
        local = ledger.reserve(estimate_usd, local_cap, since=since)
        if local is None:
            if remote is not None:
                remote.release()
            return False, None
    return True, BudgetHold(ledger, local, remote)


__all__ = ["BudgetCaps", "RemoteBudget", "hold_budget"]
