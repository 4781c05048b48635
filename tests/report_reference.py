"""The report as it was computed before the two-pass aggregation: the oracles it is compared with.

- `reference_report`: the definitions in lsp_server/ledger/report.py, row by row in Python
  (how the local report was computed): every row read, every group built from its rows.
- `reference_team_report`: the team report as PostgreSQL computed it with one sort per
  grouping (GROUPING SETS, percentile_disc): an independent reading of the same definitions.

Slow on big ledgers, obviously right; also the baselines of bench/team_ledger.py.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, NamedTuple

from lsp_server.ledger import Ledger
from lsp_server.ledger.report import (
    DIMENSIONS,
    NO_REPO,
    Dimension,
    GroupStats,
    Report,
    make_stats,
    order_groups,
    percentile,
    price_uses,
    reason_counts,
)
from lsp_server.ledger.row import FAILURE_OUTCOMES, LedgerRow
from lsp_server.ledger.schema import COLUMNS, row_values
from lsp_server.ledger.team.schema import SCHEMA
from lsp_server.ledger.units import as_utc, week_start


class AttemptSummary(NamedTuple):
    """The part of a row a report aggregates. Money in nano-dollars; flags as 0 / 1 / None;
    `ts` in unix seconds."""

    request_id: str
    ts: float
    task: str
    tier: str
    model: str
    repo: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_ms: float
    cost_nusd: int
    frontier_cost_nusd: int
    frontier_price: str | None
    outcome: str
    escalated: int
    escalation_reason: str | None
    shown: int | None
    accepted: int | None


SELECT_SUMMARY = f"SELECT {', '.join(AttemptSummary._fields)} FROM attempts"


def summary_values(row: LedgerRow) -> AttemptSummary:
    values = dict(zip(COLUMNS, row_values(row)))
    return AttemptSummary._make(values[name] for name in AttemptSummary._fields)


def _stats(key: str, rows: Iterable[AttemptSummary]) -> GroupStats:
    rows = list(rows)
    latency: dict[str, float] = defaultdict(float)
    escalated: set[str] = set()
    for r in rows:
        latency[r.request_id] += r.latency_ms
        if r.escalated:
            escalated.add(r.request_id)
    latencies = sorted(latency.values())
    return make_stats(
        key,
        requests=len(latency),
        attempts=len(rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cached_tokens=sum(r.cached_tokens for r in rows),
        cost_nusd=sum(r.cost_nusd for r in rows),
        frontier_nusd=sum(r.frontier_cost_nusd for r in rows),
        escalations=len(escalated),
        failures=sum(1 for r in rows if r.outcome in FAILURE_OUTCOMES),
        shown=sum(1 for r in rows if r.shown or r.accepted),
        accepted=sum(1 for r in rows if r.accepted),
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
    )


_KEYS: dict[Dimension, Callable[[AttemptSummary], str]] = {
    "task": lambda r: r.task,
    "tier": lambda r: r.tier,
    "model": lambda r: r.model,
    "repo": lambda r: r.repo or NO_REPO,
    "week": lambda r: week_start(datetime.fromtimestamp(r.ts, timezone.utc)).isoformat(),
}


def _grouped(rows: list[AttemptSummary], dimension: Dimension) -> list[GroupStats]:
    groups: dict[str, list[AttemptSummary]] = defaultdict(list)
    key = _KEYS[dimension]
    for r in rows:
        groups[key(r)].append(r)
    return order_groups([_stats(k, members) for k, members in groups.items()], dimension)


def summaries(ledger: Ledger, since: datetime | None) -> list[AttemptSummary]:
    """Every row of the period (and rows kept in memory) as much as a report needs of it."""
    since_ts = -math.inf if since is None else as_utc(since).timestamp()
    return ledger.read_snapshot(
        lambda conn, kept: [
            *(
                AttemptSummary._make(values)
                for values in conn.execute(f"{SELECT_SUMMARY} WHERE ts >= ? ORDER BY id", (since_ts,))
            ),
            *(summary_values(row) for row in kept),
        ],
        since,
    )


def reference_report(ledger: Ledger, since: datetime | None, *, until: datetime | None = None) -> Report:
    rows = summaries(ledger, since)
    uses: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        uses[r.frontier_price][0] += 1
        uses[r.frontier_price][1] += r.frontier_cost_nusd
    reasons = Counter(r.escalation_reason for r in rows if r.escalated)
    return Report(
        source="local",
        since=since,
        until=until or datetime.now(timezone.utc),
        totals=_stats("total", rows),
        by_task=_grouped(rows, "task"),
        by_tier=_grouped(rows, "tier"),
        by_model=_grouped(rows, "model"),
        by_repo=_grouped(rows, "repo"),
        by_week=_grouped(rows, "week"),
        escalation_reasons=reason_counts(reasons.items()),
        counterfactual=price_uses((code, n, nusd) for code, (n, nusd) in uses.items()),
    )


# --- the team report with one sort per grouping --------------------------------------------------

_WEEK = "to_char(date_trunc('week', ts AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"
_DIMS = ("task", "tier", "model", "repo", "week")


def _which(columns: tuple[str, ...]) -> tuple[str, str]:
    """SQL for the grouping set a row belongs to, and its key."""
    dim = " ".join(f"WHEN grouping({c}) = 0 THEN '{c}'" for c in columns)
    key = " ".join(f"WHEN grouping({c}) = 0 THEN {c}" for c in columns)
    return f"CASE {dim} ELSE 'total' END", f"CASE {key} END"


_ATTEMPT_SETS = (*_DIMS, "escalation_reason", "frontier_price")
_ATTEMPT_DIM, _ATTEMPT_KEY = _which(_ATTEMPT_SETS)
_REQUEST_DIM, _REQUEST_KEY = _which(_DIMS)
_BASE = f"""
SELECT task, tier, model, COALESCE(repo, '-') AS repo, {_WEEK} AS week, ledger_id, request_id, latency_ms,
       escalated, escalation_reason, frontier_price, prompt_tokens, completion_tokens, cached_tokens, cost_nusd,
       frontier_cost_nusd, outcome, shown, accepted
