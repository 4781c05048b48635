"""What the router looks at besides the policy: task, risk, latency class, size."""

from __future__ import annotations

from lsp_server.routing.policy import LatencyClass, Policy, RiskLevel, TaskType
from lsp_server.sensitivity.paths import first_matching_glob

INTERACTIVE_BY_DEFAULT: frozenset[str] = frozenset({"completion", "explain", "refactor", "ask"})


def glob_match(path: str, pattern: str) -> bool:
    return first_matching_glob(path, [pattern]) is not None


def risk_for(policy: Policy, path: str | None, auto_apply: bool) -> tuple[RiskLevel, str | None]:
    """High when the path matches a high-risk glob, or the result is applied unreviewed."""
    matched = first_matching_glob(path, policy.risk.high)
    if matched:
        return "high", f"high risk: path matches {matched}"
    if auto_apply and policy.risk.auto_apply_is_high:
        return "high", "high risk: the result is applied automatically"
    return "low", None


def latency_for(task: TaskType, requested: LatencyClass | None) -> LatencyClass:
    if requested is not None:
        return requested
    return "interactive" if task in INTERACTIVE_BY_DEFAULT else "background"
