"""The local report, aggregated inside SQLite.

Three reads on one snapshot of the ledger (Ledger.read_snapshot), whatever the period's size:

1. the rows of requests with more than one row in the period (escalations, retries): few,
   added up here exactly (figures.py);
2. attempt sums and rows per combination of task, tier, model, repository, week, escalation
   reason, counterfactual price and latency bucket (latency_ranks.py): SQLite groups with one
   sort, and one person's combinations are few, so they are rolled up into each dimension here;
3. the latencies of the few buckets where the percentiles fall.

Rows still kept in memory (the file was unusable when they were written) count too, as
requests of several rows.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta
from typing import Any

from lsp_server.ledger.figures import Group, ReportFigures, RowKeys, row_groups
from lsp_server.ledger.latency_ranks import bucket_sql
from lsp_server.ledger.report import NO_REPO, Report
from lsp_server.ledger.row import FAILURE_OUTCOMES, LedgerRow
from lsp_server.ledger.store import Ledger
from lsp_server.ledger.units import as_utc, to_nusd, week_start

# Two leading digits: about 90 buckets a decade. SQLite returns one row per combination and
# bucket, so finer buckets would cost more here than they save in step 4.
BUCKET_DIGITS = 2
_EPOCH = date(1970, 1, 1)


def _rows(since: datetime | None) -> str:
    """The period's rows with their week as a day number (the Monday, UTC, counted from
    1970-01-01): floor divisions written out, SQLite's `/` and `%` truncate towards zero."""
    where = "WHERE ts >= :since" if since is not None else ""
    return f"""
    SELECT *, day - ((day + 3) % 7 + 7) % 7 AS week, {bucket_sql('latency_ms', BUCKET_DIGITS, 'sqlite')} AS bucket
    FROM (SELECT *, (whole - ((whole % 86400) + 86400) % 86400) / 86400 AS day
          FROM (SELECT *, CAST(ts AS INTEGER) - (ts < CAST(ts AS INTEGER)) AS whole FROM attempts {where}))
    """


def _several(since: datetime | None) -> str:
    where = "WHERE ts >= :since" if since is not None else ""
    return f"""
    SELECT request_id, task, tier, model, repo, week, latency_ms, escalated FROM ({_rows(since)})
    WHERE request_id IN (SELECT request_id FROM attempts {where} GROUP BY request_id HAVING count(*) > 1)
       OR request_id IN (SELECT value FROM json_each(:kept))
    ORDER BY id
    """


def _sums(since: datetime | None) -> str:
    """Attempt sums, rows and escalated rows per combination of the report's keys, escalation,
    reason, price and latency bucket: every figure but the picks, in one sort."""
    failures = ", ".join(f"'{code}'" for code in sorted(FAILURE_OUTCOMES))
    return f"""
    SELECT task, tier, model, repo, week, escalated, escalation_reason, frontier_price, bucket,
           count(*), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(cost_nusd),
           sum(frontier_cost_nusd), count(*) FILTER (WHERE outcome IN ({failures})),
           count(*) FILTER (WHERE shown OR accepted), count(*) FILTER (WHERE accepted)
    FROM ({_rows(since)}) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    """


def _latencies(since: datetime | None) -> str:
    return f"""
    SELECT request_id, task, tier, model, repo, week, bucket, latency_ms FROM ({_rows(since)})
    WHERE bucket IN (SELECT value FROM json_each(:buckets))
    """


class _Groups:
    """The groups of a row from its keys as SQLite returns them (week as a day number), once per
    combination: the report's names (ISO week dates, "-" for no repository)."""

    def __init__(self) -> None:
        self._known: dict[tuple[Any, ...], tuple[Group, ...]] = {}

    def __call__(self, task: str, tier: str, model: str, repo: str | None, week: int) -> tuple[Group, ...]:
        found = self._known.get((task, tier, model, repo, week))
        if found is None:
            monday = (_EPOCH + timedelta(days=week)).isoformat()
            found = self._known[(task, tier, model, repo, week)] = row_groups(
                (task, tier, model, repo or NO_REPO, monday))
        return found

    def keys(self, task: str, tier: str, model: str, repo: str | None, week: int) -> RowKeys:
        return tuple(key for _, key in self(task, tier, model, repo, week)[1:])  # type: ignore[return-value]