FROM {SCHEMA}.attempts WHERE ts >= %(since)s
"""
ATTEMPTS_SQL = f"""
WITH base AS ({_BASE})
SELECT {_ATTEMPT_DIM} AS dim, {_ATTEMPT_KEY} AS key, count(*), COALESCE(sum(prompt_tokens), 0),
       COALESCE(sum(completion_tokens), 0), COALESCE(sum(cached_tokens), 0), COALESCE(sum(cost_nusd), 0),
       COALESCE(sum(frontier_cost_nusd), 0),
       count(*) FILTER (WHERE outcome = ANY(%(failures)s)), count(*) FILTER (WHERE shown OR accepted),
       count(*) FILTER (WHERE accepted), count(*) FILTER (WHERE escalated)
FROM base GROUP BY GROUPING SETS ((), {', '.join(f'({c})' for c in _ATTEMPT_SETS)})
"""
REQUESTS_SQL = f"""
WITH base AS ({_BASE}),
per_request AS (
  SELECT {_REQUEST_DIM} AS dim, {_REQUEST_KEY} AS key, sum(latency_ms) AS latency, bool_or(escalated) AS escalated
  FROM base
  GROUP BY GROUPING SETS ((ledger_id, request_id), {', '.join(f'({c}, ledger_id, request_id)' for c in _DIMS)})
)
SELECT dim, key, count(*), count(*) FILTER (WHERE escalated),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY latency), percentile_disc(0.95) WITHIN GROUP (ORDER BY latency)
FROM per_request GROUP BY dim, key
"""


def reference_team_report(conn: Any, since: datetime | None, *, until: datetime | None = None) -> Report:
    """The team report as PostgreSQL aggregated it before (percentile_disc over each grouping)."""
    params = {"since": since or datetime.min.replace(tzinfo=timezone.utc), "failures": sorted(FAILURE_OUTCOMES)}
    with conn.cursor() as cur:
        # The groupings sort every request of the period: in memory, not in temporary files.
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute(ATTEMPTS_SQL, params)
        attempts = cur.fetchall()
        cur.execute(REQUESTS_SQL, params)
        requests = {(dim, key): rest for dim, key, *rest in cur.fetchall()}
    conn.commit()
    groups: dict[str, list[GroupStats]] = defaultdict(list)
    reasons: list[tuple[str | None, int]] = []
    prices: list[tuple[str | None, int, int]] = []
    totals = make_stats(
        "total",
        requests=0,
        attempts=0,
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        cost_nusd=0,
        frontier_nusd=0,
        escalations=0,
        failures=0,
        shown=0,
        accepted=0,
        p50=None,
        p95=None,
    )
    for dim, key, n, prompt, completion, cached, cost, frontier, failures, shown, accepted, escalated in attempts:
        if dim == "escalation_reason":
            if escalated:
                reasons.append((key, int(escalated)))
            continue
        if dim == "frontier_price":
            prices.append((key, int(n), int(frontier)))
            continue
        n_requests, escalations, p50, p95 = requests.get((dim, key), (0, 0, None, None))
        stats = make_stats(
            "total" if dim == "total" else str(key),
            requests=int(n_requests),
            attempts=int(n),
            prompt_tokens=int(prompt),
            completion_tokens=int(completion),
            cached_tokens=int(cached),
            cost_nusd=int(cost),
            frontier_nusd=int(frontier),
            escalations=int(escalations),
            failures=int(failures),
            shown=int(shown),
            accepted=int(accepted),
            p50=p50,
            p95=p95,
        )
        if dim == "total":
            totals = stats
        else:
            groups[dim].append(stats)
    return Report(
        source="team",
        since=since,
        until=until or datetime.now(timezone.utc),
        totals=totals,
        **{f"by_{d}": order_groups(groups[d], d) for d in DIMENSIONS},
        escalation_reasons=reason_counts(reasons),
        counterfactual=price_uses(prices),
    )


__all__ = ["reference_report", "reference_team_report"]
