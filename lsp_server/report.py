"""`ninetyten report`: spend and savings from the ledger, grouped by task type and by tier.

Definitions (the same for every group):
- requests: distinct request ids with at least one attempt in the group; attempts: rows.
- cost / frontier cost are summed in integer nano-dollars, so totals are exact sums of the rows.
- savings = frontier cost - cost; savings % = savings / frontier cost (None when that is 0).
- escalations: requests with an escalated attempt in the group; escalation rate = escalations / requests.
- failures: attempts whose outcome is failed / timeout / error (cancelled and blocked don't count).
- acceptance rate = accepted / shown, over attempts with feedback (accepted implies shown).
- latency p50 / p95 (nearest rank) are over requests: a request's latency in a group is the
  sum of its attempts' latencies there, which is what the user waited.
- Day and month boundaries are UTC, like the ledger's "today".
"""

from __future__ import annotations

import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from local_models.errors import ModelError

from .ledger import FAILURE_OUTCOMES, NANO, TIERS, AttemptSummary, Ledger, LedgerError, utc_midnight

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class GroupStats(BaseModel):
    key: str
    requests: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    frontier_cost_usd: float = 0.0
    savings_usd: float = 0.0
    savings_pct: float | None = None
    escalations: int = 0
    escalation_rate: float | None = None
    failures: int = 0
    shown: int = 0
    accepted: int = 0
    acceptance_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


class Report(BaseModel):
    since: datetime | None
    until: datetime
    totals: GroupStats
    by_task: list[GroupStats]
    by_tier: list[GroupStats]


def _percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))  # nearest rank: an observed value
    return sorted_values[rank - 1]


