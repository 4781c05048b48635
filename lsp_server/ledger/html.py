"""`ninetyten report --html FILE`: one self-contained page with charts.

No script, no fonts, no images from anywhere: inline CSS and SVG only, and a Content
Security Policy that forbids loading anything, so the page can be mailed, attached to a
ticket or opened offline. Every number on it is marked with the group, key and field of the
JSON report it shows (`data-group`, `data-key`, `data-field`), written the way the terminal
report writes it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from lsp_server.ledger.charts import Bar, Row, Series, columns, hbars, share
from lsp_server.ledger.report import DIMENSIONS, GroupStats, Report
from lsp_server.ledger.terminal import ms, pct, period, rate, usd

PAID = Series("paid", "#c62828")
FRONTIER = Series("on the frontier alone", "#9e9e9e")
TIER_COLORS = {"local": "#2e7d32", "in_house": "#1565c0", "frontier": "#ef6c00"}
_TITLES = {"task": "task type", "tier": "tier", "model": "model", "repo": "repository", "week": "week (from Monday)"}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:64rem;padding:0 1rem;color:#1b1b1b;background:#fff}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.meta{color:#555}.headline{font-size:1.25rem;margin:1.2rem 0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;
min-width:8rem}.card b{display:block;font-size:1.4rem}.card span.name{color:#555;font-size:.85rem}
table{border-collapse:collapse;margin:.6rem 0 1.4rem;font-size:.85rem}th,td{padding:.25rem .6rem;
border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
tr.total td{font-weight:600;border-top:2px solid #999}.chart{width:100%;height:auto;max-width:720px}
.saved{color:#2e7d32}.scroll{overflow-x:auto}
@media (prefers-color-scheme: dark){body{background:#121212;color:#e0e0e0}.meta,.card span.name{color:#aaa}
.card,th,td{border-color:#333}svg text{fill:#e0e0e0}}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_FIELDS: list[tuple[str, str]] = [
    ("requests", "Requests"),
    ("attempts", "Attempts"),
    ("prompt_tokens", "Tokens in"),
    ("completion_tokens", "Tokens out"),
    ("cost_usd", "Paid"),
    ("frontier_cost_usd", "Frontier alone"),
    ("savings_usd", "Saved"),
    ("savings_pct", "Saved %"),
    ("escalation_rate", "Escalated"),
    ("failures", "Failures"),
    ("acceptance_rate", "Accepted"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
]


def formatted(field: str, value: float | int | None) -> str:
    """A figure as the page (and the terminal) writes it."""
    if field.endswith("_usd"):
        return usd(float(value or 0))
    if field == "savings_pct":
        return pct(value)
    if field.endswith("_rate"):
        return rate(value)
    if field.endswith("_ms"):
        return ms(value)
    return f"{int(value or 0):,}"


def _figure(group: str, key: str, field: str, value: float | int | None, tag: str = "span") -> str:
    return (
        f"<{tag} data-group='{escape(group, quote=True)}' data-key='{escape(key, quote=True)}' "
        f"data-field='{field}'>{escape(formatted(field, value))}</{tag}>"
    )


def _table(dimension: str, groups: list[GroupStats], totals: GroupStats) -> str:
    head = "".join(f"<th>{name}</th>" for _, name in _FIELDS)
    rows = []
    for stats, group, css in [*((g, f"by_{dimension}", "") for g in groups), (totals, "totals", " class='total'")]:
        cells = "".join(_figure(group, stats.key, field, getattr(stats, field), "td") for field, _ in _FIELDS)
        rows.append(f"<tr{css}><td>{escape(stats.key)}</td>{cells}</tr>")
    return (
        f"<div class='scroll'><table><tr><th>{escape(_TITLES[dimension].capitalize())}</th>{head}</tr>"
        f"{''.join(rows)}</table></div>"
    )


def _money_rows(groups: list[GroupStats]) -> list[Row]:
    return [
        Row(
            g.key,
            [Bar(g.cost_usd, usd(g.cost_usd)), Bar(g.frontier_cost_usd, usd(g.frontier_cost_usd))],
            f"saved {pct(g.savings_pct)}" if g.savings_pct is not None else "",
        )
        for g in groups
    ]


def _rate_rows(groups: list[GroupStats], field: str, of: str) -> list[Row]:
    return [
        Row(g.key, [Bar(getattr(g, field) or 0.0, rate(getattr(g, field)))], f"of {getattr(g, of):,}")
        for g in groups
        if getattr(g, of)
    ]


def _charts(report: Report) -> str:
    parts = [
        "<h2>Spend and savings by task type</h2>",
        hbars("Spend and savings by task type", [PAID, FRONTIER], _money_rows(report.by_task)),
        "<h2>Spend and savings by week</h2>",
        columns("Spend and savings by week", [PAID, FRONTIER], _money_rows(report.by_week)),
    ]
    total = report.totals.requests or 1
    tiers = [
        (
            g.key,
            g.requests / total,
            f"{100 * g.requests / total:.0f}% ({g.requests:,})",
            TIER_COLORS.get(g.key, "#757575"),
        )
        for g in report.by_tier
    ]
    parts += [
        "<h2>Requests served by each tier</h2>",
        share("Share of requests by tier", tiers),
        "<h2>Escalation</h2>",
        "<p>Rate: requests that were answered, checked and handed to a stronger tier. "
        f"Overall {_figure('totals', 'total', 'escalation_rate', report.totals.escalation_rate)}.</p>",
        hbars(
            "Escalation rate by task type",
            [Series("escalated requests", "#6a1b9a")],
            _rate_rows(report.by_task, "escalation_rate", "requests"),
        ),
    ]
    if report.escalation_reasons:
        reasons = [Row(r.reason, [Bar(r.attempts, f"{r.attempts:,}")]) for r in report.escalation_reasons]
        listed = "".join(
            f"<li>{escape(r.reason)}: {_figure('escalation_reasons', r.reason, 'attempts', r.attempts)} attempts</li>"
            for r in report.escalation_reasons
        )
        parts += [
            "<p>Why:</p>",
            hbars("Why requests escalated", [Series("escalated attempts", "#8e24aa")], reasons),
            f"<ul>{listed}</ul>",
        ]
    parts += [
        "<h2>Acceptance</h2><p>Accepted answers among those shown, by tier and by model.</p>",
        hbars(
            "Acceptance by tier",
            [Series("accepted", "#00838f")],
            _rate_rows(report.by_tier, "acceptance_rate", "shown"),
        ),
        hbars(
            "Acceptance by model",
            [Series("accepted", "#00838f")],
            _rate_rows(report.by_model, "acceptance_rate", "shown"),
        ),
    ]
    return "".join(parts)


def _headline(report: Report) -> str:
    t = report.totals
    saved = "" if t.savings_pct is None else f" (saved {_figure('totals', 'total', 'savings_pct', t.savings_pct)})"
    cards = "".join(
        f"<div class='card'><span class='name'>{name}</span><b>{_figure('totals', 'total', field, getattr(t, field))}"
        "</b></div>"
        for field, name in (
            ("requests", "Requests"),
            ("cost_usd", "Paid"),
            ("frontier_cost_usd", "Frontier alone"),
            ("savings_usd", "Saved"),
            ("escalation_rate", "Escalated"),
            ("acceptance_rate", "Accepted"),
        )
    )
    prices = "".join(
        f"<li>{escape(u.description)}: {_figure('counterfactual', u.code or '-', 'attempts', u.attempts)} attempts</li>"
        for u in report.counterfactual
    )
    return (
        f"<p class='headline'>This period cost {_figure('totals', 'total', 'cost_usd', t.cost_usd)}; on the "
        f"frontier alone it would have cost {_figure('totals', 'total', 'frontier_cost_usd', t.frontier_cost_usd)}"
        f"<span class='saved'>{saved}</span>.</p><div class='cards'>{cards}</div>"
        f"<h2>How “the frontier alone” is priced</h2><ul>{prices or '<li>no requests</li>'}</ul>"
    )


def render_html(report: Report, generated: datetime | None = None) -> str:
    generated = generated or datetime.now(timezone.utc)
    where = "the team ledger" if report.source == "team" else "this machine's ledger"
    body = [
        f"<h1>ninetyten: spend and savings</h1><p class='meta'>From {where}, {escape(period(report))}; "
        f"generated {generated:%Y-%m-%d %H:%M} UTC.</p>"
    ]
    if report.totals.attempts == 0:
        body.append("<p class='headline'>No requests recorded in this period.</p>")
    else:
        body += [_headline(report), _charts(report), "<h2>Details</h2>"]
        for dimension in DIMENSIONS:
            body += [f"<h3>By {_TITLES[dimension]}</h3>", _table(dimension, report.groups(dimension), report.totals)]
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>ninetyten report</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


__all__ = ["formatted", "render_html"]
