"""HumanEval infilling tasks: masking, filling back in, sampling."""

from __future__ import annotations

from lsp_server.completion.prompt import split_at_cursor
from lsp_server.eval.humaneval import (
    MULTI_MAX_LINES,
    MULTI_MIN_LINES,
    all_tasks,
    load_problems,
    multi_line_tasks,
    sample_tasks,
    single_line_tasks,
)
from lsp_server.eval.runner import task_input


def test_the_real_problems_are_read():
    problems = load_problems()
    assert len(problems) == 164
    first = problems[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert "def check(candidate)" in first.test


def test_every_single_line_task_gives_back_the_canonical_program():
    for problem in load_problems():
        tasks = list(single_line_tasks(problem))
        non_blank = [line for line in problem.canonical_solution.split("\n") if line.strip()]
        assert len(tasks) == len(non_blank)
        for task, line in zip(tasks, non_blank):
            assert task.prefix + task.middle + task.suffix == problem.program
            assert task.middle == line.lstrip(" \t") and "\n" not in task.middle
            assert task.program(task.middle).startswith(problem.program)


def test_the_cursor_sits_after_the_indentation_of_an_otherwise_empty_line():
    task = next(t for t in all_tasks("single") if t.task_id == "HumanEval/0/single/L12")
    assert task.middle == "for idx, elem in enumerate(numbers):"
    inp = task_input(task)
    before, line_prefix, line_suffix, after = split_at_cursor(inp)
    assert line_prefix == "    " and line_suffix == ""
    assert "".join(before) + line_prefix == task.prefix
    assert after[0].strip().startswith("for idx2, elem2")


def test_multi_line_blocks():
    problem = load_problems()[0]
    tasks = list(multi_line_tasks(problem))
    assert tasks
    for task in tasks:
        assert task.prefix + task.middle + task.suffix == problem.program
        lines = task.middle.split("\n")
        assert MULTI_MIN_LINES <= len(lines) <= MULTI_MAX_LINES
        assert lines[0].strip() and lines[-1].strip()  # blocks start and end on code
    block = next(t for t in tasks if t.task_id == "HumanEval/0/multi/L12-14")
    assert block.middle == (
        "for idx, elem in enumerate(numbers):\n"
        "        for idx2, elem2 in enumerate(numbers):\n"
        "            if idx != idx2:"
    )


def test_sampling_is_deterministic_and_nested():
    small = sample_tasks("single", 5, seed=3)
    again = sample_tasks("single", 5, seed=3)
    large = sample_tasks("single", 40, seed=3)
    other = sample_tasks("single", 5, seed=4)
    assert [t.task_id for t in small] == [t.task_id for t in again]
    assert {t.task_id for t in small} <= {t.task_id for t in large}
    assert {t.task_id for t in small} != {t.task_id for t in other}
    both = sample_tasks("both", 4, seed=0)
    assert [t.kind for t in both].count("single") == 4 and [t.kind for t in both].count("multi") == 4
    assert len(sample_tasks("single", None, seed=0)) == len(all_tasks("single")) == 1033