def _stats(key: str, rows: Iterable[AttemptSummary]) -> GroupStats:
    rows = list(rows)
    cost = sum(r.cost_nusd for r in rows)  # integers: exact
    frontier = sum(r.frontier_cost_nusd for r in rows)
    latency: dict[str, float] = defaultdict(float)
    escalated: set[str] = set()
    for r in rows:
        latency[r.request_id] += r.latency_ms
        if r.escalated:
            escalated.add(r.request_id)
    shown = sum(1 for r in rows if r.shown or r.accepted)
    accepted = sum(1 for r in rows if r.accepted)
    latencies = sorted(latency.values())
    requests = len(latency)
    return GroupStats(
        key=key,
        requests=requests,
        attempts=len(rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cached_tokens=sum(r.cached_tokens for r in rows),
        cost_usd=cost / NANO,
        frontier_cost_usd=frontier / NANO,
        savings_usd=(frontier - cost) / NANO,
        savings_pct=100 * (frontier - cost) / frontier if frontier else None,
        escalations=len(escalated),
        escalation_rate=len(escalated) / requests if requests else None,
        failures=sum(1 for r in rows if r.outcome in FAILURE_OUTCOMES),
        shown=shown,
        accepted=accepted,
        acceptance_rate=accepted / shown if shown else None,
        latency_p50_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
    )


def _grouped(rows: list[AttemptSummary], field: str, order: tuple[str, ...] = ()) -> list[GroupStats]:
    groups: dict[str, list[AttemptSummary]] = defaultdict(list)
    for r in rows:
        groups[getattr(r, field)].append(r)
    stats = [_stats(key, members) for key, members in groups.items()]
    # Known keys in their natural order (local -> frontier), then the busiest first.
    rank = {key: i for i, key in enumerate(order)}
    return sorted(stats, key=lambda s: (rank.get(s.key, len(rank)), -s.requests, s.key))


def build_report(ledger: Ledger, since: datetime | None, *, until: datetime | None = None) -> Report:
    """Aggregate the ledger's rows since `since` (all rows if None)."""
    rows = ledger.summaries(since)
    return Report(
        since=since,
        until=until or datetime.now(timezone.utc),
        totals=_stats("total", rows),
        by_task=_grouped(rows, "task"),
        by_tier=_grouped(rows, "tier", TIERS),
    )


def report_json(report: Report) -> str:
    return report.model_dump_json(indent=2)


# --- rendering --------------------------------------------------------------------------------


def _usd(value: float) -> str:
    # Round the exact nano-dollar amount half-up (a float like 0.01775 is really 0.017749...).
    # Completions cost fractions of a cent, so small amounts get four decimals, not "$0.00".
    exact = Decimal(round(value * NANO)) / NANO
    places = Decimal("0.01") if abs(exact) >= 1 or exact == 0 else Decimal("0.0001")
    return f"${exact.quantize(places, rounding=ROUND_HALF_UP):,}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# (header, cell) for the full table and for the compact one used on narrow terminals.
_Column = tuple[str, Callable[[GroupStats], str]]
_FULL: list[_Column] = [
    ("Requests", lambda s: str(s.requests)),
    ("Attempts", lambda s: str(s.attempts)),
    ("Tokens in", lambda s: f"{s.prompt_tokens:,}"),
    ("Tokens out", lambda s: f"{s.completion_tokens:,}"),
    ("Cost", lambda s: _usd(s.cost_usd)),
    ("Frontier cost", lambda s: _usd(s.frontier_cost_usd)),
    ("Saved", lambda s: f"{_usd(s.savings_usd)} ({_pct(s.savings_pct)})"),
    ("Escalated", lambda s: _rate(s.escalation_rate)),
    ("Failures", lambda s: str(s.failures)),
    ("Accepted", lambda s: _rate(s.acceptance_rate)),
    ("p50 ms", lambda s: _ms(s.latency_p50_ms)),
    ("p95 ms", lambda s: _ms(s.latency_p95_ms)),
]
_COMPACT: list[_Column] = [
    ("Req", lambda s: str(s.requests)),
    ("Cost", lambda s: _usd(s.cost_usd)),
    ("Frontier", lambda s: _usd(s.frontier_cost_usd)),
    ("Saved", lambda s: _pct(s.savings_pct)),
    ("Esc", lambda s: _rate(s.escalation_rate)),
    ("Acc", lambda s: _rate(s.acceptance_rate)),
    ("p50 ms", lambda s: _ms(s.latency_p50_ms)),
]


def _table(title: str, label: str, groups: list[GroupStats], totals: GroupStats, columns: list[_Column],
           compact: bool) -> Table:
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


def _period(report: Report) -> str:
    if report.since is None:
        return "since the beginning"
    return f"since {report.since.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def render_report(report: Report, console: Console) -> None:
    totals = report.totals
    console.print(f"[bold]ninetyten report[/bold] ({_period(report)})")
    if totals.attempts == 0:
        console.print("No requests recorded in this period.")
    else:
        console.print(_fitting_table(console, "By task type", "Task", report.by_task, totals))
        console.print(_fitting_table(console, "By tier", "Tier", report.by_tier, totals))
    saved = "" if totals.savings_pct is None else f" (saved {totals.savings_pct:.0f}%)"
    console.print(
        f"This period cost {_usd(totals.cost_usd)}; on the frontier alone it would have cost "
        f"{_usd(totals.frontier_cost_usd)}{saved}.",
        highlight=False,
    )


# --- the command ------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def start_of_month(now: datetime | None = None) -> datetime:
    return utc_midnight(now).replace(day=1)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: an ISO date or datetime (naive = UTC), `Nh` / `Nd` / `Nw`, `today`, `month`, or `all`.

    None means the start of the current (UTC) month; `all` returns None (no lower bound).
    Raises ValueError with a message fit for the user.
    """
    now = now or datetime.now(timezone.utc)
    if text is None:
        return start_of_month(now)
    value = text.strip().lower()
    if value == "all":
        return None
    if value == "month":
        return start_of_month(now)
    if value == "today":
        return utc_midnight(now)
    match = _RELATIVE.match(value)
    if match:
        amount = int(match.group(1))
        if amount < 1:
            raise ValueError(f"--since {text!r}: the amount must be at least 1")
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: amount})
        except OverflowError:
            raise ValueError(f"--since {text!r} reaches back too far; try `all`") from None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not understood; use a date like 2026-11-01, a datetime like "
            "2026-11-01T09:30, a span like 24h / 7d / 2w, or today / month / all"
        ) from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def run_report(since: str | None, as_json: bool, ledger_path: Path | None = None, *,
               console: Console | None = None) -> int:
    """The `ninetyten report [--since DATE] [--json]` command; returns the exit code."""
    try:
        start = parse_since(since)
    except ValueError as exc:
        print(f"ninetyten report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        ledger = Ledger(ledger_path)
    except ModelError as exc:  # the data directory can't be created
        print(f"ninetyten report: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        report = build_report(ledger, start)
    except LedgerError as exc:
        print(f"ninetyten report: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        ledger.close()
    if as_json:
        sys.stdout.write(report_json(report) + "\n")
    else:
        render_report(report, console or Console())
    return EXIT_OK


__all__ = ["GroupStats", "Report", "build_report", "parse_since", "render_report", "report_json", "run_report"]
