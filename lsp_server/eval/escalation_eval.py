"""`ninetyten eval escalation`: how well the local model's confidence picks what to escalate.

For each task: the local pipeline's answer, its confidence signals (mean and min token
log-probability; the escalation verifiers) and whether its program passed; and the strong
tier's outcome, measured when a remote tier is configured and reachable, otherwise
assumed to be a pass (an upper bound, labelled as such everywhere).

The `mean_logprob` signal follows the engine exactly: a completion escalates when its
mean log-probability is below `escalation.completion_min_mean_logprob`, and an empty
completion is never escalated (the engine only escalates text it would show).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from lsp_server.eval.completion_eval import Progress, _no_progress, generate, machine_label, score
from lsp_server.eval.humaneval import sample_tasks
from lsp_server.eval.metrics import RouterCurve, apgr, auroc, cpt, escalation_curve, oracle_confidence
from lsp_server.eval.results import CurvePointOut, EscalationReport, SignalScore, SweepPoint, TaskOutcome, Variant
from lsp_server.eval.runner import CompletionRunner, Produced
from lsp_server.eval.sandbox import Sandbox, require_sandbox
from lsp_server.routing.policy import Policy
from lsp_server.tiers import TierName

DEFAULT_TARGET_RATE = 0.2
THRESHOLD_DECIMALS = 3


@dataclass(frozen=True)
class Signal:
    name: str
    description: str
    confidence: Callable[[TaskOutcome], float]  # higher: more confident, escalated later


def _mean(outcome: TaskOutcome) -> float:
    if not outcome.completion:
        return math.inf  # the engine never escalates an empty completion
    return outcome.mean_logprob if outcome.mean_logprob is not None else -math.inf


def _min(outcome: TaskOutcome) -> float:
    if not outcome.completion or outcome.min_logprob is None:
        return -math.inf
    return outcome.min_logprob


SIGNALS: tuple[Signal, ...] = (
    Signal("mean_logprob", "mean token log-probability (what the policy threshold uses)", _mean),
    Signal("min_logprob", "lowest token log-probability", _min),
    Signal(
        "verifier",
        "escalation verifiers: non_empty on the text, syntax of the file with it inserted",
        lambda o: -float(len(o.verify_failed)),
    ),
    Signal(
        "mean_logprob+verifier", "verifier failures first, then by mean log-probability", lambda o: _min_if_failed(o)
    ),
)


def _min_if_failed(outcome: TaskOutcome) -> float:
    mean = outcome.mean_logprob if outcome.mean_logprob is not None else -50.0
    return mean - 1000.0 * len(outcome.verify_failed)


def strong_tier_of(policy: Policy, requested: str | None) -> TierName | None:
    """The tier escalations go to: as asked, else the frontier, else the in-house tier."""
    if requested == "none":
        return None
    if requested:
        return requested  # type: ignore[return-value]
    for tier in ("frontier", "in_house"):
        if policy.tier(tier) is not None:
            return tier
    return None


def _score_signal(
    signal: Signal, local: Sequence[TaskOutcome], strong: Sequence[float]
) -> tuple[SignalScore, RouterCurve]:
    confidence = [signal.confidence(o) for o in local]
    weak = [1.0 if o.passed else 0.0 for o in local]
    curve = escalation_curve(confidence, weak, strong)
    return SignalScore(
        signal=signal.name,
        description=signal.description,
        auroc_failure=_round(auroc([-c for c in confidence], [not o.passed for o in local])),
        apgr=_round(apgr(curve)),
        cpt50=_round(cpt(curve, 0.5)),
        cpt80=_round(cpt(curve, 0.8)),
    ), curve


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _points(curve: RouterCurve) -> list[CurvePointOut]:
    return [CurvePointOut(rate=round(p.rate, 4), quality=round(p.quality, 4), pgr=_round(p.pgr)) for p in curve.points]


def threshold_sweep(local: Sequence[TaskOutcome], strong: Sequence[float]) -> list[SweepPoint]:
    """Every distinct behaviour of `completion_min_mean_logprob` on these tasks."""
    means = sorted({o.mean_logprob for o in local if o.completion and o.mean_logprob is not None})
    candidates = [means[0] if means else 0.0]
    candidates += [(a + b) / 2 for a, b in pairwise(means)]
    candidates.append(0.0)
    weak = [1.0 if o.passed else 0.0 for o in local]
    gap = (math.fsum(strong) - math.fsum(weak)) / len(local)
    points = []
    for threshold in sorted({round(min(t, 0.0), THRESHOLD_DECIMALS) for t in candidates}):
        escalated = [bool(o.completion) and o.mean_logprob is not None and o.mean_logprob < threshold for o in local]
        quality = math.fsum(s if e else w for e, s, w in zip(escalated, strong, weak)) / len(local)
        base = math.fsum(weak) / len(local)
        points.append(
            SweepPoint(
                threshold=threshold,
                escalation_rate=round(sum(escalated) / len(local), 4),
                pass_at_1=round(quality, 4),
                pgr=_round((quality - base) / gap) if gap > 0 else None,
            )
        )
    return points


def recommend(sweep: Sequence[SweepPoint], target_rate: float) -> SweepPoint | None:
    """The threshold that escalates as many tasks as the target allows, and no more."""
    allowed = [p for p in sweep if p.escalation_rate <= target_rate + 1e-9]
    if not allowed:
        return None
    return max(allowed, key=lambda p: (p.escalation_rate, p.pass_at_1, -p.threshold))


def policy_snippet(threshold: float | None, strong_tier: str | None) -> str:
    if threshold is None:
        return "# no threshold keeps the escalation rate under the target on these tasks"
    target = strong_tier or "frontier"
    return (
        "[escalation]\n"
        f"completion_min_mean_logprob = {threshold}\n"
        "\n"
        "# completions escalate only under a rule with escalate_to, e.g.\n"
        "# [[rules]]\n"
        "# name = \"completions start local\"\n"
        "# task = [\"completion\"]\n"
        "# route = \"local\"\n"
        f"# escalate_to = \"{target}\""
    )


@dataclass(frozen=True)
class EscalationOptions:
    kind: str = "single"
    limit: int | None = 50
    seed: int = 0
    jobs: int = 2
    timeout_s: float = 5.0
    target_rate: float = DEFAULT_TARGET_RATE
    strong_tier: str | None = None  # None: frontier, else in_house, else the upper bound; "none": bound
    sandbox: Sandbox | None = None  # None: the bubblewrap sandbox, required


async def _strong_outcomes(
    strong: CompletionRunner,
    tasks,
    options: EscalationOptions,
    progress: Progress,
) -> tuple[list[TaskOutcome] | None, str]:
    """The strong tier's outcomes, or None with the reason it could not be measured."""
    try:
        await strong.start()
        first = await strong.pipeline(tasks[0])
    except Exception as error:  # any failure to reach the tier means: not measured
        return None, f"{strong.tier} could not be used ({type(error).__name__}: {error})"
    if first.text is None and first.error:
        return None, f"{strong.tier} is not reachable ({first.error})"
    rest = await generate(strong, tasks[1:], ["pipeline"], progress)
    produced: dict[Variant, list[Produced]] = {"pipeline": [first, *rest["pipeline"]]}
    outcomes = score(
        tasks, produced, jobs=options.jobs, timeout_s=options.timeout_s, sandbox=options.sandbox, progress=progress
    )
    return outcomes, f"measured on {strong.tier} ({strong.model_name})"


