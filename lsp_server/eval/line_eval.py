"""`ninetyten eval completion --suite lines|crossfile`: the pipeline on real code.

Each task is a cursor in a real file (see code_lines.py); an answer is scored by exact match
and edit similarity against the text that was cut out. No test program runs, so no sandbox.

Variants:

- **lines**: `pipeline` (the server's prompt, stop rules and post-processing, default
  settings) against `raw` (llama.cpp's first line on the plain prefix: the text before the
  cursor, greedy, cut at the first newline);
- **crossfile**: `context` (the pipeline with repository context: the package is indexed as
  the workspace, exactly as the server indexes a workspace folder, and only the edited file
  is open) against `no_context` (the same pipeline without it), and `raw` as above.

Every answer is generated from a clean KV cache, so a variant's answers do not depend on the
prompts of the others (a cached prefix changes the last bits of the model's numbers).

The quiet gate is applied afterwards, from each answer's mean token log-probability, so one
run reports both the default (gate on) and every answer (gate off), and a sweep of thresholds
as shown rate against accepted-if-correct rate (the share of shown suggestions that were
right): the numbers the default threshold is calibrated on.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lsp_server.completion.prompt import CompletionInput, ContextFile
from lsp_server.completion.quiet_gate import QuietGate
from lsp_server.completion.session_context import prompt_files
from lsp_server.context.entries import IndexLimits
from lsp_server.context.prompt_context import PromptContext
from lsp_server.context.retrieval import ContextOptions
from lsp_server.eval.code_lines import CROSSFILE_PACKAGES, LineTask, Suite, crossfile_tasks, stdlib_line_tasks
from lsp_server.eval.completion_eval import machine_label
from lsp_server.eval.metrics import edit_similarity, exact_match, percentile
from lsp_server.eval.results import GatePoint, LineOutcome, LineReport, LineSummary
from lsp_server.eval.runner import CompletionRunner, Produced

Progress = Callable[[str, int, int], None]
LineVariant = Literal["pipeline", "context", "no_context", "raw"]
DEV_SEED_OFFSET = 1  # the dev split's tasks come from this seed (files of the test split left out)


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class LineEvalOptions:
    suite: Suite = "lines"
    limit: int | None = 50
    seed: int = 0
    raw: bool = True
    packages: tuple[str, ...] = CROSSFILE_PACKAGES
    # "test": the seeded sample; "dev": as many tasks from other files (drawn with another
    # seed), for tuning without touching the positions that are reported.
    split: Literal["test", "dev"] = "test"


def variants_for(options: LineEvalOptions) -> list[LineVariant]:
    main: list[LineVariant] = ["context", "no_context"] if options.suite == "crossfile" else ["pipeline"]
    return [*main, "raw"] if options.raw else main


def tasks_for(options: LineEvalOptions) -> list[LineTask]:
    def sample(limit: int | None, seed: int) -> list[LineTask]:
        if options.suite == "crossfile":
            return crossfile_tasks(limit, seed, options.packages)
        return stdlib_line_tasks(limit, seed)

    test = sample(options.limit, options.seed)
    if options.split == "test":
        return test
    held_out = {task.path for task in test}
    wanted = len(test)
    return [task for task in sample(wanted * 3, options.seed + DEV_SEED_OFFSET) if task.path not in held_out][:wanted]


class Workspaces:
    """One indexed copy of each package, as the server would index a workspace folder.

    The copy holds the package's Python files only, in a temporary folder (the installed
    package sits inside a virtual environment, which discovery skips, and under a git
    repository's ignore rules)."""

    def __init__(self, budget_tokens: int) -> None:
        self.budget_tokens = budget_tokens
        self._tmp = Path(tempfile.mkdtemp(prefix="ninetyten-eval-"))
        self._contexts: dict[str, PromptContext] = {}

    def context_for(self, task: LineTask) -> PromptContext:
        if task.package not in self._contexts:
            folder = self._tmp / task.package
            shutil.copytree(
                task.root / task.package,
                folder / task.package,
                ignore=lambda d, names: [
                    n for n in names if not (n.endswith(".py") or (Path(d) / n).is_dir()) or n == "__pycache__"
                ],
            )
            context = PromptContext(
                max_edits=0,
                limits=IndexLimits(worker="inline", watch=False),
                options=ContextOptions(budget_tokens=self.budget_tokens),
            )
            context.build([folder])
            self._contexts[task.package] = context
        return self._contexts[task.package]

    def extra(self, task: LineTask) -> list[ContextFile]:
        """The context the server would give this cursor."""
        context = self.context_for(task)
        assert context.repository is not None
        path = context.repository.index.roots[0] / task.path
        return prompt_files(
            context, f"eval:{task.task_id}", path, task.text, task.line, task.character, self.budget_tokens
        )

    def close(self) -> None:
        for context in self._contexts.values():
            context.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


def task_input(task: LineTask, extra: Sequence[ContextFile] = ()) -> CompletionInput:
    return CompletionInput(
        path=task.path,
        text=task.text,
        line=task.line,
        character=task.character,
        extra=tuple(extra),
        repo_name=task.package or "",
    )


def before_cursor(task: LineTask) -> str:
    lines = task.text.split("\n")
    return "".join(line + "\n" for line in lines[: task.line]) + lines[task.line][: task.character]


