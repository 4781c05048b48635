"""The team report: the same `Report` as the local one, aggregated inside PostgreSQL.

Statements on one snapshot (a REPEATABLE READ transaction), each one pass over the period's
rows with hash aggregation, whatever the period's size:

1. the requests with more than one row (a request is a ledger id and a request id: ids are
   per machine), their row counts, and for pairs their two rows' ids;
2. requests per latency bucket and attempt sums of each task, tier, model, repository and
   week, counted as units (figures.py): requests of one row, and requests of two rows joined
   row to row (found by primary key); GROUPING SETS over the cells of all five keys;
3. escalation reasons and counterfactual prices, over attempts;
4. the rows of the rare requests of three rows or more, added up by figures.py;
5. the latencies of the few buckets where the percentiles fall (latency_ranks.py).

The definitions are report.py's; the percentiles are the nearest-rank values that
`report.percentile` picks, without sorting every request once per grouping.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from lsp_server.ledger.errors import TeamLedgerError
from lsp_server.ledger.figures import (
    ADDITIVE,
    TOTAL,
    Group,
    ReportFigures,
    UnitGroups,
    pairs_sql,
    units_sql,
)
from lsp_server.ledger.latency_ranks import bucket_sql
from lsp_server.ledger.report import DIMENSIONS, NO_REPO, Report
from lsp_server.ledger.row import FAILURE_OUTCOMES
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.pg import connect, describe, scrub
from lsp_server.ledger.team.schema import SCHEMA, ensure_schema

# Two leading digits, about 90 buckets a decade: the groups' buckets stay few, and a pick
# fetches a few percent of a group's requests at most.
BUCKET_DIGITS = 2
_ROWS = f"""
SELECT uid, ledger_id, request_id, row_id, task, tier, model, COALESCE(NULLIF(repo, ''), '{NO_REPO}') AS repo,
       date_trunc('week', ts AT TIME ZONE 'UTC')::date AS week, latency_ms, escalated,
       {bucket_sql('latency_ms', BUCKET_DIGITS, 'postgresql')} AS bucket,
       1 AS n_attempts, prompt_tokens, completion_tokens, cached_tokens, cost_nusd, frontier_cost_nusd,
       (outcome = ANY(%(failures)s))::int AS n_failed, ((shown OR accepted) IS TRUE)::int AS n_shown,
       (accepted IS TRUE)::int AS n_accepted
FROM {SCHEMA}.attempts
"""
_PERIOD = "WHERE ts >= %(since)s"
_WEEK = "to_char(week, 'YYYY-MM-DD')"  # the report's name of a week
_KEYS = ", ".join(_WEEK if c == "week" else c for c in DIMENSIONS)

SEVERAL_SQL = f"""
SELECT ledger_id, request_id, count(*), min(row_id), max(row_id) FROM {SCHEMA}.attempts WHERE ts >= %(since)s
GROUP BY ledger_id, request_id HAVING count(*) > 1
"""
# The requests of several rows, from step 1; the rows of the pairs, by their primary key.
_SEVERAL = (
    "several AS (SELECT * FROM unnest(%(ledgers)s::text[], %(requests)s::text[], %(counts)s::int[]) "
    "AS s(ledger_id, request_id, n))"
)
_PAIRS = "pairs AS ({})".format(
    pairs_sql(
        rows=f"{_ROWS} WHERE uid = ANY(%(pair_uids)s) AND ts >= %(since)s",
        request=("ledger_id", "request_id"),
        order="row_id",
    )
)
_UNITS = units_sql(
    rows=f"{_ROWS} {_PERIOD}",
    pairs="pairs",
    singles="NOT EXISTS (SELECT 1 FROM several s WHERE s.ledger_id = r.ledger_id AND s.request_id = r.request_id)",
    bucket_of=lambda latency: bucket_sql(latency, BUCKET_DIGITS, "postgresql"),
)
# The total counts whole requests only; a dimension counts units that have its key.
_UNIT_DIM = (
    "CASE WHEN grouping(whole) = 0 THEN CASE WHEN whole = 1 THEN 'total' END "
    + " ".join(f"WHEN grouping({c}) = 0 THEN '{c}'" for c in DIMENSIONS)
    + " END"
)
_UNIT_KEY = (
    "CASE WHEN grouping(whole) = 0 THEN 'total' "
    + " ".join(f"WHEN grouping({c}) = 0 THEN {_WEEK if c == 'week' else c}" for c in DIMENSIONS)
    + " END"
)
# Grouping sets multiply the work per row by their number: the units are first grouped by
# every key at once into cells (one hash table), then the cells by each key.
UNITS_SQL = f"""
WITH {_SEVERAL}, {_PAIRS}, {_UNITS},
cells AS (SELECT whole, {', '.join(DIMENSIONS)}, bucket, count(*) AS n, count(*) FILTER (WHERE escalated) AS escalated,
                 {', '.join(f'sum({c}) AS {c}' for c in ADDITIVE)}
          FROM units GROUP BY whole, {', '.join(DIMENSIONS)}, bucket)
