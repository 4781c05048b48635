"""The cost-quality curve of `ninetyten eval escalation` as a PNG."""

from __future__ import annotations

from pathlib import Path

from lsp_server.eval.results import EscalationReport


def plot_escalation(report: EscalationReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display: works on servers and in CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    try:
        for name, points in report.curves.items():
            oracle = name == "oracle"
            axes.plot(
                [p.rate * 100 for p in points],
                [p.quality * 100 for p in points],
                label=name,
                linestyle=":" if oracle else "-",
                color="black" if oracle else None,
            )
        axes.plot(
            [0, 100],
            [report.local_pass_at_1 * 100, report.strong_pass_at_1 * 100],
            linestyle="--",
            color="grey",
            label="random (APGR 0.5)",
        )
        if report.recommended_rate is not None and report.recommended_pass_at_1 is not None:
            axes.scatter(
                [report.recommended_rate * 100],
                [report.recommended_pass_at_1 * 100],
                color="red",
                zorder=5,
                label=f"threshold {report.recommended_threshold}",
            )
        axes.set_xlabel("escalated to the strong tier (% of completions)")
        strong = report.strong_tier
        if report.strong_source == "assumed_upper_bound":
            strong = "strong tier ASSUMED to pass every task (upper bound)"
        axes.set_ylabel("pass@1 (%)")
        axes.set_title(f"Escalation: {report.model}, {report.tasks} HumanEval infilling tasks\n{strong}", fontsize=9)
        axes.set_xlim(0, 100)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="lower right")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path
