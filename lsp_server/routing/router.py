"""The routing decision: hard gates first, then the first matching rule, then the default.

`decide` is a pure function of the policy, the request and facts about the world (today's
spend, this developer's and the team's, and which tiers are unavailable); it never calls a
model or the network.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, Field

from lsp_server.routing.policy import LatencyClass, Policy, RiskLevel, Rule, TaskType, context_window
from lsp_server.routing.signals import first_matching_glob, latency_for, risk_for
from lsp_server.sensitivity.findings import Finding, SensitivityReport
from lsp_server.sensitivity.redaction import redact
from lsp_server.sensitivity.scanner import SensitivityScanner
from lsp_server.tiers import TIER_ORDER, TierName
from lsp_server.token_estimate import estimate_tokens


@dataclass(frozen=True)
class RouteRequest:
    task: TaskType
    text: str = ""  # everything that would be sent to a model (never stored or printed)
    path: str | None = None  # workspace-relative path the content belongs to
    auto_apply: bool = False
    latency: LatencyClass | None = None
    estimated_tokens: int | None = None
    # Content from several files (a diff chunk: every file, old and new names of renames):
    # each path is judged, and the strictest decision applies.
    paths: tuple[str, ...] = ()
    # Written by a model from content that had to stay home (an explanation of a secret):
    # it stays home too, whatever it looks like now.
    derived_from_kept_home: bool = False

    @property
    def all_paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in (self.path, *self.paths) if p))


class Decision(BaseModel):
    """Where a request goes and why. Safe to print and log: it holds no content."""

    task: TaskType
    tier: TierName
    backend: str
    model: str
    escalate_to: TierName | None = None
    sensitivity: Literal["none", "sensitive"] = "none"
    sensitivity_rules: list[str] = Field(default_factory=list)
    risk: RiskLevel = "low"
    latency: LatencyClass = "interactive"
    rule: str | None = None
    redact: bool = False  # content going to a tier that does not keep data home is redacted
    blocked: bool = False  # the policy forbids serving this request at all
    reasons: list[str] = Field(default_factory=list)
    policy_hash: str = ""


@dataclass(frozen=True)
class EgressCheck:
    allowed: bool
    redact: bool
    reasons: tuple[str, ...]
    report: SensitivityReport


def scanner_for(policy: Policy) -> SensitivityScanner:
    s = policy.sensitivity
    return SensitivityScanner(s.paths, pii=s.pii, entropy=s.entropy, allowlist=s.allowlist)


def _rule_matches(rule: Rule, task: TaskType, risk: RiskLevel, latency: LatencyClass, path: str | None) -> bool:
    if rule.task is not None and task not in rule.task:
        return False
    if rule.risk is not None and risk not in rule.risk:
        return False
    if rule.latency is not None and latency not in rule.latency:
        return False
    if rule.paths is not None and first_matching_glob(path, rule.paths) is None:
        return False
    return True


def _fallback(route: TierName, allowed: Collection[TierName]) -> TierName:
    """The nearest allowed tier at or below the wanted one (local is always allowed)."""
    for tier in reversed(TIER_ORDER[: TIER_ORDER.index(route) + 1]):
        if tier in allowed:
            return tier
    return "local"


def decide(
    policy: Policy,
    request: RouteRequest,
    scanner: SensitivityScanner | None = None,
    *,
    spend_today_usd: float = 0.0,
    team_spend_today_usd: float | None = None,
    unavailable: Collection[TierName] = (),
) -> Decision:
    """`team_spend_today_usd`: the whole team's paid spend today, from the team ledger; None
    when it is not known (no team ledger, or out of reach): the team's cap then counts this
    developer's spend (the local rules)."""
    scanner = scanner or scanner_for(policy)
    spend = _Spend(spend_today_usd, team_spend_today_usd)
    paths = request.all_paths
    if len(paths) > 1:
        reports = scanner.scan_paths(request.text, paths)
        each = [
            _decide_one(policy, replace(request, path=path, paths=()), reports[path], spend, unavailable)
            for path in paths
        ]
        return _strictest(policy, each, paths)
    return _decide_one(policy, request, scanner.scan(request.text, request.path), spend, unavailable)