SELECT {_UNIT_DIM}, {_UNIT_KEY}, bucket, sum(n), sum(escalated), {', '.join(f'sum({c})' for c in ADDITIVE)}
FROM cells GROUP BY GROUPING SETS ((whole, bucket), {', '.join(f'({c}, bucket)' for c in DIMENSIONS)})
"""
ATTEMPTS_SQL = f"""
SELECT grouping(frontier_price) = 1, frontier_price, escalated, escalation_reason, count(*),
       COALESCE(sum(frontier_cost_nusd), 0)
FROM {SCHEMA}.attempts {_PERIOD}
GROUP BY GROUPING SETS ((frontier_price), (escalated, escalation_reason))
"""
OTHERS_SQL = f"""
WITH {_SEVERAL}
SELECT ledger_id, request_id, {_KEYS}, latency_ms, escalated, {', '.join(ADDITIVE)} FROM ({_ROWS} {_PERIOD}) r
WHERE EXISTS (SELECT 1 FROM several s WHERE s.ledger_id = r.ledger_id AND s.request_id = r.request_id AND s.n > 2)
ORDER BY ledger_id, request_id, row_id
"""
LATENCIES_SQL = f"""
WITH {_SEVERAL}, {_PAIRS}, {_UNITS}
SELECT whole, {_KEYS}, bucket, latency FROM units
WHERE bucket = ANY(%(buckets)s)
"""


def _group(dim: str, key: str | None) -> Group:
    return TOTAL if dim == "total" else (dim, str(key))


def _aggregate(cur: Any, params: dict[str, Any]) -> ReportFigures:
    figures = ReportFigures(bucket_digits=BUCKET_DIGITS)

    # 1. Requests of several rows: pairs are counted as units; the others are added up here.
    cur.execute(SEVERAL_SQL, params)
    several = cur.fetchall()
    params = {
        **params,
        "ledgers": [s[0] for s in several],
        "requests": [s[1] for s in several],
        "counts": [s[2] for s in several],
        "pair_uids": [f"{s[0]}:{row}" for s in several if s[2] == 2 for row in (s[3], s[4])],
    }

    # 2. Units per latency bucket, with their attempt sums.
    cur.execute(UNITS_SQL, params)
    for dim, key, latency_bucket, n, escalated, *sums in cur:
        if dim is not None and key is not None:
            group = _group(dim, key)
            figures.add_units(group, latency_bucket, n, escalated)
            figures.add_sums(group, sums)

    # 3. Reasons (of escalated attempts) and prices, over attempts.
    cur.execute(ATTEMPTS_SQL, params)
    for is_reason, price, escalated, reason, n, frontier in cur:
        if not is_reason:
            figures.add_price(price, n, frontier)
        elif escalated:
            figures.add_reason(reason, n)

    # 4. The other requests, row by row.
    if any(n > 2 for _, _, n, *_ in several):
        cur.execute(OTHERS_SQL, params)
        figures.requests_of_rows(
            ((ledger, request), (task, tier, model, repo, week), latency, escalated, sums)
            for ledger, request, task, tier, model, repo, week, latency, escalated, *sums in cur
        )

    # 5. The latencies of the buckets where the percentiles fall.
    wanted = figures.ranks.wanted_buckets()
    if wanted:
        cur.execute(LATENCIES_SQL, {**params, "buckets": sorted(wanted)})
        ranks = figures.ranks
        of_unit = UnitGroups()
        for whole, *keys, latency_bucket, latency in cur:
            for group in of_unit(whole, *keys):
                ranks.candidate(group, latency_bucket, latency)
    return figures


def build_team_report(conn: Any, since: datetime | None, *, until: datetime | None = None) -> Report:
    """The report over the team ledger's rows since `since` (all if None), on an idle connection."""
    from psycopg import IsolationLevel

    params = {"since": since or datetime.min.replace(tzinfo=timezone.utc), "failures": sorted(FAILURE_OUTCOMES)}
    # One snapshot for all the statements: rows shipped meanwhile must not count in some only.
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


__all__ = [
    "ATTEMPTS_SQL",
    "LATENCIES_SQL",
    "OTHERS_SQL",
    "SEVERAL_SQL",
    "UNITS_SQL",
    "build_team_report",
    "team_report",
]
