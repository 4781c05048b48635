"""Terminal tables and result files for `ninetyten eval`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from lsp_server.eval.results import CompletionReport, EscalationReport, GatePoint, LineReport, SweepPoint


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_completion(report: CompletionReport, console: Console) -> None:
    table = Table(
        title=f"HumanEval infilling · tier {report.tier} · {report.model} ({report.prompt_mode} prompt) · "
        f"{report.tasks} tasks ({report.kind}, seed {report.seed})"
    )
    for column, justify in (
        ("variant", "left"),
        ("kind", "left"),
        ("tasks", "right"),
        ("pass@1", "right"),
        ("exact", "right"),
        ("edit sim", "right"),
        ("empty", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("prompt tok", "right"),
        ("compl tok", "right"),
        ("cost $", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in report.summaries:
        table.add_row(
            s.variant,
            s.kind,
            str(s.tasks),
            f"{_pct(s.pass_at_1)} ({s.passed})",
            _pct(s.exact_match),
            _num(s.edit_similarity),
            str(s.empty),
            _ms(s.latency_p50_ms),
            _ms(s.latency_p95_ms),
            f"{s.prompt_tokens:,}",
            f"{s.completion_tokens:,}",
            f"{s.cost_usd:.4f}",
        )
    console.print(table)
    if report.summary("raw") is not None:
        console.print(
            "raw = the same model on a plain prompt, up to the token cap, with no stop rules and no post-processing"
        )
    console.print(f"machine: {report.machine} · wall time {report.wall_s:.1f} s")
    console.print(f"sandbox: {report.sandbox}")


def _sweep_rows(sweep: Sequence[SweepPoint], steps: int = 10) -> list[SweepPoint]:
    """About one row per 10 % of escalation rate: the full sweep is in the JSON."""
    chosen: list[SweepPoint] = []
    for step in range(steps + 1):
        target = step / steps
        best = min(sweep, key=lambda p: (abs(p.escalation_rate - target), p.threshold))
        if best not in chosen:
            chosen.append(best)
    return chosen


def print_escalation(report: EscalationReport, console: Console) -> None:
    bound = report.strong_source == "assumed_upper_bound"
    strong_label = "ASSUMED 100% (upper bound)" if bound else _pct(report.strong_pass_at_1)
    console.print(
        f"[bold]Escalation on {report.tasks} HumanEval infilling tasks[/bold] ({report.kind}, seed "
        f"{report.seed}) · local {report.model}: pass@1 {_pct(report.local_pass_at_1)} · strong tier "
        f"{report.strong_tier}: {strong_label}"
    )
    console.print(f"strong tier: {report.strong_note}")
    table = Table(title="Router metrics" + (" (strong tier assumed perfect: UPPER BOUND)" if bound else ""))
    for column in ("signal", "AUROC (failure)", "APGR", "APGR vs oracle", "CPT(50%)", "CPT(80%)"):
        table.add_column(column, justify="left" if column == "signal" else "right")
    for signal in report.signals:
        table.add_row(
            signal.signal,
            _num(signal.auroc_failure),
            _num(signal.apgr),
            _pct(signal.apgr_vs_oracle),
            _pct(signal.cpt50),
            _pct(signal.cpt80),
        )
    table.add_row("random", "0.500", f"{report.random_apgr:.3f}", "0.0%", "50.0%", "80.0%", style="dim")
    oracle = report.oracle
    table.add_row("oracle", "-", _num(oracle.apgr), "100.0%", _pct(oracle.cpt50), _pct(oracle.cpt80), style="dim")
    console.print(table)
    sweep = Table(title="completion_min_mean_logprob sweep" + (" (UPPER BOUND)" if bound else ""))
    for column in ("threshold", "escalated", "pass@1", "gap recovered"):
        sweep.add_column(column, justify="right")
    for point in _sweep_rows(report.sweep):
        style = "bold" if point.threshold == report.recommended_threshold else None
        sweep.add_row(
            f"{point.threshold:.3f}", _pct(point.escalation_rate), _pct(point.pass_at_1), _pct(point.pgr), style=style
        )
    console.print(sweep)
    if report.recommended_threshold is not None:
        console.print(
            f"For a target escalation rate of {_pct(report.target_rate)}: threshold "
            f"{report.recommended_threshold} escalates {_pct(report.recommended_rate)} and gives pass@1 "
            f"{_pct(report.recommended_pass_at_1)}" + (" (upper bound)" if bound else "") + ". Paste into the policy:"
        )
    console.print(report.policy_snippet, markup=False, highlight=False)
    if report.plot:
        console.print(f"plot: {report.plot}")
    console.print(f"machine: {report.machine} · wall time {report.wall_s:.1f} s")


if TYPE_CHECKING:
    from lsp_server.eval.commit_eval import CommitReport

_COMMIT_ROWS = {
    "before": "before: diff only, not checked",
    "model": "model's subject, facts in prompt",
    "after": "after: facts in prompt, checked",
    "facts": "facts alone (no model)",
}


def print_commit(report: "CommitReport", console: Console) -> None:
    kinds = ", ".join(f"{kind} {n}" for kind, n in report.kinds.items())
    table = Table(
        title=f"Commit subjects · tier {report.tier} · {report.model} · {report.cases} commits (seed {report.seed})"
    )
    for column in (
        "subject",
        "grounded",
        "names only diff",
        "names the change",
        "mentions target",
        "type fits",
        "refuted",
        "well-formed",
        "p50 ms",
    ):
        table.add_column(column, justify="left" if column == "subject" else "right")
    for s in report.summaries:
        table.add_row(
            _COMMIT_ROWS[s.variant],
            _pct(s.grounded),
            _pct(s.names_only_diff),
            _pct(s.names_change),
            _pct(s.mentions_target),
            _pct(s.type_fits),
            _pct(s.refuted),
            _pct(s.well_formed),
            _ms(s.latency_p50_ms),
        )
    console.print(table)
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(report.reasons.items(), key=lambda kv: -kv[1]))
    console.print(f"after: the model's own subject kept in {_pct(report.model_subject_kept)} of commits ({reasons})")
    console.print(
        "grounded = names only files and symbols in the diff, and at least one that changed; mentions "
        "target = names what the commit really changed"
    )
    console.print(f"commits: {kinds}")
    console.print(f"machine: {report.machine} · wall time {report.wall_s:.1f} s")


def print_lines(report: LineReport, console: Console) -> None:
    what = (
        "real lines of the standard library"
        if report.suite == "lines"
        else "cross-file call sites in " + ", ".join(report.packages)
    )
    table = Table(
        title=f"{report.suite}: {what} · {report.model} ({report.prompt_mode} prompt) · "
        f"{report.tasks} tasks (seed {report.seed}{', dev split' if report.split == 'dev' else ''})"
    )
    for column in (
        "variant",
        "exact",
        "edit sim",
        "exact (default)",
        "edit sim (default)",
        "shown",
        "right if shown",
        "empty",
        "p50 ms",
        "p95 ms",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for s in report.summaries:
        raw = s.variant == "raw"
        table.add_row(
            s.variant,
            _pct(s.exact_match),
            _num(s.edit_similarity),
            "-" if raw else _pct(s.exact_match_quiet),
            "-" if raw else _num(s.edit_similarity_quiet),
            "-" if raw else _pct(s.shown_rate),
            "-" if raw else _pct(s.accepted_if_correct),
            str(s.empty),
            _ms(s.latency_p50_ms),
            _ms(s.latency_p95_ms),
        )
    console.print(table)
    notes = {
        "pipeline": "the server's pipeline, default settings",
        "context": "the pipeline with repository context "
        "(the package indexed as the workspace, only the edited file open)",
        "no_context": "the same pipeline without repository context",
        "raw": "llama.cpp's first line on the plain prefix",
    }
    for s in report.summaries:
        console.print(f"{s.variant} = {notes[s.variant]}")
    gate = "off" if report.quiet_below is None else f"mean log-probability below {report.quiet_below:g}"
    console.print(
        f"exact / edit sim: every answer shown; (default): the quiet gate on ({gate}), a held-back answer "
        "counts as empty"
    )
    if report.gate:
        sweep = Table(title="quiet gate: shown rate against accepted-if-correct (main variant)")
        for column in ("threshold", "shown", "right if shown", "exact", "right ones kept"):
            sweep.add_column(column, justify="right")
        for point in _gate_rows(report.gate):
            style = (
                "bold"
                if report.quiet_below is not None
                and point.threshold is not None
                and abs(point.threshold - report.quiet_below) < 1e-9
                else None
            )
            sweep.add_row(
                "off" if point.threshold is None else f"{point.threshold:.3f}",
                _pct(point.shown_rate),
                _pct(point.accepted_if_correct),
                _pct(point.exact_match),
                _pct(point.correct_kept),
                style=style,
            )
        console.print(sweep)
    console.print(f"machine: {report.machine} · wall time {report.wall_s:.1f} s")


def _gate_rows(points: Sequence[GatePoint], steps: int = 10) -> list[GatePoint]:
    """About one row per 10 % of shown rate: the full sweep is in the JSON."""
    chosen: list[GatePoint] = []
    for step in range(steps, -1, -1):
        target = step / steps
        best = min(points, key=lambda p: abs(p.shown_rate - target))
        if best not in chosen:
            chosen.append(best)
    return chosen


def write_outcomes(path: Path, outcomes: Sequence[BaseModel]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for outcome in outcomes:
            out.write(outcome.model_dump_json() + "\n")


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