async def run_escalation_eval(
    options: EscalationOptions,
    local: CompletionRunner,
    strong: CompletionRunner | None,
    progress: Progress = _no_progress,
) -> EscalationReport:
    started = time.perf_counter()
    sandbox = options.sandbox or require_sandbox()  # before the model loads: refuse early
    options = dataclasses.replace(options, sandbox=sandbox)
    tasks = sample_tasks(options.kind, options.limit, options.seed)  # type: ignore[arg-type]
    await local.start()
    produced = await generate(local, tasks, ["pipeline"], progress)
    local_outcomes = score(
        tasks, produced, jobs=options.jobs, timeout_s=options.timeout_s, sandbox=options.sandbox, progress=progress
    )

    strong_outcomes: list[TaskOutcome] | None = None
    note = "no stronger tier is configured in the policy"
    if strong is not None:
        strong_outcomes, note = await _strong_outcomes(strong, tasks, options, progress)
    if strong_outcomes is not None:
        strong_scores = [1.0 if o.passed else 0.0 for o in strong_outcomes]
        source = "measured"
    else:
        strong_scores = [1.0] * len(tasks)
        source = "assumed_upper_bound"
        note += "; the curve ASSUMES THE STRONG TIER SOLVES EVERY TASK (an upper bound)"

    scores, curves = [], {}
    for signal in SIGNALS:
        signal_score, curve = _score_signal(signal, local_outcomes, strong_scores)
        scores.append(signal_score)
        curves[signal.name] = _points(curve)
    weak = [1.0 if o.passed else 0.0 for o in local_outcomes]
    oracle_curve = escalation_curve(oracle_confidence(weak, strong_scores), weak, strong_scores)
    oracle = SignalScore(
        signal="oracle",
        description="knows every outcome: escalates exactly the tasks it gains on",
        auroc_failure=None,
        apgr=_round(apgr(oracle_curve)),
        cpt50=_round(cpt(oracle_curve, 0.5)),
        cpt80=_round(cpt(oracle_curve, 0.8)),
    )
    curves["oracle"] = _points(oracle_curve)
    if oracle.apgr is not None and oracle.apgr > 0.5:
        for signal_score in scores:
            if signal_score.apgr is not None:
                signal_score.apgr_vs_oracle = round((signal_score.apgr - 0.5) / (oracle.apgr - 0.5), 4)
    sweep = threshold_sweep(local_outcomes, strong_scores)
    chosen = recommend(sweep, options.target_rate)
    strong_name = strong.tier if strong is not None else None
    report = EscalationReport(
        model=local.model_name,
        kind=options.kind,
        seed=options.seed,
        limit=options.limit,
        tasks=len(tasks),
        machine=machine_label(),
        sandbox=sandbox.summary(),
        wall_s=0.0,
        strong_tier=(strong_name or "none") + (" (assumed)" if source != "measured" else ""),
        strong_source=source,
        strong_note=note,
        local_pass_at_1=round(sum(weak) / len(weak), 4),
        strong_pass_at_1=round(sum(strong_scores) / len(strong_scores), 4),
        signals=scores,
        oracle=oracle,
        curves=curves,
        sweep=sweep,
        target_rate=options.target_rate,
        recommended_threshold=chosen.threshold if chosen else None,
        recommended_rate=chosen.escalation_rate if chosen else None,
        recommended_pass_at_1=chosen.pass_at_1 if chosen else None,
        policy_snippet=policy_snippet(chosen.threshold if chosen else None, strong_name),
    )
    report.outcomes = local_outcomes + (strong_outcomes or [])
    report.wall_s = round(time.perf_counter() - started, 2)
    return report
