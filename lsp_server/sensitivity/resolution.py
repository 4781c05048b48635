"""Overlapping hits resolved by precision: a provider rule beats a structural rule (URL,
header), which beats a generic assignment, which beats an entropy hit; PII inside a secret
is dropped."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from lsp_server.sensitivity.findings import Finding, Kind

STRUCTURED_TIER = 1
GENERIC_TIER = 2
PREFIXED_TIER = 3
ENTROPY_TIER = 3
PII_TIER = 4


@dataclass(slots=True)
class Hit:
    tier: int
    kind: Kind
    rule: str
    family: str
    start: int
    end: int


def resolve_overlaps(hits: list[Hit]) -> list[Finding]:
    """Drop hits that overlap a hit of a more precise tier; drop exact duplicates."""
    hits.sort(key=lambda h: (h.tier, h.start, -h.end))
    kept: list[Hit] = []
    # Disjoint, sorted union of the spans of all better tiers kept so far.
    starts: list[int] = []
    ends: list[int] = []
    seen_spans: set[tuple[int, int]] = set()
    tier_hits: list[Hit] = []
    current_tier = -1

    def flush() -> None:
        for h in tier_hits:
            add_interval(starts, ends, h.start, h.end)
        tier_hits.clear()

    for h in hits:
        if h.tier != current_tier:
            flush()
            current_tier = h.tier
        if (h.start, h.end) in seen_spans:
            continue  # same span from another pattern of the same tier
        i = bisect.bisect_right(starts, h.start) - 1
        if (i >= 0 and ends[i] > h.start) or (i + 1 < len(starts) and starts[i + 1] < h.end):
            continue  # overlaps something more precise
        seen_spans.add((h.start, h.end))
        kept.append(h)
        tier_hits.append(h)
    kept.sort(key=lambda h: (h.start, h.end, h.rule))
    return [Finding(h.kind, h.rule, h.family, h.start, h.end) for h in kept]


def add_interval(starts: list[int], ends: list[int], start: int, end: int) -> None:
    """Insert [start, end) into a sorted list of disjoint intervals, merging overlaps."""
    i = bisect.bisect_left(starts, start)
    if i > 0 and ends[i - 1] >= start:
        i -= 1
        start = starts[i]
    j = i
    while j < len(starts) and starts[j] <= end:
        end = max(end, ends[j])
        j += 1
    starts[i:j] = [start]
    ends[i:j] = [end]
