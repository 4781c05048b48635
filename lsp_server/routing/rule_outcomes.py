"""What a set of routing rules does with a request, paths aside: whether a repository's rules
would send some request further than the user's own, and whether a change of risk does."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import get_args

from lsp_server.routing.merge_reasons import tier_list
from lsp_server.routing.policy import LatencyClass, Policy, RiskLevel, Rule, TaskType
from lsp_server.tiers import TIER_ORDER, TierName

TIER_RANK: dict[str, int] = {tier: index for index, tier in enumerate(TIER_ORDER)}
TASKS: tuple[TaskType, ...] = get_args(TaskType)
RISKS: tuple[RiskLevel, ...] = get_args(RiskLevel)
LATENCIES: tuple[LatencyClass, ...] = get_args(LatencyClass)
# With more path-filtered rules than this in play, risk changes are not judged: left out.
MAX_PATH_RULES = 12

Outcome = tuple[TierName, TierName | None, str]  # route, escalation, the rule that decided


def _matches(rule: Rule, task: TaskType, risk: RiskLevel, latency: LatencyClass) -> bool:
    return (
        (rule.task is None or task in rule.task)
        and (rule.risk is None or risk in rule.risk)
        and (rule.latency is None or latency in rule.latency)
    )


def _possible_outcomes(
    rules: list[Rule], default: TierName, task: TaskType, risk: RiskLevel, latency: LatencyClass
) -> list[tuple[TierName, TierName | None, str]]:
    """Where a request of this kind may go (route, escalation, rule name), for any path."""
    found: list[tuple[TierName, TierName | None, str]] = []
    for rule in rules:
        if not _matches(rule, task, risk, latency):
            continue
        found.append((rule.route, rule.escalate_to, rule.name))
        if rule.paths is None:  # matches whatever the path: nothing after it is reached
            return found
    found.append((default, None, "default_route"))
    return found


def _combos(rule: Rule) -> Iterator[tuple[TaskType, RiskLevel, LatencyClass]]:
    return itertools.product(rule.task or TASKS, rule.risk or RISKS, rule.latency or LATENCIES)


def further_than_base(rule: Rule, base: Policy) -> str | None:
    """Why `rule` would send a request further than the base policy would, or None.

    A rule may route to a tier no further than where the base policy would surely send the
    same request, and escalate only as far as the base policy would go for it."""
    for task, risk, latency in _combos(rule):
        for route, escalate, name in _possible_outcomes(base.rules, base.default_route, task, risk, latency):
            reach = max(TIER_RANK[route], TIER_RANK[escalate or route])
            if TIER_RANK[rule.route] > TIER_RANK[route]:
                return f"routes {task} to {rule.route} where your policy uses {route} ({name})"
            if rule.escalate_to is not None and TIER_RANK[rule.escalate_to] > reach:
                return (
                    f"escalates {task} to {rule.escalate_to} where your policy goes no further than "
                    f"{tier_list([route, escalate])} ({name})"
                )
    return None


def risk_change_verdict(rules: list[Rule], default: TierName, more: RiskLevel) -> str | None:
    """None when making more requests `more`-risk can only keep them as close to home; else why not.

    Only rules decide by risk, so with no rule that mentions it any change is harmless.

    The outcome of one request depends on which path-filtered rules its path matches; both
    risk levels see the same path, so they are compared scenario by scenario."""
    other: RiskLevel = "low" if more == "high" else "high"
    if sum(rule.paths is not None for rule in rules) > MAX_PATH_RULES:
        return "the policy has too many path rules to tell whether this keeps requests home"
    for task in TASKS:
        for latency in LATENCIES:
            for flagged, unflagged in _outcome_pairs(rules, default, task, latency, more, other):
                (route_a, esc_a, name_a), (route_b, esc_b, _name_b) = flagged, unflagged
                if TIER_RANK[route_a] > TIER_RANK[route_b] or TIER_RANK[esc_a or route_a] > max(
                    TIER_RANK[route_b], TIER_RANK[esc_b or route_b]
                ):
                    return (
                        f"{more}-risk {task} requests go to {tier_list([route_a, esc_a])} ({name_a}) "
                        f"where {other}-risk ones go to {tier_list([route_b, esc_b])}: "
                        f"more {more}-risk requests would send more there"
                    )
    return None


def _outcome_pairs(
    rules: list[Rule], default: TierName, task: TaskType, latency: LatencyClass, a: RiskLevel, b: RiskLevel
) -> Iterator[tuple[Outcome, Outcome]]:
    """(outcome at risk `a`, outcome at risk `b`) for every way the path filters may match."""

    def walk(index: int, got_a: Outcome | None, got_b: Outcome | None) -> Iterator[tuple[Outcome, Outcome]]:
        while index < len(rules) and (got_a is None or got_b is None):
            rule = rules[index]
            hit_a = got_a is None and _matches(rule, task, a, latency)
            hit_b = got_b is None and _matches(rule, task, b, latency)
            index += 1
            if not (hit_a or hit_b):
                continue
            outcome: Outcome = (rule.route, rule.escalate_to, rule.name)
            if rule.paths is not None:  # the path may not match: that branch goes on without it
                yield from walk(index, got_a, got_b)
            got_a = outcome if hit_a else got_a
            got_b = outcome if hit_b else got_b
        fallback: Outcome = (default, None, "default_route")
        yield (got_a or fallback, got_b or fallback)

    return walk(0, None, None)
