"""The team report: the same `Report` as the local one, aggregated inside PostgreSQL.

Two scans of the period's rows, whatever its size: one groups attempts (sums and counts per
task, tier, model, repository, week, escalation reason and price, with GROUPING SETS), one
groups requests (a request is a ledger id and a request id; its latency in a group is the sum
of its attempts there) and takes their nearest-rank percentiles with `percentile_disc`, which
picks the same value as the local report's `percentile`. The definitions are report.py's.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from lsp_server.ledger.errors import TeamLedgerError
from lsp_server.ledger.report import (
    DIMENSIONS,
    GroupStats,
    Report,
    make_stats,
    order_groups,
    price_uses,
    reason_counts,
)
from lsp_server.ledger.row import FAILURE_OUTCOMES
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.pg import connect, describe, scrub
from lsp_server.ledger.team.schema import SCHEMA, ensure_schema

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


def build_team_report(conn: Any, since: datetime | None, *, until: datetime | None = None) -> Report:
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


def team_report(settings: TeamLedgerSettings, since: datetime | None) -> Report:
    """The team ledger's report; TeamLedgerError when it cannot be read."""
    conn = connect(settings)
    try:
        ensure_schema(conn, write=False)
        return build_team_report(conn, since)
    except TeamLedgerError:
        raise
    except Exception as error:
        raise TeamLedgerError(
            f"cannot read the team ledger ({describe(settings.url or '')}): "
            f"{scrub(str(error).strip(), settings.url or '')}"
        ) from None
    finally:
        conn.close()


__all__ = ["ATTEMPTS_SQL", "REQUESTS_SQL", "build_team_report", "team_report"]
