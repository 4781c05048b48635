"""The ledger's units: money in integer nano-dollars, time in UTC.

- Money is stored as integer nano-dollars, so sums and budget comparisons are exact. Rows
  expose float USD rounded to the nano-dollar.
- "Today" starts at UTC midnight. Provider billing days start then too, it is the same
  instant for every team member sharing a policy, and it has no DST edge cases. Weeks start
  on Monday, UTC.
- Naive datetimes given to the ledger are taken as UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

NANO = 1_000_000_000


def to_nusd(usd: float) -> int:
    return round(usd * NANO)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_midnight(now: datetime | None = None) -> datetime:
    """Start of the current UTC day: the ledger's "today"."""
    now = as_utc(now or utc_now())
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(moment: datetime) -> date:
    """The Monday (UTC) of the week `moment` falls in: the key of a report's weekly group."""
    moment = as_utc(moment)
    return (moment - timedelta(days=moment.weekday())).date()


__all__ = ["NANO", "as_utc", "to_nusd", "utc_midnight", "utc_now", "week_start"]