async def generate(
    runner: CompletionRunner,
    tasks: Sequence[LineTask],
    variants: Sequence[LineVariant],
    workspaces: Workspaces | None,
    progress: Progress = _no_progress,
) -> list[LineOutcome]:
    outcomes: list[LineOutcome] = []
    total = len(tasks) * len(variants)
    progress("generating", 0, total)
    for task in tasks:
        for variant in variants:
            # Every answer from a clean KV cache: a prefix cached from the previous prompt
            # changes the model's numbers in the last bits, and so now and then its greedy
            # choice, which would make one variant's answers depend on the other's prompts.
            runner.engine.local.forget_cache()
            if variant == "raw":
                answer = await runner.raw_first_line(before_cursor(task))
            else:
                extra = workspaces.extra(task) if variant == "context" and workspaces is not None else []
                answer = await runner.complete_input(task_input(task, extra))
            outcomes.append(_outcome(task, variant, answer, runner.quiet_below if variant != "raw" else None))
            progress("generating", len(outcomes), total)
    return outcomes


def _outcome(task: LineTask, variant: LineVariant, answer: Produced, quiet_below: float | None) -> LineOutcome:
    quiet = (
        quiet_below is not None and answer.text is not None and QuietGate(quiet_below).holds_back(answer.mean_logprob)
    )
    return LineOutcome(
        task_id=task.task_id,
        suite=task.suite,
        variant=variant,
        completion=answer.text,
        expected=task.expected,
        exact_match=exact_match(answer.text, task.expected),
        edit_similarity=round(edit_similarity(answer.text, task.expected), 4),
        quiet=quiet,
        latency_ms=round(answer.latency_ms, 1),
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        stop_reason=answer.stop_reason,
        mean_logprob=answer.mean_logprob,
        min_logprob=answer.min_logprob,
        context_snippets=answer.context_snippets,
        package=task.package,
        symbol=task.symbol,
    )


def summarise(outcomes: Sequence[LineOutcome], variant: LineVariant) -> LineSummary:
    rows = [o for o in outcomes if o.variant == variant]
    count = len(rows) or 1
    shown = [o for o in rows if o.completion and not o.quiet]
    latencies = [o.latency_ms for o in rows]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return LineSummary(
        variant=variant,
        tasks=len(rows),
        exact_match=sum(o.exact_match for o in rows) / count,
        edit_similarity=sum(o.edit_similarity for o in rows) / count,
        exact_match_quiet=sum(o.exact_match and not o.quiet for o in rows) / count,
        edit_similarity_quiet=sum(o.edit_similarity if not o.quiet else edit_similarity(None, o.expected) for o in rows)
        / count,
        empty=sum(not o.completion for o in rows),
        shown_rate=len(shown) / count,
        accepted_if_correct=(sum(o.exact_match for o in shown) / len(shown)) if shown else None,
        latency_p50_ms=None if p50 is None else round(p50, 1),
        latency_p95_ms=None if p95 is None else round(p95, 1),
        prompt_tokens=sum(o.prompt_tokens for o in rows),
        completion_tokens=sum(o.completion_tokens for o in rows),
    )


def gate_sweep(outcomes: Sequence[LineOutcome], variant: LineVariant) -> list[GatePoint]:
    """Every threshold that changes what is shown: shown rate against accepted-if-correct."""
    rows = [o for o in outcomes if o.variant == variant]
    answered = [o for o in rows if o.completion and o.mean_logprob is not None]
    if not rows:
        return []
    thresholds = sorted({round(o.mean_logprob, 3) for o in answered if o.mean_logprob is not None})
    points = []
    for threshold in [float("-inf"), *thresholds]:
        shown = [o for o in answered if o.mean_logprob is not None and o.mean_logprob >= threshold]
        right = sum(o.exact_match for o in shown)
        points.append(
            GatePoint(
                threshold=threshold if threshold != float("-inf") else None,
                shown_rate=len(shown) / len(rows),
                accepted_if_correct=right / len(shown) if shown else None,
                exact_match=right / len(rows),
                correct_kept=right / max(1, sum(o.exact_match for o in answered)),
            )
        )
    return points


async def run_line_eval(
    options: LineEvalOptions, runner: CompletionRunner, progress: Progress = _no_progress
) -> tuple[LineReport, list[LineOutcome]]:
    started = time.perf_counter()
    tasks = tasks_for(options)
    variants = variants_for(options)
    workspaces = Workspaces(runner.config.completion.extra_tokens) if options.suite == "crossfile" else None
    try:
        await runner.start()
        outcomes = await generate(runner, tasks, variants, workspaces, progress)
    finally:
        if workspaces is not None:
            workspaces.close()
    main: LineVariant = "context" if options.suite == "crossfile" else "pipeline"
    report = LineReport(
        suite=options.suite,
        split=options.split,
        model=runner.model_name,
        prompt_mode=runner.prompt_mode,
        seed=options.seed,
        limit=options.limit,
        tasks=len(tasks),
        machine=machine_label(),
        wall_s=round(time.perf_counter() - started, 2),
        quiet_below=runner.quiet_below,
        summaries=[summarise(outcomes, v) for v in variants],
        gate=gate_sweep(outcomes, main),
        packages=sorted({t.package for t in tasks if t.package}),
    )
    return report, outcomes