@dataclass(frozen=True)
class _Spend:
    mine: float
    team: float | None

    def against_caps(self, policy: Policy) -> list[tuple[float, float, str]]:
        """(cap, spend, what was spent) for each daily cap the policy declares."""
        caps = []
        if policy.budget.daily_usd is not None:
            caps.append((policy.budget.daily_usd, self.mine, "spent today"))
        if policy.budget.team_daily_usd is not None:
            if self.team is not None:
                caps.append((policy.budget.team_daily_usd, self.team, "spent by the team today"))
            else:
                caps.append(
                    (
                        policy.budget.team_daily_usd,
                        self.mine,
                        "spent today, against the team's cap (the team's spend is not known here)",
                    )
                )
        return caps


def _strictest(policy: Policy, decisions: list[Decision], paths: Sequence[str]) -> Decision:
    """One decision for content of several files: where every one of them may go."""
    index = min(range(len(decisions)), key=lambda i: TIER_ORDER.index(decisions[i].tier))
    chosen = decisions[index]
    escalations = [d.escalate_to for d in decisions]
    escalate = None
    if all(escalations):
        escalate = min(escalations, key=lambda tier: TIER_ORDER.index(tier))
        if TIER_ORDER.index(escalate) <= TIER_ORDER.index(chosen.tier):
            escalate = None
    reasons = list(chosen.reasons)
    for other in decisions:  # why the others are sensitive matters even when another path decided
        reasons += [r for r in other.reasons if r.startswith("sensitive content") and r not in reasons]
    reasons.append(f"{len(paths)} files in this request: the strictest decision applies ({paths[index]})")
    return chosen.model_copy(
        update={
            "escalate_to": escalate,
            "sensitivity": "sensitive" if any(d.sensitivity == "sensitive" for d in decisions) else "none",
            "sensitivity_rules": sorted({rule for d in decisions for rule in d.sensitivity_rules}),
            "risk": "high" if any(d.risk == "high" for d in decisions) else "low",
            "redact": any(d.redact for d in decisions) and not policy.keeps_data_home(chosen.tier),
            "blocked": any(d.blocked for d in decisions),
            "reasons": reasons,
        }
    )


