"""The report in a terminal: rich tables that fit the width, and the sentence that matters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timezone
from decimal import ROUND_HALF_UP, Decimal

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from lsp_server.ledger.report import Dimension, GroupStats, Report
from lsp_server.ledger.units import NANO


def usd(value: float) -> str:
    """Dollars as people read them: cents from $1 up, four decimals below (completions cost
    fractions of a cent, and "$0.00" would hide them). The exact nano-dollar amount is
    rounded half-up (a float like 0.01775 is really 0.017749...)."""
    exact = Decimal(round(value * NANO)) / NANO
    places = Decimal("0.01") if abs(exact) >= 1 or exact == 0 else Decimal("0.0001")
    return f"${exact.quantize(places, rounding=ROUND_HALF_UP):,}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# (header, cell) for the full table and for the compact one used on narrow terminals.
_Column = tuple[str, Callable[[GroupStats], str]]
_FULL: list[_Column] = [
    ("Requests", lambda s: str(s.requests)),
    ("Attempts", lambda s: str(s.attempts)),
    ("Tokens in", lambda s: f"{s.prompt_tokens:,}"),
    ("Tokens out", lambda s: f"{s.completion_tokens:,}"),
    ("Cost", lambda s: usd(s.cost_usd)),
    ("Frontier cost", lambda s: usd(s.frontier_cost_usd)),
    ("Saved", lambda s: f"{usd(s.savings_usd)} ({pct(s.savings_pct)})"),
    ("Escalated", lambda s: rate(s.escalation_rate)),
    ("Failures", lambda s: str(s.failures)),
    ("Accepted", lambda s: rate(s.acceptance_rate)),
    ("p50 ms", lambda s: ms(s.latency_p50_ms)),
    ("p95 ms", lambda s: ms(s.latency_p95_ms)),
]
_COMPACT: list[_Column] = [
    ("Req", lambda s: str(s.requests)),
    ("Cost", lambda s: usd(s.cost_usd)),
    ("Frontier", lambda s: usd(s.frontier_cost_usd)),
    ("Saved", lambda s: pct(s.savings_pct)),
    ("Esc", lambda s: rate(s.escalation_rate)),
    ("Acc", lambda s: rate(s.acceptance_rate)),
    ("p50 ms", lambda s: ms(s.latency_p50_ms)),
]
_TITLES: dict[Dimension, tuple[str, str]] = {
    "task": ("By task type", "Task"),
    "tier": ("By tier", "Tier"),
    "model": ("By model", "Model"),
    "repo": ("By repository", "Repository"),
    "week": ("By week (from Monday, UTC)", "Week"),
}


def _table(
    title: str, label: str, groups: list[GroupStats], totals: GroupStats, columns: list[_Column], compact: bool
) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD)
    table.add_column(label, no_wrap=True)
    for header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for stats in groups:
        table.add_row(stats.key, *(cell(stats) for _, cell in columns))
    table.add_section()
    table.add_row(totals.key, *(cell(totals) for _, cell in columns), style="bold")
    return table


def _fitting_table(console: Console, title: str, label: str, groups: list[GroupStats], totals: GroupStats) -> Table:
    table = _table(title, label, groups, totals, _FULL, compact=False)
    # Measure unconstrained: rich clamps a table's measurement to the console width.
    if Measurement.get(console, console.options.update_width(10_000), table).maximum <= console.width:
        return table
    return _table(title, label, groups, totals, _COMPACT, compact=True)


def period(report: Report) -> str:
    if report.since is None:
        return "since the beginning"
    return f"since {report.since.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def render_report(report: Report, console: Console, by: Sequence[Dimension] = ("task", "tier")) -> None:
    totals = report.totals
    where = "team ledger" if report.source == "team" else "this machine's ledger"
    console.print(f"[bold]ninetyten report[/bold] ({where}, {period(report)})")
    if totals.attempts == 0:
        console.print("No requests recorded in this period.")
    else:
        for dimension in by:
            title, label = _TITLES[dimension]
            console.print(_fitting_table(console, title, label, report.groups(dimension), totals))
    saved = "" if totals.savings_pct is None else f" (saved {totals.savings_pct:.0f}%)"
    console.print(
        f"This period cost {usd(totals.cost_usd)}; on the frontier alone it would have cost "
        f"{usd(totals.frontier_cost_usd)}{saved}.",
        highlight=False,
    )
    for use in report.counterfactual:
        console.print(f"Frontier priced by {use.description} ({use.attempts:,} attempts).", highlight=False)


__all__ = ["ms", "pct", "period", "rate", "render_report", "usd"]
