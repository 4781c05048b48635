"""`ninetyten eval`, run as a user would: subprocesses, real llama.cpp, real sandboxed tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.eval.execution import run_program
from lsp_server.eval.humaneval import sample_tasks
from lsp_server.eval.metrics import percentile
from lsp_server.routing.policy import parse_policy
from tests.loopback_provider import LoopbackProvider, RecordedRequest


def run(
    *args: str, home: Path, cwd: Path | None = None, timeout: float = 300, path: str | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "NINETYTEN_HOME": str(home)}
    if path is not None:
        env["PATH"] = path
    env.pop("NINETYTEN_MODEL", None)
    env.pop("NINETYTEN_POLICY", None)
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", "eval", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_eval_completion_json_is_consistent_with_the_programs(bubblewrap, tiny_model_path, tmp_path):
    out = tmp_path / "out"
    result = run(
        "completion",
        "--limit",
        "3",
        "--kind",
        "both",
        "--model",
        str(tiny_model_path),
        "--json",
        "--out",
        str(out),
        "--jobs",
        "2",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["command"] == "completion" and report["tier"] == "local"
    assert report["model"] == tiny_model_path.name and report["prompt_mode"] == "fim"
    assert report["tasks"] == 6 and "cores" in report["machine"]
    keys = {(s["variant"], s["kind"]) for s in report["summaries"]}
    assert keys == {(v, k) for v in ("pipeline", "raw") for k in ("all", "single", "multi")}
    assert json.loads((out / "completion.json").read_text()) == report

    rows = [json.loads(line) for line in (out / "completion_tasks.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    expected_ids = [t.task_id for t in sample_tasks("both", 3, seed=0)]
    tasks = {t.task_id: t for t in sample_tasks("both", 3, seed=0)}
    for variant in ("pipeline", "raw"):
        mine = [r for r in rows if r["variant"] == variant]
        assert [r["task_id"] for r in mine] == expected_ids
        summary = next(s for s in report["summaries"] if s["variant"] == variant and s["kind"] == "all")
        # The pass count is the number of completed programs that really pass, re-run here.
        rerun = [run_program(tasks[r["task_id"]].program(r["completion"])).passed for r in mine]
        assert [r["passed"] for r in mine] == rerun
        assert summary["passed"] == sum(rerun)
        assert summary["pass_at_1"] == sum(rerun) / 6
        assert summary["edit_similarity"] == pytest.approx(sum(r["edit_similarity"] for r in mine) / 6)
        assert summary["latency_p50_ms"] == round(percentile([r["latency_ms"] for r in mine], 50) or 0, 1)
        assert summary["completion_tokens"] == sum(r["completion_tokens"] for r in mine) > 0
        assert summary["cost_usd"] == 0.0
    # The raw baseline has no stop rules: the random model runs to the token cap.
    raw = [r for r in rows if r["variant"] == "raw"]
    assert all(r["stop_reason"] in ("max_tokens", "eos") for r in raw)
    # The pipeline cuts and cleans: never more than max_lines (8) lines.
    assert all(len((r["completion"] or "").split("\n")) <= 8 for r in rows if r["variant"] == "pipeline")


def test_eval_completion_with_the_reference_answers_scores_everything(bubblewrap, tmp_path):
    result = run("completion", "--canonical", "--limit", "5", "--kind", "both", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    overall = next(s for s in report["summaries"] if s["kind"] == "all")
    assert overall["variant"] == "canonical" and overall["tasks"] == 10
    assert overall["pass_at_1"] == 1.0 and overall["exact_match"] == 1.0
    assert report["sandbox"].startswith("bubblewrap sandbox")


def unusable_bubblewrap(folder: Path) -> str:
    """A PATH whose bwrap fails the way it does where user namespaces are disabled."""
    folder.mkdir()
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    setpriv = shutil.which("setpriv")
    if setpriv:  # root needs it before bwrap is even tried
        (folder / "setpriv").symlink_to(setpriv)
    return str(folder)


@pytest.mark.parametrize("command", ["completion", "escalation"])
def test_eval_refuses_to_run_model_code_without_a_sandbox(tiny_model_path, tmp_path, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, reason in (
        (unusable_bubblewrap(tmp_path / "fake"), "bwrap: No permissions to create new namespace"),
        (str(empty), "bubblewrap (bwrap) is not installed"),
    ):
        result = run(
            command,
            "--limit",
            "1",
            "--model",
            str(tiny_model_path),
            "--json",
            "--out",
            str(tmp_path / "o"),
            home=tmp_path,
            path=path,
        )
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert "refusing to run model-written code without a sandbox" in result.stderr
        assert reason in result.stderr and "--unsafe-no-sandbox" in result.stderr
        assert not (tmp_path / "o").exists()  # it stopped before doing anything


def test_eval_runs_without_a_sandbox_only_when_told(tmp_path):
    result = run(
        "completion",
        "--canonical",
        "--limit",
        "3",
        "--json",
        "--unsafe-no-sandbox",
        home=tmp_path,
        path=unusable_bubblewrap(tmp_path / "fake"),
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING: running model-written code WITHOUT a sandbox" in result.stderr
    report = json.loads(result.stdout)
    assert report["sandbox"].startswith("NO SANDBOX (--unsafe-no-sandbox)")
    assert next(s for s in report["summaries"] if s["kind"] == "all")["pass_at_1"] == 1.0


def test_the_unsafe_flag_does_not_switch_a_working_sandbox_off(bubblewrap, tmp_path):
    result = run("completion", "--canonical", "--limit", "2", "--json", "--unsafe-no-sandbox", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sandbox"].startswith("bubblewrap sandbox")
    assert "WARNING" not in result.stderr


def test_eval_completion_table(bubblewrap, tiny_model_path, tmp_path):
    result = run("completion", "--limit", "2", "--model", str(tiny_model_path), "--no-raw", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pass@1" in result.stdout and "pipeline" in result.stdout and "raw" not in result.stdout.split("sandbox")[0]
    assert "bubblewrap sandbox" in result.stdout


def test_eval_completion_refuses_a_tier_the_policy_lacks(tiny_model_path, tmp_path):
    result = run("completion", "--limit", "1", "--model", str(tiny_model_path), "--tier", "frontier", home=tmp_path)
    assert result.returncode == 1
    assert "tiers.frontier" in result.stderr


def test_eval_escalation_writes_plot_and_json(bubblewrap, tiny_model_path, tmp_path):
    out = tmp_path / "esc"
    result = run(
        "escalation",
        "--limit",
        "4",
        "--model",
        str(tiny_model_path),
        "--out",
        str(out),
        "--json",
        "--target-rate",
        "25%",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (out / "escalation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "escalation.json").read_text()) == report
    assert report["strong_source"] == "assumed_upper_bound" and "UPPER BOUND" in report["strong_note"].upper()
    assert report["strong_pass_at_1"] == 1.0 and report["tasks"] == 4
    assert {s["signal"] for s in report["signals"]} >= {"mean_logprob", "min_logprob", "verifier"}
    for points in report["curves"].values():
        assert points[0]["rate"] == 0.0 and points[-1]["rate"] == 1.0
        assert points[0]["quality"] == report["local_pass_at_1"] and points[-1]["quality"] == 1.0
    assert report["recommended_rate"] <= 0.25
    # The line to paste is valid policy, and it escalates what the report says it does.
    threshold = report["recommended_threshold"]
    policy = parse_policy(report["policy_snippet"])
    assert policy.escalation.completion_min_mean_logprob == threshold
    rows = [json.loads(line) for line in (out / "escalation_tasks.jsonl").read_text().splitlines()]
    escalated = [r for r in rows if r["completion"] and r["mean_logprob"] < threshold]
    assert len(escalated) / 4 == report["recommended_rate"]


def test_eval_escalation_measures_a_reachable_strong_tier(bubblewrap, tiny_model_path, tmp_path):
    tasks = sample_tasks("single", 3, seed=0)

    def answer(request: RecordedRequest) -> str:
        # The frontier knows the answer for every task but the first.
        text = request.body["messages"][-1]["content"]
        before = text.split("<CURSOR>", 1)[0]
        task = next(t for t in tasks if t.prefix.endswith(before.split("\n\n", 1)[1]))
        return "(" if task is tasks[0] else task.middle  # "(": a syntax error always fails

    with LoopbackProvider(reply=answer) as frontier:
        policy = tmp_path / "policy.toml"
        policy.write_text(
            f"""
