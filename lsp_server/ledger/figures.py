"""What a report adds up, handed in by either database, turned into a `Report`.

The local report (SQLite, local_report.py) and the team report (PostgreSQL, team/aggregate.py)
aggregate in their own SQL, and both hand the results here per group, so that each figure
is assembled in one place (the definitions are report.py's):

- attempt sums per group: attempts, tokens, money, failures, shown, accepted;
- escalation reasons and counterfactual prices, over attempts;
- requests, escalated requests and latency percentiles per group, from the database's
  counts of rows per latency bucket (latency_ranks.py). A row counts there as a request of
  its own; requests with several rows are the exception, and come here row by row
  (`several_rows`) to be taken back out of those counts and added up exactly.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Literal

from lsp_server.ledger.latency_ranks import LatencyRanks, bucket
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

    def add_rows(self, group: Group, latency_bucket: int, rows: int, escalated: int) -> None:
        """The database's count: `rows` rows of `group` in `latency_bucket`, `escalated` of them
        escalated; each stands for a request (until `several_rows` says otherwise)."""
        entry = self._requests[group]
        entry[0] += int(rows)
        entry[1] += int(escalated)
        self.ranks.count(group, latency_bucket, int(rows))

    def several_rows(self, rows: Iterable[tuple[Hashable, RowKeys, float, bool, bool]]) -> None:
        """The rows of the requests that have more than one, as (request, keys, latency,
        escalated, counted), all rows of a request in one call, in the order they were stored.
        `counted`: the database counted the row in `add_rows` (a row kept in memory it did not).
        A request's latency in a group is the sum of its rows' latencies there."""
        latency: dict[tuple[Group, Hashable], float] = {}
        escalated: dict[tuple[Group, Hashable], bool] = {}
        for request, keys, latency_ms, was_escalated, counted in rows:
            for group in row_groups(keys):
                if counted:  # out of the database's count, where this row stood for a request of its own
                    entry = self._requests[group]
                    entry[0] -= 1
                    entry[1] -= int(bool(was_escalated))
                    self.ranks.count(group, bucket(latency_ms, self.ranks.digits), -1)
                # Summed in storage order: a floating-point sum depends on it.
                key = (group, request)
                latency[key] = latency.get(key, 0.0) + latency_ms
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
            source=source, since=since, until=until or datetime.now(timezone.utc), totals=totals,
            **{f"by_{d}": order_groups(groups[d], d) for d in DIMENSIONS},
            escalation_reasons=reason_counts((r, n) for r, n in self._reasons.items() if n),
            counterfactual=price_uses((code, n, nusd) for code, (n, nusd) in self._prices.items() if n),
        )

    def _stats(self, key: str, group: Group) -> GroupStats:
        attempts, prompt, completion, cached, cost, frontier, failures, shown, accepted = self._sums.get(
            group, [0] * SUMS)
        requests, escalations = self._requests.get(group, [0, 0])
        if requests != self.ranks.size(group):
            raise RuntimeError(f"{group!r}: {requests} requests but {self.ranks.size(group)} latencies")
        p50, p95 = self.ranks.percentiles(group) if requests else (None, None)
        return make_stats(key, requests=requests, attempts=attempts, prompt_tokens=prompt,
                          completion_tokens=completion, cached_tokens=cached, cost_nusd=cost, frontier_nusd=frontier,
                          escalations=escalations, failures=failures, shown=shown, accepted=accepted, p50=p50,
                          p95=p95)


__all__ = ["SUMS", "TOTAL", "Group", "ReportFigures", "RowKeys", "row_groups"]
