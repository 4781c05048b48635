"""The JSON shapes `ninetyten eval` writes; one pydantic model per object."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from lsp_server.eval.metrics import percentile

Variant = Literal["pipeline", "raw", "canonical"]


class TaskOutcome(BaseModel):
    """One task, one variant: what was inserted and how it scored."""

    task_id: str
    problem_id: str
    kind: Literal["single", "multi"]
    variant: Variant
    tier: str
    completion: str | None
    expected: str
    passed: bool
    status: Literal["passed", "failed", "timeout"]
    error: str = ""
    exact_match: bool
    edit_similarity: float
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    stop_reason: str
    mean_logprob: float | None = None
    min_logprob: float | None = None
    verify_failed: list[str] = Field(default_factory=list, description="routing/escalation.py checks that failed")


class VariantSummary(BaseModel):
    variant: Variant
    kind: Literal["single", "multi", "all"]
    tier: str
    tasks: int
    passed: int
    pass_at_1: float
    exact_match: float
    edit_similarity: float
    empty: int = Field(description="tasks where nothing was inserted")
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class CompletionReport(BaseModel):
    command: Literal["completion"] = "completion"
    tier: str
    model: str
    prompt_mode: str = Field(description="fim: the model saw prefix and suffix; prefix: only the text before")
    kind: Literal["single", "multi", "both"]
    seed: int
    limit: int | None
    tasks: int
    machine: str
    sandbox: str
    wall_s: float
    summaries: list[VariantSummary]

    def summary(self, variant: Variant, kind: str = "all") -> VariantSummary | None:
        return next((s for s in self.summaries if s.variant == variant and s.kind == kind), None)


def summarise(
    outcomes: Sequence[TaskOutcome], variant: Variant, kind: Literal["single", "multi", "all"], tier: str
) -> VariantSummary:
    rows = [o for o in outcomes if o.variant == variant and (kind == "all" or o.kind == kind)]
    count = len(rows)
    latencies = [o.latency_ms for o in rows]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return VariantSummary(
        variant=variant,
        kind=kind,
        tier=tier,
        tasks=count,
        passed=sum(o.passed for o in rows),
        pass_at_1=sum(o.passed for o in rows) / count if count else 0.0,
        exact_match=sum(o.exact_match for o in rows) / count if count else 0.0,
        edit_similarity=math.fsum(o.edit_similarity for o in rows) / count if count else 0.0,
        empty=sum(not o.completion for o in rows),
        latency_p50_ms=None if p50 is None else round(p50, 1),
        latency_p95_ms=None if p95 is None else round(p95, 1),
        prompt_tokens=sum(o.prompt_tokens for o in rows),
        completion_tokens=sum(o.completion_tokens for o in rows),
        cost_usd=round(math.fsum(o.cost_usd for o in rows), 6),
    )


class SignalScore(BaseModel):
    """How well one confidence signal ranks the local answers."""

    signal: str
    description: str
    auroc_failure: float | None = Field(description="AUROC of low confidence predicting a failed local answer")
    apgr: float | None
    cpt50: float | None = Field(description="escalation rate that recovers 50% of the quality gap")
    cpt80: float | None = Field(description="escalation rate that recovers 80% of the quality gap")
    apgr_vs_oracle: float | None = Field(
        None,
        description="(APGR - 0.5) / (oracle APGR - 0.5): the share of the oracle's lead over random; "
        "APGR alone spans a narrow range when most local answers fail",
    )


class SweepPoint(BaseModel):
    """The mean-logprob threshold the policy takes, and what it does on these tasks."""

    threshold: float
    escalation_rate: float
    pass_at_1: float
    pgr: float | None


class CurvePointOut(BaseModel):
    rate: float
    quality: float
    pgr: float | None


class EscalationReport(BaseModel):
    command: Literal["escalation"] = "escalation"
    model: str
    kind: Literal["single", "multi", "both"]
    seed: int
    limit: int | None
    tasks: int
    machine: str
    sandbox: str
    wall_s: float
    strong_tier: str
    strong_source: Literal["measured", "assumed_upper_bound"]
    strong_note: str
    local_pass_at_1: float
    strong_pass_at_1: float
    signals: list[SignalScore]
    random_apgr: float = 0.5
    oracle: SignalScore
    curves: dict[str, list[CurvePointOut]]
    sweep: list[SweepPoint]
    target_rate: float
    recommended_threshold: float | None
    recommended_rate: float | None
    recommended_pass_at_1: float | None
    policy_snippet: str
    plot: str | None = None
    outcomes: list[TaskOutcome] = Field(default_factory=list, exclude=True)


# --------------------------------------------------------------------------- real-code suites


class LineOutcome(BaseModel):
    """One task of the lines / crossfile suites, one variant (see line_eval.py)."""

    task_id: str
    suite: Literal["lines", "crossfile"]
    variant: Literal["pipeline", "context", "no_context", "raw"]
    completion: str | None
    expected: str
    exact_match: bool
    edit_similarity: float
    quiet: bool = Field(description="the quiet gate (default threshold) would hold this suggestion back")
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    stop_reason: str
    mean_logprob: float | None = None
    min_logprob: float | None = None
    context_snippets: int = 0
    package: str = ""
    symbol: str = ""


class LineSummary(BaseModel):
    variant: str
    tasks: int
    exact_match: float = Field(description="every answer shown (quiet gate off)")
    edit_similarity: float
    exact_match_quiet: float = Field(description="default settings: answers the quiet gate holds back count as empty")
    edit_similarity_quiet: float
    empty: int
    shown_rate: float = Field(description="share of tasks with a suggestion shown under the default quiet gate")
    accepted_if_correct: float | None = Field(description="share of shown suggestions that were exactly right")
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int


class GatePoint(BaseModel):
    """The quiet gate at one threshold (None: off), on the suite's main variant."""

    threshold: float | None
    shown_rate: float
    accepted_if_correct: float | None
    exact_match: float
    correct_kept: float = Field(description="share of the right answers still shown")


class LineReport(BaseModel):
    command: Literal["completion"] = "completion"
    suite: Literal["lines", "crossfile"]
    split: Literal["test", "dev"] = "test"
    model: str
    prompt_mode: str
    seed: int
    limit: int | None
    tasks: int
    machine: str
    wall_s: float
    quiet_below: float | None
    summaries: list[LineSummary]
    gate: list[GatePoint]
    packages: list[str] = Field(default_factory=list)

    def summary(self, variant: str) -> LineSummary | None:
        return next((s for s in self.summaries if s.variant == variant), None)