[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.frontier]
backend = "openai"
base_url = "{frontier.openai_url}"
model = "loopback-model"
price = {{ input_per_mtok = 2.0, output_per_mtok = 10.0 }}
""",
            encoding="utf-8",
        )
        out = tmp_path / "esc"
        result = run(
            "escalation",
            "--limit",
            "3",
            "--model",
            str(tiny_model_path),
            "--policy",
            str(policy),
            "--out",
            str(out),
            "--json",
            home=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        sent = frontier.requests
    report = json.loads(result.stdout)
    assert report["strong_source"] == "measured" and report["strong_tier"] == "frontier"
    assert len([r for r in sent if r.path.endswith("/chat/completions")]) == 3
    rows = [json.loads(line) for line in (out / "escalation_tasks.jsonl").read_text().splitlines()]
    strong = [r for r in rows if r["tier"] == "frontier"]
    assert [r["passed"] for r in strong] == [False, True, True]
    assert report["strong_pass_at_1"] == round(2 / 3, 4)
    assert all(r["cost_usd"] > 0 for r in strong)  # the policy's price applies


def test_eval_real_code_suites_report_both_variants_and_the_gate(tiny_model_path, tmp_path):
    """`--suite crossfile` indexes a real package and compares the pipeline with and without
    its context; `--suite lines --split dev` draws from other files; no sandbox is needed."""
    out = tmp_path / "out"
    crossfile = run(
        "completion", "--suite", "crossfile", "--limit", "2", "--model", str(tiny_model_path), "--json",
        "--out", str(out), home=tmp_path,
    )  # fmt: skip
    assert crossfile.returncode == 0, crossfile.stderr
    report = json.loads(crossfile.stdout)
    assert (report["suite"], report["split"], report["tasks"]) == ("crossfile", "test", 2)
    assert [s["variant"] for s in report["summaries"]] == ["context", "no_context", "raw"]
    assert report["quiet_below"] == -0.6 and report["gate"]
    rows = [json.loads(line) for line in (out / "completion_crossfile_tasks.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert all(r["context_snippets"] > 0 for r in rows if r["variant"] == "context")  # the sibling's definition
    assert all(r["context_snippets"] == 0 for r in rows if r["variant"] != "context")
    lines = run(
        "completion", "--suite", "lines", "--split", "dev", "--limit", "2", "--no-raw", "--model",
        str(tiny_model_path), "--out", str(out), home=tmp_path,
    )  # fmt: skip
    assert lines.returncode == 0, lines.stderr
    assert "dev split" in lines.stdout and (out / "completion_lines_dev.json").exists()
    dev = json.loads((out / "completion_lines_dev.json").read_text())
    assert [s["variant"] for s in dev["summaries"]] == ["pipeline"]
