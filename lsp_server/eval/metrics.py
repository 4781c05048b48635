"""Scores for completions and for routers.

Completion scores: exact match and edit similarity, both on normalised text.

Router scores (as in "RouteLLM: Learning to Route LLMs with Preference Data", 2024): a
router escalates the requests it is least confident about first. At escalation rate r
the quality is the mean outcome when the weakest r of the requests go to the strong
tier. PGR (performance gap recovered) rescales that quality so that 0 is "never
escalate" and 1 is "always escalate". APGR is the area under PGR over r in [0, 1]: a
random router scores 0.5. CPT(x) is the smallest escalation rate whose PGR reaches x.

Tied confidence scores are escalated in random order, so the curve uses the expected
outcome of a tie group (escalating part of a group gains that part of its total):
a constant score is exactly the random router.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby


def normalise(text: str | None) -> str:
    """Trailing spaces and blank lines at the ends never change what code does."""
    lines = [line.rstrip() for line in (text or "").replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def exact_match(completion: str | None, expected: str) -> bool:
    return normalise(completion) == normalise(expected)


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(completion: str | None, expected: str) -> float:
    """1 - Levenshtein distance / length of the longer text (1.0: identical)."""
    a, b = normalise(completion), normalise(expected)
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b) / longest


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class CurvePoint:
    rate: float  # share of requests escalated
    quality: float  # mean outcome (e.g. pass@1) with that share escalated
    pgr: float | None  # performance gap recovered; None when there is no gap


@dataclass(frozen=True)
class RouterCurve:
    points: list[CurvePoint]
    weak: float  # quality with nothing escalated
    strong: float  # quality with everything escalated

    @property
    def gap(self) -> float:
        return self.strong - self.weak


def escalation_curve(confidence: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> RouterCurve:
    """Quality after escalating k = 0..n requests, least confident first (ties: expected value).

    `weak[i]` and `strong[i]` are request i's outcome on each tier (1.0 passed, 0.0 failed).
    """
    n = len(confidence)
    if not (n == len(weak) == len(strong)) or n == 0:
        raise ValueError("confidence, weak and strong need the same, non-zero length")
    base = math.fsum(weak)
    order = sorted(range(n), key=lambda i: confidence[i])
    gains: list[float] = []
    for _score, group in groupby(order, key=lambda i: confidence[i]):
        members = list(group)
        mean_gain = math.fsum(strong[i] - weak[i] for i in members) / len(members)
        gains += [mean_gain] * len(members)
    weak_quality, strong_quality = base / n, math.fsum(strong) / n
    gap = strong_quality - weak_quality
    points = []
    total = base
    for k in range(n + 1):
        if k:
            total += gains[k - 1]
        quality = total / n
        pgr = (quality - weak_quality) / gap if gap > 0 else None
        points.append(CurvePoint(k / n, quality, pgr))
    return RouterCurve(points, weak_quality, strong_quality)


def apgr(curve: RouterCurve) -> float | None:
    """Area under PGR over the escalation rate (trapezoids); 0.5 for a random router."""
    if curve.gap <= 0:
        return None
    area = 0.0
    for left, right in zip(curve.points, curve.points[1:]):
        assert left.pgr is not None and right.pgr is not None
        area += (right.rate - left.rate) * (left.pgr + right.pgr) / 2
    return area


def cpt(curve: RouterCurve, target: float) -> float | None:
    """Smallest escalation rate whose PGR reaches `target` (0.5 for CPT(50%)), interpolated."""
    if curve.gap <= 0:
        return None
    previous = curve.points[0]
    assert previous.pgr is not None
    if previous.pgr >= target:
        return 0.0
    for point in curve.points[1:]:
        assert point.pgr is not None
        if point.pgr >= target - 1e-12:
            rise = point.pgr - previous.pgr
            share = (target - previous.pgr) / rise if rise > 0 else 1.0
            return previous.rate + share * (point.rate - previous.rate)
        previous = point
    return None


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counting half.

    For "does this confidence signal predict failure", pass the negated confidence and
    positives = failed. None when one class is empty.
    """
    pos = [s for s, p in zip(scores, positives) if p]
    neg = [s for s, p in zip(scores, positives) if not p]
    if not pos or not neg:
        return None
    # Rank-sum (Mann-Whitney U) with average ranks for ties: O(n log n).
    ordered = sorted(scores)
    rank_of: dict[float, float] = {}
    for value, group in groupby(enumerate(ordered, start=1), key=lambda item: item[1]):
        ranks = [rank for rank, _ in group]
        rank_of[value] = sum(ranks) / len(ranks)
    rank_sum = math.fsum(rank_of[s] for s in pos)
    u = rank_sum - len(pos) * (len(pos) + 1) / 2
    return u / (len(pos) * len(neg))


def oracle_confidence(weak: Sequence[float], strong: Sequence[float]) -> list[float]:
    """The router that knows the outcomes: escalate first where it gains, last where it loses."""
    return [w - s for w, s in zip(weak, strong)]