def _kept_keys(row: LedgerRow) -> RowKeys:
    return row.task, row.tier, row.model, row.repo or NO_REPO, week_start(row.ts).isoformat()


def _aggregate(conn: sqlite3.Connection, kept: list[LedgerRow], since: datetime | None) -> ReportFigures:
    figures = ReportFigures(bucket_digits=BUCKET_DIGITS)
    groups = _Groups()
    params: dict[str, Any] = {"since": as_utc(since).timestamp() if since is not None else None,
                              "kept": json.dumps(sorted({r.request_id for r in kept}))}

    # 1. Requests of several rows, and of rows kept in memory (after their stored rows).
    several_rows = conn.execute(_several(since), params).fetchall()
    several = {r[0] for r in several_rows}
    figures.several_rows([
        *((request_id, groups.keys(task, tier, model, repo, week), latency, bool(escalated), True)
          for request_id, task, tier, model, repo, week, latency, escalated in several_rows),
        *((r.request_id, _kept_keys(r), r.latency_ms, r.escalated, False) for r in kept)])

    # 2. Sums and rows per latency bucket: each row a request, until step 1 took back out the
    # requests of several rows. Combinations first, then each dimension.
    cells: dict[tuple[Any, ...], list[int]] = {}
    buckets: dict[tuple[Any, ...], list[int]] = {}
    for *cell, escalated, reason, price, latency_bucket, n, prompt, completion, cached, cost, frontier, failed, \
            shown, accepted in conn.execute(_sums(since), params):
        sums = cells.get((*cell, escalated, reason, price))
        if sums is None:
            sums = cells[(*cell, escalated, reason, price)] = [0] * 9
        for i, value in enumerate((n, prompt, completion, cached, cost, frontier, failed, shown, accepted)):
            sums[i] += value
        rows = buckets.get((*cell, latency_bucket))
        if rows is None:
            rows = buckets[(*cell, latency_bucket)] = [0, 0]
        rows[0] += n
        rows[1] += n if escalated else 0
    for (*cell, escalated, reason, price), sums in cells.items():
        for group in groups(*cell):
            figures.add_sums(group, sums)
        if escalated:
            figures.add_reason(reason, sums[0])
        figures.add_price(price, sums[0], sums[5])
    for (*cell, latency_bucket), (n, escalated) in buckets.items():
        for group in groups(*cell):
            figures.add_rows(group, latency_bucket, n, escalated)

    # Rows kept in memory: their sums (their requests are in step 1).
    for row in kept:
        cost, frontier = to_nusd(row.cost_usd), to_nusd(row.frontier_cost_usd)
        sums = (1, row.prompt_tokens, row.completion_tokens, row.cached_tokens, cost, frontier,
                int(row.outcome in FAILURE_OUTCOMES), int(bool(row.shown or row.accepted)), int(bool(row.accepted)))
        for group in row_groups(_kept_keys(row)):
            figures.add_sums(group, sums)
        if row.escalated:
            figures.add_reason(row.escalation_reason, 1)
        figures.add_price(row.frontier_price, 1, frontier)

    # 3. The latencies of the buckets where the percentiles fall.
    wanted = figures.ranks.wanted_buckets()
    if wanted:
        params["buckets"] = json.dumps(sorted(wanted))
        ranks = figures.ranks
        for request_id, task, tier, model, repo, week, latency_bucket, latency in conn.execute(
                _latencies(since), params):
            if request_id in several:
                continue
            for group in groups(task, tier, model, repo, week):
                ranks.candidate(group, latency_bucket, latency)
    return figures


def build_report(ledger: Ledger, since: datetime | None, *, until: datetime | None = None) -> Report:
    """Aggregate the local ledger's rows since `since` (all rows if None)."""
    figures = ledger.read_snapshot(lambda conn, kept: _aggregate(conn, kept, since), since)
    return figures.report("local", since, until)


__all__ = ["BUCKET_DIGITS", "build_report"]