def _decide_one(
    policy: Policy, request: RouteRequest, report: SensitivityReport, spend: _Spend, unavailable: Collection[TierName]
) -> Decision:
    reasons: list[str] = []
    risk, risk_reason = risk_for(policy, request.path, request.auto_apply)
    if risk_reason:
        reasons.append(risk_reason)
    latency = latency_for(request.task, request.latency)

    rule = next((r for r in policy.rules if _rule_matches(r, request.task, risk, latency, request.path)), None)
    if rule is not None:
        route, escalate = rule.route, rule.escalate_to
        reasons.append(
            f"rule {rule.name} routes {request.task} to {route}" + (f", escalating to {escalate}" if escalate else "")
        )
    else:
        route, escalate = policy.default_route, None
        reasons.append(f"no rule matched: default route {route}")

    # Hard gates, each removing tiers from what is allowed.
    allowed: set[TierName] = {tier for tier in TIER_ORDER if policy.tier(tier) is not None}
    for tier in (route, escalate):
        if tier is not None and tier not in allowed:
            reasons.append(f"tier {tier} is not configured")
    if policy.offline:
        allowed = {"local"}
        reasons.append("offline: nothing leaves the machine")
    for tier in unavailable:
        if tier in allowed and tier != "local":
            allowed.discard(tier)
            reasons.append(f"{tier} is unreachable right now")

    redact = blocked = False
    if request.derived_from_kept_home:
        allowed = {tier for tier in allowed if policy.keeps_data_home(tier)}
        reasons.append("written from content that was kept home: it stays home too")
    if report.sensitive:
        mode = policy.sensitivity.on_sensitive
        reasons.append(f"sensitive content ({report.summary()}): {mode}")
        if mode == "redact" and _has_path_finding(report):
            # A file is sensitive for where it is: there is no span to redact, so none of it goes.
            mode = "keep_home"
            reasons.append("the path itself is sensitive: nothing to redact, kept home")
        if mode == "keep_home":
            allowed = {tier for tier in allowed if policy.keeps_data_home(tier)}
        elif mode == "redact":
            redact = any(not policy.keeps_data_home(tier) for tier in allowed)
        elif mode == "block":
            outside = {tier for tier in allowed if not policy.keeps_data_home(tier)}
            if route in outside:
                blocked = True
                reasons.append(f"blocked: the policy forbids sending sensitive content to {route}")
            allowed -= outside

    caps = spend.against_caps(policy)
    paid = {tier for tier in allowed if (config := policy.tier(tier)) is not None and config.price.paid}
    for cap, spent, what in caps:  # a cap reached first: then no soft limit needs to send work home
        if spent >= cap and paid & allowed:
            allowed -= paid
            reasons.append(f"budget: USD {spent:.2f} of {cap:.2f} {what}, paid tiers are off")
    for cap, spent, what in caps:
        if spent >= cap * policy.budget.soft_fraction and route in paid & allowed:
            reasons.append(
                f"budget: USD {spent:.2f} of {cap:.2f} {what} (over {policy.budget.soft_fraction:.0%}), "
                f"local first, escalating to {route}"
            )
            escalate = escalate or route
            route = "local"

    tokens = request.estimated_tokens if request.estimated_tokens is not None else estimate_tokens(request.text)
    for tier in sorted(allowed - {"local"}):
        if tokens > context_window(policy, tier):
            allowed.discard(tier)
            reasons.append(f"{tokens} tokens exceed the {tier} context window ({context_window(policy, tier)})")

    if route not in allowed:
        new_route = _fallback(route, allowed)
        reasons.append(f"{route} not allowed: served by {new_route}")
        route = new_route
    if escalate is not None and (escalate not in allowed or escalate == route):
        if escalate != route:
            reasons.append(f"escalation to {escalate} not allowed")
        escalate = None

    config = policy.tier(route)
    assert config is not None  # local is always configured (validated)
    return Decision(
        task=request.task,
        tier=route,
        backend=config.backend,
        model=config.model,
        escalate_to=escalate,
        sensitivity="sensitive" if report.sensitive or request.derived_from_kept_home else "none",
        sensitivity_rules=report.rules,
        risk=risk,
        latency=latency,
        rule=rule.name if rule else None,
        redact=redact and not policy.keeps_data_home(route),
        blocked=blocked,
        reasons=reasons,
        policy_hash=policy.digest,
    )


def _has_path_finding(report: SensitivityReport) -> bool:
    return any(finding.kind == "path" for finding in report.findings)


def scan_for_paths(scanner: SensitivityScanner, text: str, paths: Sequence[str | None]) -> SensitivityReport:
    """The text scanned as each of its files (a file's name changes what counts as a secret)."""
    named = [path for path in dict.fromkeys(paths) if path]
    if not named:
        return scanner.scan(text, None)
    findings: list[Finding] = []
    for report in scanner.scan_paths(text, named).values():
        findings.extend(f for f in report.findings if f not in findings)
    return SensitivityReport(tuple(findings))


def redact_for(scanner: SensitivityScanner, text: str, paths: Sequence[str | None]) -> str:
    """`text` with every finding replaced, as any of its files would be scanned."""
    return redact(text, scan_for_paths(scanner, text, paths))


def check_egress(
    policy: Policy,
    text: str,
    path: str | None,
    target: TierName,
    scanner: SensitivityScanner | None = None,
    *,
    paths: Sequence[str] = (),
    derived_from_kept_home: bool = False,
) -> EgressCheck:
    """The sensitivity gate again, on exactly what would be sent (escalations carry drafts)."""
    scanner = scanner or scanner_for(policy)
    report = scan_for_paths(scanner, text, [p for p in (path, *paths) if p] or [None])
    if policy.offline and target != "local":
        return EgressCheck(False, False, ("offline: nothing leaves the machine",), report)
    if policy.keeps_data_home(target):
        return EgressCheck(True, False, (), report)
    if derived_from_kept_home:
        return EgressCheck(
            False, False, (f"written from content that was kept home: it may not go to {target}",), report
        )
    if not report.sensitive:
        return EgressCheck(True, False, (), report)
    mode = policy.sensitivity.on_sensitive
    reason = f"sensitive content ({report.summary()}) may not go to {target}: {mode}"
    if mode == "redact" and not _has_path_finding(report):
        return EgressCheck(True, True, (reason,), report)
    return EgressCheck(False, False, (reason,), report)
