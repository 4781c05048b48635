"""The team report: the same `Report` as the local one, aggregated inside PostgreSQL.

Four statements on one snapshot (a REPEATABLE READ transaction), each one pass over the
period's rows with hash aggregation, whatever the period's size:

1. the rows of requests with more than one row (a request is a ledger id and a request id:
   ids are per machine); few, added up exactly by figures.py;
2. attempt sums per task, tier, model, repository, week, escalation reason and price
   (GROUPING SETS);
3. rows and escalated rows per latency bucket of each of those groups (latency_ranks.py);
4. the latencies of the few buckets where the percentiles fall.

The definitions are report.py's; the percentiles are the nearest-rank values that
`report.percentile` picks, without sorting every request once per grouping.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from lsp_server.ledger.errors import TeamLedgerError
from lsp_server.ledger.figures import TOTAL, Group, ReportFigures
from lsp_server.ledger.latency_ranks import bucket_sql
from lsp_server.ledger.report import NO_REPO, Report
from lsp_server.ledger.row import FAILURE_OUTCOMES
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.pg import connect, describe, scrub
from lsp_server.ledger.team.schema import SCHEMA, ensure_schema

# Three leading digits, about 900 buckets a decade: PostgreSQL returns one row per group and
# bucket, few enough, and step 4 then fetches about a hundredth of a group's rows per pick.
BUCKET_DIGITS = 2
_DIMS = ("task", "tier", "model", "repo", "week")
_ROWS = f"""
SELECT ledger_id, request_id, row_id, task, tier, model, COALESCE(NULLIF(repo, ''), '{NO_REPO}') AS repo,
       date_trunc('week', ts AT TIME ZONE 'UTC')::date AS week, latency_ms, escalated, escalation_reason,
       frontier_price, prompt_tokens, completion_tokens, cached_tokens, cost_nusd, frontier_cost_nusd, outcome,
       shown, accepted, {bucket_sql('latency_ms', BUCKET_DIGITS, 'postgresql')} AS bucket
FROM {SCHEMA}.attempts WHERE ts >= %(since)s
"""
_KEYS = "task, tier, model, repo, to_char(week, 'YYYY-MM-DD')"


def _which(columns: tuple[str, ...]) -> tuple[str, str]:
    """SQL for the grouping set a row belongs to, and its key (as text)."""
    dim = " ".join(f"WHEN grouping({c}) = 0 THEN '{c}'" for c in columns)
    key = " ".join(f"WHEN grouping({c}) = 0 THEN "
                   f"{'to_char(week, ' + repr('YYYY-MM-DD') + ')' if c == 'week' else c + '::text'}" for c in columns)
    return f"CASE {dim} ELSE 'total' END", f"CASE {key} END"


_SUM_SETS = (*_DIMS, "escalation_reason", "frontier_price")
_SUM_DIM, _SUM_KEY = _which(_SUM_SETS)
_BUCKET_DIM, _BUCKET_KEY = _which(_DIMS)

SEVERAL_SQL = f"""
WITH several AS MATERIALIZED (SELECT ledger_id, request_id FROM {SCHEMA}.attempts WHERE ts >= %(since)s
                              GROUP BY ledger_id, request_id HAVING count(*) > 1)
SELECT ledger_id, request_id, {_KEYS}, latency_ms, escalated
FROM ({_ROWS}) r JOIN several USING (ledger_id, request_id)
ORDER BY ledger_id, request_id, row_id
"""
# Grouping sets multiply the work per row by their number: the rows are first grouped by
# every key at once into cells (one hash table), and the cells by each key.
_CELL_KEYS = (*_DIMS, "escalation_reason", "frontier_price")
SUMS_SQL = f"""
WITH cells AS (
  SELECT {', '.join(_CELL_KEYS)}, count(*) AS n, sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion,
         sum(cached_tokens) AS cached, sum(cost_nusd) AS cost, sum(frontier_cost_nusd) AS frontier,
         count(*) FILTER (WHERE outcome = ANY(%(failures)s)) AS failures,
         count(*) FILTER (WHERE shown OR accepted) AS shown, count(*) FILTER (WHERE accepted) AS accepted,
         count(*) FILTER (WHERE escalated) AS escalated
  FROM ({_ROWS}) r GROUP BY {', '.join(_CELL_KEYS)})
SELECT {_SUM_DIM}, {_SUM_KEY}, COALESCE(sum(n), 0), COALESCE(sum(prompt), 0), COALESCE(sum(completion), 0),
       COALESCE(sum(cached), 0), COALESCE(sum(cost), 0), COALESCE(sum(frontier), 0), COALESCE(sum(failures), 0),
       COALESCE(sum(shown), 0), COALESCE(sum(accepted), 0), COALESCE(sum(escalated), 0)
