"""What a report adds up, handed in by either database, turned into a `Report`.

The local report (SQLite, local_report.py) and the team report (PostgreSQL, team/aggregate.py)
aggregate in their own SQL, and both hand the results here per group, so that each figure
is assembled in one place (the definitions are report.py's):

- attempt sums per group: attempts, tokens, money, failures, shown, accepted;
- escalation reasons and counterfactual prices, over attempts;
- requests, escalated requests and latency percentiles per group. A request's latency in a
  group is the sum of its attempts' latencies there, so the databases count *units*: a
  request in one group, with its latency there. A request of one row is a unit in every
  group; a request of two rows (an escalation, mostly) is one unit of the two summed in the
  groups its rows share and two units in the others; both are counted per latency bucket
  (latency_ranks.py). The rare requests of three rows or more, and rows kept in memory,
  come here row by row (`requests_of_rows`) and are added up in storage order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from lsp_server.ledger.latency_ranks import LatencyRanks
from lsp_server.ledger.report import DIMENSIONS, GroupStats, Report, make_stats, order_groups, price_uses, reason_counts

Group = tuple[str, str]  # (dimension, key), or TOTAL
TOTAL: Group = ("total", "total")
# Keys of a row in DIMENSIONS order after "total": task, tier, model, repo, week.
RowKeys = tuple[str, str, str, str, str]
# attempts, prompt, completion and cached tokens, cost and frontier cost (nano-dollars),
# failures, shown (or accepted), accepted
SUMS = 9


def row_groups(keys: RowKeys) -> tuple[Group, ...]:
    """Every group a row belongs to: the total and one per dimension."""
    return (TOTAL, *zip(DIMENSIONS, keys))


def unit_groups(whole: bool, keys: tuple[str | None, ...]) -> tuple[Group, ...]:
    """The groups a unit counts in: the total when it is a whole request, and each dimension
    whose key it has (None: the unit does not count there; its request's other unit does)."""
    return ((TOTAL,) if whole else ()) + tuple((d, k) for d, k in zip(DIMENSIONS, keys) if k is not None)


class UnitGroups:
    """`unit_groups` of the units a database hands in as (whole, *keys), worked out once per
    combination of keys: a report has few, and many units. `week` names a week key as the
    report does, when the database hands it in another form."""

    def __init__(self, week: Callable[[Any], str] | None = None) -> None:
        self._week = week
        self._known: dict[tuple[Any, ...], tuple[Group, ...]] = {}

    def __call__(self, whole: int, *keys: Any) -> tuple[Group, ...]:
        found = self._known.get((whole, *keys))
        if found is None:
            week = keys[4]
            if week is not None and self._week is not None:
                week = self._week(week)
            found = self._known[(whole, *keys)] = unit_groups(bool(whole), (*keys[:4], week))
        return found


# What a unit adds to its groups' attempt sums (columns of the rows, summed for a pair), in
# the order of SUMS: attempts (1 a row), tokens, money, failed (0 / 1), shown or accepted, accepted.
ADDITIVE = (
    "n_attempts",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nusd",
    "frontier_cost_nusd",
    "n_failed",
    "n_shown",
    "n_accepted",
)
assert len(ADDITIVE) == SUMS


def pairs_sql(*, rows: str, request: tuple[str, ...], order: str) -> str:
    """The requests of two rows, one row each: `rows` are their rows (the period's rows of
    those requests, with `week`, `bucket` and the ADDITIVE columns), `request` the columns
    naming a request, `order` the column that orders its rows."""
    same = " AND ".join(f"b.{c} = a.{c}" for c in request)
    columns = ", ".join(
        f"a.{c} AS a_{c}, b.{c} AS b_{c}" for c in (*DIMENSIONS, "bucket", "latency_ms", "escalated", *ADDITIVE)
    )
    return f"""
    WITH pair_rows AS ({rows})
    SELECT {columns}, a.latency_ms + b.latency_ms AS latency  -- two addends: the same sum in either order
    FROM pair_rows a JOIN pair_rows b ON {same} AND b.{order} > a.{order}
    """


def units_sql(*, rows: str, singles: str, pairs: str, bucket_of: Callable[[str], str]) -> str:
    """CTEs ending in `units (whole, task, tier, model, repo, week, bucket, latency, escalated,
    *ADDITIVE)`: the requests of one row (`rows` filtered by `singles`) and the relation
    `pairs` (pairs_sql). `bucket_of` gives the bucket expression of a latency expression.

    A pair of rows is one unit (whole) with the keys the two share and the sums of both, and
    one unit per row with the keys where they differ; a NULL key: the unit does not count in
    that dimension (its request's other unit does)."""
    shared = ", ".join(f"CASE WHEN a_{k} = b_{k} THEN a_{k} END" for k in DIMENSIONS)
    only_a = ", ".join(f"CASE WHEN a_{k} <> b_{k} THEN a_{k} END" for k in DIMENSIONS)
    only_b = ", ".join(f"CASE WHEN a_{k} <> b_{k} THEN b_{k} END" for k in DIMENSIONS)
    return f"""
    r AS NOT MATERIALIZED ({rows}),  -- scanned once per use: cheaper than keeping a copy
    units AS (
      SELECT 1 AS whole, {', '.join(DIMENSIONS)}, bucket, latency_ms AS latency, escalated, {', '.join(ADDITIVE)}
      FROM r WHERE {singles}
      UNION ALL SELECT 1, {shared}, {bucket_of('latency')}, latency, a_escalated OR b_escalated,
                       {', '.join(f'a_{c} + b_{c}' for c in ADDITIVE)} FROM {pairs}
      UNION ALL SELECT 0, {only_a}, a_bucket, a_latency_ms, a_escalated, {', '.join(f'a_{c}' for c in ADDITIVE)}
                FROM {pairs}
      UNION ALL SELECT 0, {only_b}, b_bucket, b_latency_ms, b_escalated, {', '.join(f'b_{c}' for c in ADDITIVE)}
                FROM {pairs})
    """


class ReportFigures:
    def __init__(self, *, bucket_digits: int) -> None:
        self._sums: dict[Group, list[int]] = defaultdict(lambda: [0] * SUMS)
        self._requests: dict[Group, list[int]] = defaultdict(lambda: [0, 0])  # requests, escalated requests
        self._reasons: Counter[str | None] = Counter()
        self._prices: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])  # attempts, frontier nano-dollars
        self.ranks = LatencyRanks(digits=bucket_digits)

    # --- attempts ---

    def add_sums(self, group: Group, sums: Sequence[int]) -> None:
        target = self._sums[group]
        for i, value in enumerate(sums):
            target[i] += int(value)

    def add_reason(self, reason: str | None, attempts: int) -> None:
        """`attempts` escalated attempts gave `reason`."""
        self._reasons[reason] += int(attempts)

    def add_price(self, code: str | None, attempts: int, frontier_nusd: int) -> None:
        entry = self._prices[code]
        entry[0] += int(attempts)
        entry[1] += int(frontier_nusd)

    # --- requests ---

    def add_units(self, group: Group, latency_bucket: int, units: int, escalated: int) -> None:
        """The database's count: `units` requests of `group` with their latency there in
        `latency_bucket`, `escalated` of them escalated."""
        entry = self._requests[group]
        entry[0] += int(units)
        entry[1] += int(escalated)
        self.ranks.count(group, latency_bucket, int(units))

    def requests_of_rows(self, rows: Iterable[tuple[Hashable, RowKeys, float, bool, Sequence[int]]]) -> None:
        """Requests the database did not count, as their rows: (request, keys, latency,
        escalated, attempt sums), a request's rows in the order they were stored."""
        latency: dict[tuple[Group, Hashable], float] = {}
        escalated: dict[tuple[Group, Hashable], bool] = {}
        for request, keys, latency_ms, was_escalated, sums in rows:
            for group in row_groups(keys):
                self.add_sums(group, sums)
                key = (group, request)
                latency[key] = latency.get(key, 0.0) + latency_ms  # a float sum depends on the order
                escalated[key] = escalated.get(key, False) or bool(was_escalated)
        for (group, request), total in latency.items():
            entry = self._requests[group]
            entry[0] += 1
            entry[1] += int(escalated[(group, request)])
            self.ranks.value(group, total)

    # --- the report ---

    def report(self, source: Literal["local", "team"], since: datetime | None, until: datetime | None) -> Report:
        """Call after the latencies of `ranks.wanted_buckets()` went to `ranks.candidate()`."""
        groups: dict[str, list[GroupStats]] = defaultdict(list)
        totals = self._stats("total", TOTAL)
        for group in self._sums:
            if group != TOTAL and self._sums[group][0]:
                groups[group[0]].append(self._stats(group[1], group))
        return Report(
            source=source,
            since=since,
            until=until or datetime.now(timezone.utc),
            totals=totals,
            **{f"by_{d}": order_groups(groups[d], d) for d in DIMENSIONS},
            escalation_reasons=reason_counts((r, n) for r, n in self._reasons.items() if n),
            counterfactual=price_uses((code, n, nusd) for code, (n, nusd) in self._prices.items() if n),
        )

    def _stats(self, key: str, group: Group) -> GroupStats:
        attempts, prompt, completion, cached, cost, frontier, failures, shown, accepted = self._sums.get(
            group, [0] * SUMS
        )
        requests, escalations = self._requests.get(group, [0, 0])
        if requests != self.ranks.size(group):
            raise RuntimeError(f"{group!r}: {requests} requests but {self.ranks.size(group)} latencies")
        p50, p95 = self.ranks.percentiles(group) if requests else (None, None)
        return make_stats(
            key,
            requests=requests,
            attempts=attempts,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            cost_nusd=cost,
            frontier_nusd=frontier,
            escalations=escalations,
            failures=failures,
            shown=shown,
            accepted=accepted,
            p50=p50,
            p95=p95,
        )


__all__ = ["SUMS", "TOTAL", "Group", "ReportFigures", "RowKeys", "UnitGroups", "row_groups", "unit_groups"]
