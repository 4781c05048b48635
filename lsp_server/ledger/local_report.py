"""The local report, aggregated inside SQLite.

Reads on one snapshot of the ledger (Ledger.read_snapshot), whatever the period's size:

1. the requests with more than one row in the period, and their row counts (the request
   index answers this without sorting the period);
2. the requests of two rows, joined row to row into a temporary table;
3. requests per latency bucket and attempt sums, counted as units (figures.py) per
   combination of task, tier, model, repository and week: one sort of the period, and one
   person's combinations are few, so they are rolled up into each dimension here;
4. escalation reasons and counterfactual prices, over attempts;
5. the rows of the rare requests of three rows or more, added up here;
6. the latencies of the few buckets where the percentiles fall (latency_ranks.py).

Rows still kept in memory (the file was unusable when they were written) count too: their
requests are added up here with their stored rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from lsp_server.ledger.figures import ADDITIVE, ReportFigures, RowKeys, UnitGroups, pairs_sql, units_sql
from lsp_server.ledger.latency_ranks import bucket_sql
from lsp_server.ledger.report import NO_REPO, Report
from lsp_server.ledger.row import FAILURE_OUTCOMES, LedgerRow
from lsp_server.ledger.store import Ledger
from lsp_server.ledger.units import as_utc, to_nusd, week_start

# Two leading digits: about 90 buckets a decade. SQLite returns one row per combination and
# bucket, so finer buckets would cost more here than they save in step 6.
BUCKET_DIGITS = 2
_EPOCH = date(1970, 1, 1)
_PAIRS = "temp.ninetyten_report_pairs"
_FAILURES = ", ".join(f"'{code}'" for code in sorted(FAILURE_OUTCOMES))


def _where(since: datetime | None, *more: str) -> str:
    conditions = (["ts >= :since"] if since is not None else []) + list(more)
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def _rows(since: datetime | None) -> str:
    """The period's rows with their week as a day number (the Monday, UTC, counted from
    1970-01-01: floor divisions written out, as SQLite's `/` and `%` truncate towards zero),
    their latency bucket, "-" for no repository, and what they add to attempt sums."""
    return f"""
    SELECT id, request_id, task, tier, model, COALESCE(NULLIF(repo, ''), '{NO_REPO}') AS repo, latency_ms, escalated,
           day - ((day + 3) % 7 + 7) % 7 AS week, {bucket_sql('latency_ms', BUCKET_DIGITS, 'sqlite')} AS bucket,
           1 AS n_attempts, prompt_tokens, completion_tokens, cached_tokens, cost_nusd, frontier_cost_nusd,
           outcome IN ({_FAILURES}) AS n_failed, ifnull(shown OR accepted, 0) AS n_shown,
           ifnull(accepted, 0) AS n_accepted
    FROM (SELECT *, (whole - ((whole % 86400) + 86400) % 86400) / 86400 AS day
          FROM (SELECT *, CAST(ts AS INTEGER) - (ts < CAST(ts AS INTEGER)) AS whole FROM attempts {_where(since)}))
    """


def _several(since: datetime | None) -> str:
    return f"SELECT request_id, count(*) FROM attempts {_where(since)} GROUP BY request_id HAVING count(*) > 1"


def _pairs(since: datetime | None) -> str:
    rows = f"SELECT * FROM ({_rows(since)}) WHERE request_id IN (SELECT value FROM json_each(:pairs))"
    return f"CREATE TEMP TABLE {_PAIRS.split('.')[1]} AS {pairs_sql(rows=rows, request=('request_id',), order='id')}"


def _units(since: datetime | None) -> str:
    return units_sql(
        rows=_rows(since),
        singles="request_id NOT IN (SELECT value FROM json_each(:apart))",
        pairs=_PAIRS,
        bucket_of=lambda latency: bucket_sql(latency, BUCKET_DIGITS, "sqlite"),
    )


def _unit_sums(since: datetime | None) -> str:
    return f"""
    WITH {_units(since)}
    SELECT whole, task, tier, model, repo, week, bucket, count(*), count(*) FILTER (WHERE escalated),
           {', '.join(f'sum({c})' for c in ADDITIVE)}
    FROM units GROUP BY 1, 2, 3, 4, 5, 6, 7
    """


def _reasons(since: datetime | None) -> str:
    return f"SELECT escalation_reason, count(*) FROM attempts {_where(since, 'escalated')} GROUP BY 1"


def _prices(since: datetime | None) -> str:
    return f"SELECT frontier_price, count(*), sum(frontier_cost_nusd) FROM attempts {_where(since)} GROUP BY 1"


def _latencies(since: datetime | None) -> str:
    return f"""
    WITH {_units(since)}
    SELECT whole, task, tier, model, repo, week, bucket, latency FROM units
    WHERE bucket IN (SELECT value FROM json_each(:buckets))
    """


def _rows_of(since: datetime | None) -> str:
    return f"""
    SELECT request_id, task, tier, model, repo, week, latency_ms, escalated, {', '.join(ADDITIVE)} FROM ({_rows(since)})
    WHERE request_id IN (SELECT value FROM json_each(:apart_here)) ORDER BY id
    """


class _Groups:
    """Group keys as the report names them (ISO week dates, from SQLite's day numbers)."""

    def __init__(self) -> None:
        self._weeks: dict[int, str] = {}
        self.of_unit = UnitGroups(self.week)

    def week(self, day: int) -> str:
        name = self._weeks.get(day)
        if name is None:
            name = self._weeks[day] = (_EPOCH + timedelta(days=day)).isoformat()
        return name

    def keys(self, task: str, tier: str, model: str, repo: str, week: int) -> RowKeys:
        return task, tier, model, repo, self.week(week)


def _kept_keys(row: LedgerRow) -> RowKeys:
    return row.task, row.tier, row.model, row.repo or NO_REPO, week_start(row.ts).isoformat()


def _kept_sums(row: LedgerRow) -> tuple[int, ...]:
    return (
        1,
        row.prompt_tokens,
        row.completion_tokens,
        row.cached_tokens,
        to_nusd(row.cost_usd),
        to_nusd(row.frontier_cost_usd),
        int(row.outcome in FAILURE_OUTCOMES),
        int(bool(row.shown or row.accepted)),
        int(bool(row.accepted)),
    )


def _aggregate(conn: sqlite3.Connection, kept: list[LedgerRow], since: datetime | None) -> ReportFigures:
    figures = ReportFigures(bucket_digits=BUCKET_DIGITS)
    groups = _Groups()
    params: dict[str, Any] = {"since": as_utc(since).timestamp() if since is not None else None}

    # 1. Requests of several rows: pairs are counted as units; the others, and the requests
    # of rows kept in memory, are added up here.
    several = dict(conn.execute(_several(since), params).fetchall())
    kept_requests = {r.request_id for r in kept}
    here = sorted({r for r, n in several.items() if n > 2} | kept_requests)
    params.update(
        apart=json.dumps(sorted(several.keys() | kept_requests)),
        apart_here=json.dumps(here),
        pairs=json.dumps(sorted(r for r, n in several.items() if n == 2 and r not in kept_requests)),
    )

    # 2. The pairs, once for steps 3 and 6.
    conn.execute(f"DROP TABLE IF EXISTS {_PAIRS}")
    conn.execute(_pairs(since), params)

    # 3. Units per latency bucket, with their attempt sums.
    for row in conn.execute(_unit_sums(since), params):
        latency_bucket, n, escalated, sums = row[6], row[7], row[8], row[9:]
        for group in groups.of_unit(*row[:6]):
            figures.add_units(group, latency_bucket, n, escalated)
            figures.add_sums(group, sums)

    # 4. Reasons and prices, over attempts.
    for reason, n in conn.execute(_reasons(since), params):
        figures.add_reason(reason, n)
    for price, n, frontier in conn.execute(_prices(since), params):
        figures.add_price(price, n, frontier)

    # 5. The other requests, row by row, and rows kept in memory.
    requests: list[tuple[Any, RowKeys, float, bool, Sequence[int]]] = [
        (request_id, groups.keys(task, tier, model, repo, week), latency, bool(escalated), sums)
        for request_id, task, tier, model, repo, week, latency, escalated, *sums in conn.execute(
            _rows_of(since), params
        )
    ]
    for row in kept:
        if row.escalated:
            figures.add_reason(row.escalation_reason, 1)
        figures.add_price(row.frontier_price, 1, to_nusd(row.frontier_cost_usd))
        requests.append((row.request_id, _kept_keys(row), row.latency_ms, row.escalated, _kept_sums(row)))
    figures.requests_of_rows(requests)

    # 6. The latencies of the buckets where the percentiles fall.
    wanted = figures.ranks.wanted_buckets()
    if wanted:
        params["buckets"] = json.dumps(sorted(wanted))
        ranks = figures.ranks
        for whole, *keys, latency_bucket, latency in conn.execute(_latencies(since), params):
            for group in groups.of_unit(whole, *keys):
                ranks.candidate(group, latency_bucket, latency)
    conn.execute(f"DROP TABLE {_PAIRS}")
    return figures


def build_report(ledger: Ledger, since: datetime | None, *, until: datetime | None = None) -> Report:
    """Aggregate the local ledger's rows since `since` (all rows if None)."""
    figures = ledger.read_snapshot(lambda conn, kept: _aggregate(conn, kept, since), since)
    return figures.report("local", since, until)


__all__ = ["BUCKET_DIGITS", "build_report"]
