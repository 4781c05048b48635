"""The real-code suites' tasks and scores, without a model: tasks cut from real files are
reproducible, cut where they say, and the dev split shares no file with the test split."""

from __future__ import annotations

from pathlib import Path

from lsp_server.eval.code_lines import crossfile_tasks, stdlib_line_tasks
from lsp_server.eval.line_eval import LineEvalOptions, gate_sweep, summarise, tasks_for
from lsp_server.eval.results import LineOutcome


def write_package(root: Path) -> None:
    package = root / "wirepkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "framing.py").write_text("def encode_frame(data, seed):\n    return data\n")
    (package / "app.py").write_text(
        "from .framing import encode_frame\n\n\ndef send(sock, payload):\n"
        "    frame = encode_frame(payload, 7)\n    return frame\n"
    )


def test_a_crossfile_task_is_a_call_of_a_sibling_modules_function_cut_after_the_bracket(tmp_path, monkeypatch):
    write_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (task,) = crossfile_tasks(None, seed=0, packages=("wirepkg",))
    assert (task.path, task.symbol, task.defined_in) == ("wirepkg/app.py", "encode_frame", "wirepkg/framing.py")
    assert task.expected == "payload, 7)"
    line = task.text.split("\n")[task.line]
    assert line == "    frame = encode_frame(" and task.character == len(line)
    assert "payload, 7)" not in task.text  # the answer is cut out


def test_line_tasks_are_reproducible_and_blank_one_statement_after_its_indentation():
    first = stdlib_line_tasks(6, seed=3)
    assert [t.task_id for t in first] == [t.task_id for t in stdlib_line_tasks(6, seed=3)]
    assert [t.task_id for t in stdlib_line_tasks(3, seed=3)] == [t.task_id for t in first[:3]]
    for task in first:
        original = (task.root / task.path).read_text(encoding="utf-8").split("\n")
        blanked = task.text.split("\n")
        assert original[task.line].strip() == task.expected
        assert blanked[task.line] == original[task.line][: task.character] and not blanked[task.line].strip()
        assert blanked[: task.line] == original[: task.line] and blanked[task.line + 1 :] == original[task.line + 1 :]


def test_the_dev_split_leaves_out_every_file_of_the_test_split():
    test = tasks_for(LineEvalOptions(suite="lines", limit=10, seed=0))
    dev = tasks_for(LineEvalOptions(suite="lines", limit=10, seed=0, split="dev"))
    assert len(dev) == len(test) == 10
    assert not {t.path for t in dev} & {t.path for t in test}


def outcome(variant: str, completion: str | None, expected: str, mean: float | None, quiet: bool) -> LineOutcome:
    return LineOutcome(
        task_id=f"t{expected}",
        suite="lines",
        variant=variant,  # type: ignore[arg-type]
        completion=completion,
        expected=expected,
        exact_match=completion == expected,
        edit_similarity=1.0 if completion == expected else 0.0,
        quiet=quiet,
        latency_ms=1.0,
        prompt_tokens=10,
        completion_tokens=2,
        stop_reason="eos",
        mean_logprob=mean,
    )


def test_scores_with_the_quiet_gate_on_and_off_and_its_sweep():
    rows = [
        outcome("pipeline", "a", "a", -0.1, False),
        outcome("pipeline", "b", "x", -0.9, True),
        outcome("pipeline", "c", "y", -0.2, False),
        outcome("pipeline", None, "z", None, False),
    ]
    summary = summarise(rows, "pipeline")
    assert (summary.exact_match, summary.exact_match_quiet, summary.empty) == (0.25, 0.25, 1)
    assert summary.shown_rate == 0.5 and summary.accepted_if_correct == 0.5
    sweep = {point.threshold: point for point in gate_sweep(rows, "pipeline")}
    assert sweep[None].shown_rate == 0.75 and sweep[-0.2].shown_rate == 0.5 and sweep[-0.1].shown_rate == 0.25
    assert sweep[-0.1].accepted_if_correct == 1.0 and sweep[-0.1].correct_kept == 1.0