FROM cells GROUP BY GROUPING SETS ((), {', '.join(f'({c})' for c in _SUM_SETS)})
"""
# Per dimension only: every row has one task, so the totals are the sums over tasks (figures.py).
# Straight from the rows: one cell per key and bucket would be nearly as many as the rows.
BUCKETS_SQL = f"""
WITH cells AS (
  SELECT {', '.join(_DIMS)}, bucket, count(*) AS n, count(*) FILTER (WHERE escalated) AS escalated
  FROM ({_ROWS}) r GROUP BY {', '.join(_DIMS)}, bucket)
SELECT {_BUCKET_DIM}, {_BUCKET_KEY}, bucket, sum(n), sum(escalated)
FROM cells GROUP BY GROUPING SETS ({', '.join(f'({c}, bucket)' for c in _DIMS)})
"""
LATENCIES_SQL = f"""
SELECT ledger_id, request_id, {_KEYS}, bucket, latency_ms FROM ({_ROWS}) r WHERE bucket = ANY(%(buckets)s)
"""


def _group(dim: str, key: str | None) -> Group:
    return TOTAL if dim == "total" else (dim, str(key))


def _aggregate(cur: Any, params: dict[str, Any]) -> ReportFigures:
    figures = ReportFigures(bucket_digits=BUCKET_DIGITS)

    # 1. Requests of several rows.
    cur.execute(SEVERAL_SQL, params)
    several_rows = cur.fetchall()
    several = {(ledger, request) for ledger, request, *_ in several_rows}
    figures.several_rows(((ledger, request), tuple(keys), latency, escalated, True)
                         for ledger, request, *keys, latency, escalated in several_rows)

    # 2. Attempt sums.
    cur.execute(SUMS_SQL, params)
    for dim, key, n, prompt, completion, cached, cost, frontier, failures, shown, accepted, escalated in cur:
        if dim == "escalation_reason":
            if escalated:
                figures.add_reason(key, escalated)
        elif dim == "frontier_price":
            figures.add_price(key, n, frontier)
        else:
            figures.add_sums(_group(dim, key), (n, prompt, completion, cached, cost, frontier, failures, shown,
                                                accepted))

    # 3. Rows per latency bucket, each a request until step 1 took the requests of several rows back out.
    cur.execute(BUCKETS_SQL, params)
    for dim, key, latency_bucket, n, escalated in cur:
        figures.add_rows(_group(dim, key), latency_bucket, n, escalated)
        if dim == "task":
            figures.add_rows(TOTAL, latency_bucket, n, escalated)

    # 4. The latencies of the buckets where the percentiles fall.
    wanted = figures.ranks.wanted_buckets()
    if wanted:
        cur.execute(LATENCIES_SQL, {**params, "buckets": sorted(wanted)})
        ranks = figures.ranks
        for ledger, request, task, tier, model, repo, week, latency_bucket, latency in cur:
            if (ledger, request) in several:
                continue
            for group in (TOTAL, ("task", task), ("tier", tier), ("model", model), ("repo", repo), ("week", week)):
                ranks.candidate(group, latency_bucket, latency)
    return figures


def build_team_report(conn: Any, since: datetime | None, *, until: datetime | None = None) -> Report:
    """The report over the team ledger's rows since `since` (all if None), on an idle connection."""
    from psycopg import IsolationLevel

    params = {"since": since or datetime.min.replace(tzinfo=timezone.utc), "failures": sorted(FAILURE_OUTCOMES)}
    # One snapshot for the four statements: rows shipped meanwhile must not count in some only.
    conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
    try:
        with conn.cursor() as cur:
            # The first statement groups every request of the period: in memory. No JIT: it
            # costs more to compile these statements than they run.
            cur.execute("SET LOCAL work_mem = '256MB'")
            cur.execute("SET LOCAL jit = off")
            # Hash every grouping: the planner, without statistics on the keys computed here,
            # expects a million groups and would rather sort a million rows.
            cur.execute("SET LOCAL enable_sort = off")
            figures = _aggregate(cur, params)
    finally:
        conn.rollback()  # read only: nothing to keep
        conn.isolation_level, conn.read_only = None, None
    return figures.report("team", since, until)


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


__all__ = ["BUCKETS_SQL", "LATENCIES_SQL", "SEVERAL_SQL", "SUMS_SQL", "build_team_report", "team_report"]
