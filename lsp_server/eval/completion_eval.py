"""`ninetyten eval completion`: HumanEval infilling through the real completion pipeline.

Two phases, so the model and the test programs never compete for the CPU (which would
distort latency and trip the pipeline's time box): all completions first, then all
programs in the sandbox, `jobs` at a time.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lsp_server.eval.execution import run_programs
from lsp_server.eval.humaneval import InfillTask, KindChoice, sample_tasks
from lsp_server.eval.metrics import edit_similarity, exact_match
from lsp_server.eval.program_run import DEFAULT_TIMEOUT_S
from lsp_server.eval.results import CompletionReport, TaskOutcome, Variant, summarise
from lsp_server.eval.runner import CompletionRunner, Produced
from lsp_server.eval.sandbox import Sandbox, require_sandbox
from lsp_server.routing.escalation import verify
from lsp_server.tiers import TierName

# (phase, done, total): the CLI turns this into a progress bar.
Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class CompletionOptions:
    kind: KindChoice = "single"
    limit: int | None = 50
    seed: int = 0
    jobs: int = 2
    timeout_s: float = DEFAULT_TIMEOUT_S
    tier: TierName = "local"
    raw: bool = True  # also run the raw-model baseline (local tier only)
    canonical: bool = False  # insert the reference answer instead of asking a model
    sandbox: Sandbox | None = None  # None: the bubblewrap sandbox, required


def machine_label() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import llama_cpp

        gpu = "GPU offload" if llama_cpp.llama_supports_gpu_offload() else "no GPU"
    except Exception:  # the label must never stop a run
        gpu = "GPU unknown"
    return f"{cores} cores {platform.machine()}, {gpu}"


def syntax_checks(task: InfillTask, text: str | None) -> list[str]:
    """The escalation verifiers, applied where they mean something for a completion:
    `non_empty` on the inserted text, `syntax` on the file with the text inserted (a
    fragment such as `if x:` never parses alone)."""
    failed = verify(text, ["non_empty"], kind="code", language="python")
    if text and text.strip():
        body = task.prefix + text + task.suffix
        failed += verify(body, ["syntax"], kind="code", language="python")
    return failed


def canonical_answers(tasks: Sequence[InfillTask]) -> list[Produced]:
    return [Produced(text=task.middle, tier="reference", latency_ms=0.0, stop_reason="reference") for task in tasks]


async def generate(
    runner: CompletionRunner,
    tasks: Sequence[InfillTask],
    variants: Sequence[Variant],
    progress: Progress = _no_progress,
) -> dict[Variant, list[Produced]]:
    produced: dict[Variant, list[Produced]] = {variant: [] for variant in variants}
    total = len(tasks) * len(variants)
    done = 0
    progress("generating", done, total)
    for task in tasks:
        for variant in variants:
            answer = await (runner.pipeline(task) if variant == "pipeline" else runner.raw(task))
            produced[variant].append(answer)
            done += 1
            progress("generating", done, total)
    return produced


def score(
    tasks: Sequence[InfillTask],
    produced: dict[Variant, list[Produced]],
    *,
    jobs: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sandbox: Sandbox | None = None,
    progress: Progress = _no_progress,
) -> list[TaskOutcome]:
    """Run every completed program with its tests and score each answer."""
    pairs = [
        (variant, task, answer)
        for variant, answers in produced.items()
        for task, answer in zip(tasks, answers, strict=True)
    ]
    total = len(pairs)
    done = 0
    lock = threading.Lock()  # programs finish on several executor threads
    progress("running tests", 0, total)

    def tick() -> None:
        nonlocal done
        with lock:
            done += 1
            progress("running tests", done, total)

    runs = run_programs(
        [task.program(answer.text) for _, task, answer in pairs],
        jobs=jobs,
        timeout_s=timeout_s,
        sandbox=sandbox,
        on_done=tick,
    )
    outcomes = []
    for (variant, task, answer), run in zip(pairs, runs, strict=True):
        error = run.detail if not run.passed else (answer.error or "")
        outcomes.append(
            TaskOutcome(
                task_id=task.task_id,
                problem_id=task.problem_id,
                kind=task.kind,
                variant=variant,
                tier=answer.tier,
                completion=answer.text,
                expected=task.middle,
                passed=run.passed,
                status=run.status,
                error=error[:500],
                exact_match=exact_match(answer.text, task.middle),
                edit_similarity=round(edit_similarity(answer.text, task.middle), 4),
                latency_ms=round(answer.latency_ms, 1),
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
                cost_usd=answer.cost_usd,
                stop_reason=answer.stop_reason,
                mean_logprob=answer.mean_logprob,
                min_logprob=answer.min_logprob,
                verify_failed=syntax_checks(task, answer.text),
            )
        )
    return outcomes


async def run_completion_eval(
    options: CompletionOptions, runner: CompletionRunner | None, progress: Progress = _no_progress
) -> tuple[CompletionReport, list[TaskOutcome]]:
    """Sample tasks, generate (unless canonical), score, summarise."""
    started = time.perf_counter()
    sandbox = options.sandbox or require_sandbox()  # before the model loads: refuse early
    tasks = sample_tasks(options.kind, options.limit, options.seed)
    variants: list[Variant]
    if options.canonical or runner is None:
        variants = ["canonical"]
        produced: dict[Variant, list[Produced]] = {"canonical": canonical_answers(tasks)}
        tier, model, mode = "reference", "-", "-"
    else:
        variants = ["pipeline", "raw"] if options.raw and options.tier == "local" else ["pipeline"]
        await runner.start()
        produced = await generate(runner, tasks, variants, progress)
        tier, model, mode = options.tier, runner.model_name, runner.prompt_mode
    outcomes = score(
        tasks, produced, jobs=options.jobs, timeout_s=options.timeout_s, sandbox=sandbox, progress=progress
    )
    kinds = ["single", "multi"] if options.kind == "both" else []
    summaries = [
        summarise(outcomes, variant, kind, tier if variant != "raw" else "local")  # type: ignore[arg-type]
        for variant in variants
        for kind in ["all", *kinds]
    ]
    report = CompletionReport(
        tier=tier,
        model=model,
        prompt_mode=mode,
        kind=options.kind,
        seed=options.seed,
        limit=options.limit,
        tasks=len(tasks),
        machine=machine_label(),
        sandbox=sandbox.summary(),
        wall_s=round(time.perf_counter() - started, 2),
        summaries=summaries,
    )
    return report, outcomes
