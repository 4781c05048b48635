"""Nearest-rank latency percentiles of every report group, without sorting every request.

A report gives the p50 and p95 request latency of each task, tier, model, repository and
week, and of all requests. Sorting the requests once per grouping is what made reports over a
million rows take tens of seconds. Two passes instead:

1. the database counts each group's requests per latency bucket (a GROUP BY it does in one
   pass for every group);
2. each wanted rank then falls in one known bucket, at a known place in it: only the
   latencies of those few buckets are fetched, sorted and picked.

A bucket is a monotone function of the latency: the number of decimal digits of the latency
in whole microseconds and its leading digits. It is computed with the same IEEE operations
in PostgreSQL, in SQLite (which may lack math functions) and here, so that latencies this
module computes itself (requests of several attempts, summed here) fall in the same buckets
as those the database counted. Values in lower buckets are never larger than values in
higher ones, so the pick is the exact nearest-rank value (`report.percentile`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable

# Latencies are clamped into [0, CAP_MS] for bucketing only (the pick uses the real value):
# a negative or absurd latency must not break the function's monotony or overflow an integer.
CAP_MS = 1e12
PERCENTILES = (50.0, 95.0)


def bucket(latency_ms: float, digits: int) -> int:
    """The latency's bucket: 10**digits * (decimal digits of its microseconds) + its leading
    `digits` digits. 1 <= digits <= 3; more digits, narrower buckets."""
    micros = str(int(min(max(latency_ms, 0.0), CAP_MS) * 1000))
    return len(micros) * 10**digits + int(micros[:digits])


def bucket_sql(latency: str, digits: int, dialect: str) -> str:
    """The same function as `bucket`, as a SQL expression over the column `latency`."""
    if dialect == "sqlite":
        micros = f"CAST(min(max({latency}, 0.0), {CAP_MS:.0f}.0) * 1000 AS INTEGER)"
        return f"(length({micros}) * {10**digits} + CAST(substr({micros}, 1, {digits}) AS INTEGER))"
    if dialect == "postgresql":
        # float8 -> bigint rounds in PostgreSQL; trunc() first truncates as Python's int() does.
        micros = f"trunc(least(greatest({latency}, 0), {CAP_MS:.0f}) * 1000)::bigint::text"
        return f"(length({micros}) * {10**digits} + left({micros}, {digits})::int)"
    raise ValueError(f"unknown SQL dialect {dialect!r}")


def nearest_rank(p: float, n: int) -> int:
    """The 1-based rank of the p-th percentile of n values (nearest rank, as `report.percentile`)."""
    return max(1, math.ceil(p / 100 * n))


class LatencyRanks:
    """The percentiles of many groups at once, from bucket counts and the values of a few buckets.

    Feed it the database's counts (`count`) and the latencies computed here (`value`), ask
    which buckets to fetch (`wanted_buckets`), feed the latencies fetched from them
    (`candidate`), then read each group's percentiles (`percentiles`). A group is any
    hashable key, e.g. ("task", "completion").
    """

    def __init__(self, percentiles: tuple[float, ...] = PERCENTILES, *, digits: int = 3) -> None:
        self.digits = digits
        self._percentiles = percentiles
        self._counts: dict[Hashable, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._values: dict[Hashable, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        # group -> {bucket: [(wanted rank, its place in the bucket, 1-based)]}, from wanted_buckets()
        self._targets: dict[Hashable, dict[int, list[tuple[int, int]]]] | None = None
        self._candidates: dict[tuple[Hashable, int], list[float]] = {}

    def count(self, group: Hashable, bucket_: int, n: int) -> None:
        """`n` latencies of `group` that only the database holds fall in `bucket_`."""
        self._counts[group][bucket_] += n

    def value(self, group: Hashable, latency_ms: float) -> None:
        """One latency of `group` that is known here."""
        self._values[group][bucket(latency_ms, self.digits)].append(latency_ms)

    def groups(self) -> set[Hashable]:
        return set(self._counts) | set(self._values)

    def size(self, group: Hashable) -> int:
        return sum(self._counts.get(group, {}).values()) + sum(len(v) for v in self._values.get(group, {}).values())

    def _here(self, group: Hashable, bucket_: int) -> int:
        return self._counts.get(group, {}).get(bucket_, 0) + len(self._values.get(group, {}).get(bucket_, ()))

    def wanted_buckets(self) -> set[int]:
        """The buckets whose database latencies the picks need."""
        self._targets = {}
        wanted: set[int] = set()
        for group in self.groups():
            n = self.size(group)
            if n == 0:
                continue
            ranks = sorted({nearest_rank(p, n) for p in self._percentiles})
            targets: dict[int, list[tuple[int, int]]] = {}
            below = 0
            for b in sorted(self._buckets(group)):
                here = self._here(group, b)
                while ranks and ranks[0] <= below + here:
                    rank = ranks.pop(0)
                    targets.setdefault(b, []).append((rank, rank - below))
                    if self._counts.get(group, {}).get(b):
                        wanted.add(b)
                        self._candidates[(group, b)] = []
                below += here
            self._targets[group] = targets
        return wanted

    def candidate(self, group: Hashable, bucket_: int, latency_ms: float) -> None:
        """A database latency of `group` from a fetched bucket; ignored unless a pick needs it."""
        pool = self._candidates.get((group, bucket_))
        if pool is not None:
            pool.append(latency_ms)

    def percentiles(self, group: Hashable) -> tuple[float | None, ...]:
        """The group's percentiles, in the order asked for; None each for a group with none."""
        assert self._targets is not None, "call wanted_buckets() first"
        n = self.size(group)
        if n == 0:
            return tuple(None for _ in self._percentiles)
        picked: dict[int, float] = {}
        for b, places in self._targets[group].items():
            pool = self._candidates.get((group, b), []) + self._values.get(group, {}).get(b, [])
            if len(pool) != self._here(group, b):
                raise RuntimeError(
                    f"latency bucket {b} of {group!r}: {len(pool)} latencies fetched, {self._here(group, b)} counted"
                )
            pool.sort()
            for rank, place in places:
                picked[rank] = pool[place - 1]
        # `+ 0.0`: a -0.0 reads as 0.0, as a sum that starts from 0.0 gives it.
        return tuple(picked[nearest_rank(p, n)] + 0.0 for p in self._percentiles)

    def _buckets(self, group: Hashable) -> set[int]:
        return set(self._counts.get(group, ())) | set(self._values.get(group, ()))


__all__ = ["CAP_MS", "PERCENTILES", "LatencyRanks", "bucket", "bucket_sql", "nearest_rank"]
