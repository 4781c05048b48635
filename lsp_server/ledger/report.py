"""The report: spend and savings from a ledger, grouped by task, tier, model, repository and week.

One model (`Report`) for the local ledger (aggregated in SQLite, local_report.py) and the team
ledger (aggregated in PostgreSQL, team/aggregate.py), both assembled by figures.py; the terminal,
JSON and HTML views all render it.

Definitions (the same for every group, and for both sources):
- requests: distinct requests with at least one attempt in the group; attempts: rows.
- cost / frontier cost are summed in integer nano-dollars, so totals are exact sums of the rows.
- savings = frontier cost - cost; savings % = savings / frontier cost (None when that is 0).
- escalations: requests with an escalated attempt in the group; escalation rate = escalations / requests.
- failures: attempts whose outcome is a failure (cancelled and blocked don't count).
- acceptance rate = accepted / shown, over attempts with feedback (accepted implies shown).
- latency p50 / p95 (nearest rank) are over requests: a request's latency in a group is the
  sum of its attempts' latencies there, which is what the user waited.
- Day, week (from Monday) and month boundaries are UTC, like the ledger's "today".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel

from lsp_server.ledger.latency_ranks import nearest_rank
from lsp_server.ledger.prices import describe_price_code
from lsp_server.ledger.units import NANO, utc_midnight
from lsp_server.tiers import TIER_ORDER

Dimension = Literal["task", "tier", "model", "repo", "week"]
DIMENSIONS: tuple[Dimension, ...] = ("task", "tier", "model", "repo", "week")
NO_REPO = "-"  # rows recorded outside a repository, or before repositories were recorded


class GroupStats(BaseModel):
    key: str
    requests: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    frontier_cost_usd: float = 0.0
    savings_usd: float = 0.0
    savings_pct: float | None = None
    escalations: int = 0
    escalation_rate: float | None = None
    failures: int = 0
    shown: int = 0
    accepted: int = 0
    acceptance_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


class ReasonCount(BaseModel):
    reason: str
    attempts: int


class PriceUse(BaseModel):
    """Which price stood for "the frontier alone", on how many attempts."""

    code: str | None
    description: str
    attempts: int
    frontier_cost_usd: float


class Report(BaseModel):
    source: Literal["local", "team"] = "local"
    since: datetime | None
    until: datetime
    totals: GroupStats
    by_task: list[GroupStats]
    by_tier: list[GroupStats]
    by_model: list[GroupStats] = []
    by_repo: list[GroupStats] = []
    by_week: list[GroupStats] = []
    escalation_reasons: list[ReasonCount] = []
    counterfactual: list[PriceUse] = []

    def groups(self, dimension: Dimension) -> list[GroupStats]:
        return getattr(self, f"by_{dimension}")


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank: an observed value. `p / 100 * n` in floating point, as PostgreSQL's
    percentile_disc computes it, so both sources pick the same request."""
    if not sorted_values:
        return None
    return sorted_values[nearest_rank(p, len(sorted_values)) - 1]


def make_stats(
    key: str,
    *,
    requests: int,
    attempts: int,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int,
    cost_nusd: int,
    frontier_nusd: int,
    escalations: int,
    failures: int,
    shown: int,
    accepted: int,
    p50: float | None,
    p95: float | None,
) -> GroupStats:
    """A group's figures from its sums; the derived ones are defined here, once."""
    return GroupStats(
        key=key,
        requests=requests,
        attempts=attempts,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cost_usd=cost_nusd / NANO,
        frontier_cost_usd=frontier_nusd / NANO,
        savings_usd=(frontier_nusd - cost_nusd) / NANO,
        savings_pct=100 * (frontier_nusd - cost_nusd) / frontier_nusd if frontier_nusd else None,
        escalations=escalations,
        escalation_rate=escalations / requests if requests else None,
        failures=failures,
        shown=shown,
        accepted=accepted,
        acceptance_rate=accepted / shown if shown else None,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
    )


def order_groups(stats: list[GroupStats], dimension: Dimension) -> list[GroupStats]:
    """Weeks in time order; tiers local -> frontier; everything else busiest first."""
    if dimension == "week":
        return sorted(stats, key=lambda s: s.key)
    rank: dict[str, int] = {key: i for i, key in enumerate(TIER_ORDER)} if dimension == "tier" else {}
    return sorted(stats, key=lambda s: (rank.get(s.key, len(rank)), -s.requests, s.key))


def reason_counts(counts: Iterable[tuple[str | None, int]]) -> list[ReasonCount]:
    merged: Counter[str] = Counter()
    for reason, n in counts:
        merged[reason or "unspecified"] += n
    return [ReasonCount(reason=r, attempts=n) for r, n in sorted(merged.items(), key=lambda item: (-item[1], item[0]))]


def price_uses(uses: Iterable[tuple[str | None, int, int]]) -> list[PriceUse]:
    """(code, attempts, frontier nano-dollars) -> what each price was, most used first."""
    return [
        PriceUse(code=code, description=describe_price_code(code), attempts=n, frontier_cost_usd=nusd / NANO)
        for code, n, nusd in sorted(uses, key=lambda u: (-u[1], u[0] or ""))
    ]


def report_json(report: Report) -> str:
    return report.model_dump_json(indent=2)


# --- --since ------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def start_of_month(now: datetime | None = None) -> datetime:
    return utc_midnight(now).replace(day=1)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: an ISO date or datetime (naive = UTC), `Nh` / `Nd` / `Nw`, `today`, `month`, or `all`.

    None means the start of the current (UTC) month; `all` returns None (no lower bound).
    Raises ValueError with a message fit for the user.
    """
    now = now or datetime.now(timezone.utc)
    if text is None:
        return start_of_month(now)
    value = text.strip().lower()
    if value == "all":
        return None
    if value == "month":
        return start_of_month(now)
    if value == "today":
        return utc_midnight(now)
    match = _RELATIVE.match(value)
    if match:
        amount = int(match.group(1))
        if amount < 1:
            raise ValueError(f"--since {text!r}: the amount must be at least 1")
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: amount})
        except OverflowError:
            raise ValueError(f"--since {text!r} reaches back too far; try `all`") from None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not understood; use a date like 2026-11-01, a datetime like "
            "2026-11-01T09:30, a span like 24h / 7d / 2w, or today / month / all"
        ) from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


__all__ = [
    "DIMENSIONS",
    "NO_REPO",
    "Dimension",
    "GroupStats",
    "PriceUse",
    "ReasonCount",
    "Report",
    "make_stats",
    "order_groups",
    "parse_since",
    "percentile",
    "price_uses",
    "reason_counts",
    "report_json",
    "start_of_month",
]
