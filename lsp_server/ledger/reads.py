"""What the ledger answers: spend, savings, held budget and rows (a report aggregates in SQL: local_report.py).

Every figure counts the rows still kept in memory (a database that could not be written)
as well as the stored ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from datetime import datetime
from typing import Any

from lsp_server.ledger.row import LedgerRow
from lsp_server.ledger.schema import SELECT, row_from_db, tier_filter
from lsp_server.ledger.units import NANO, as_utc, to_nusd, utc_midnight


class LedgerReads:
    """The queries of `Ledger` (store.py), which supplies the reading and the kept rows."""

    _stale_after_s: float

    def _read(self, query: str, params: Collection[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _kept_since(self, since_ts: float) -> list[LedgerRow]:
        raise NotImplementedError

    def spend_usd(self, since: datetime, tiers: Collection[str] | None = None) -> float:
        """Total cost of attempts since `since`, optionally only in `tiers`. Raises LedgerError if unreadable."""
        since_ts = as_utc(since).timestamp()
        where, params = tier_filter(tiers)
        ((total,),) = self._read(
            f"SELECT COALESCE(SUM(cost_nusd), 0) FROM attempts WHERE ts >= ?{where}", (since_ts, *params)
        )
        total += sum(to_nusd(r.cost_usd) for r in self._kept_since(since_ts) if tiers is None or r.tier in tiers)
        return total / NANO

    def savings_usd(self, since: datetime) -> float:
        """What the frontier would have cost minus what was paid, since `since`."""
        since_ts = as_utc(since).timestamp()
        ((total,),) = self._read(
            "SELECT COALESCE(SUM(frontier_cost_nusd - cost_nusd), 0) FROM attempts WHERE ts >= ?", (since_ts,)
        )
        total += sum(to_nusd(r.frontier_cost_usd) - to_nusd(r.cost_usd) for r in self._kept_since(since_ts))
        return total / NANO

    def spend_today_usd(self, tiers: Collection[str] | None = None) -> float:
        """Spend since UTC midnight (see units.py for why UTC)."""
        return self.spend_usd(utc_midnight(), tiers)

    def reserved_usd(self) -> float:
        """Budget held by live (not stale) reservations."""
        ((total,),) = self._read(
            "SELECT COALESCE(SUM(amount_nusd), 0) FROM reservations WHERE created >= ?",
            (time.time() - self._stale_after_s,),
        )
        return total / NANO

    def rows(self, since: datetime | None = None) -> list[LedgerRow]:
        """Attempts in insertion order (since `since` if given), then any still kept in memory."""
        since_ts = -math.inf if since is None else as_utc(since).timestamp()
        found = self._read(f"{SELECT} WHERE ts >= ? ORDER BY id", (since_ts,))
        return [row_from_db(values) for values in found] + self._kept_since(since_ts)
