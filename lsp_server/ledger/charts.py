"""Inline SVG charts for the HTML report: drawn here, so the page needs no script or network.

Each chart is a string of SVG with a `<title>` on every mark (the browser shows it on
hover) and its numbers written next to the marks, so it reads without hovering too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family='system-ui, sans-serif' font-size='12'"


@dataclass(frozen=True)
class Series:
    name: str
    color: str


@dataclass(frozen=True)
class Bar:
    value: float
    label: str  # the number as the report writes it


@dataclass(frozen=True)
class Row:
    label: str
    bars: Sequence[Bar]  # one per series
    note: str = ""  # written after the bars ("saved 83%")


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    parts = []
    for s in series:
        parts.append(
            f"<rect x='{x:.1f}' y='{y - 9:.1f}' width='10' height='10' fill='{s.color}'/>"
            f"<text x='{x + 14:.1f}' y='{y:.1f}' {FONT}>{escape(s.name)}</text>"
        )
        x += 24 + 7 * len(s.name)
    return "".join(parts)


def hbars(title: str, series: Sequence[Series], rows: Sequence[Row], *, width: int = 720) -> str:
    """Horizontal grouped bars: one group per row, one bar per series, scaled to the largest."""
    label_w, note_w, bar_h, gap = 150, 190, 14, 10
    plot_w = width - label_w - note_w
    top = 34
    group_h = bar_h * len(series) + gap
    height = top + group_h * max(len(rows), 1) + 8
    biggest = max((bar.value for row in rows for bar in row.bars), default=0.0) or 1.0
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='{escape(title, quote=True)}' class='chart'>",
        _legend(series, label_w, 16),
    ]
    for i, row in enumerate(rows):
        y = top + i * group_h
        out.append(
            f"<text x='{label_w - 8}' y='{y + bar_h * len(series) / 2 + 4:.1f}' text-anchor='end' {FONT}>"
            f"{escape(row.label)}</text>"
        )
        for j, (bar, s) in enumerate(zip(row.bars, series)):
            w = max(plot_w * bar.value / biggest, 1.0 if bar.value > 0 else 0.0)
            by = y + j * bar_h
            out.append(
                f"<rect x='{label_w}' y='{by}' width='{w:.1f}' height='{bar_h - 2}' fill='{s.color}'>"
                f"<title>{escape(f'{row.label}, {s.name}: {bar.label}')}</title></rect>"
                f"<text x='{label_w + w + 4:.1f}' y='{by + bar_h - 4}' {FONT}>{escape(bar.label)}</text>"
            )
        if row.note:
            out.append(
                f"<text x='{width - note_w + 70}' y='{y + bar_h * len(series) / 2 + 4:.1f}' {FONT} "
                f"font-weight='600'>{escape(row.note)}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def columns(title: str, series: Sequence[Series], rows: Sequence[Row], *, width: int = 720, height: int = 260) -> str:
    """Vertical grouped columns over time (weeks): one group per row, labels under the axis."""
    left, bottom, top = 60, 46, 30
    plot_h = height - top - bottom
    n = max(len(rows), 1)
    group_w = (width - left - 10) / n
    bar_w = min(28.0, group_w * 0.8 / max(len(series), 1))
    biggest = max((bar.value for row in rows for bar in row.bars), default=0.0) or 1.0
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='{escape(title, quote=True)}' class='chart'>",
        _legend(series, left, 16),
        f"<line x1='{left}' y1='{top + plot_h}' x2='{width - 10}' y2='{top + plot_h}' stroke='#999'/>",
    ]
    for i, row in enumerate(rows):
        x0 = left + i * group_w + (group_w - bar_w * len(series)) / 2
        for j, (bar, s) in enumerate(zip(row.bars, series)):
            h = plot_h * bar.value / biggest
            x = x0 + j * bar_w
            out.append(
                f"<rect x='{x:.1f}' y='{top + plot_h - h:.1f}' width='{bar_w - 2:.1f}' height='{h:.1f}' "
                f"fill='{s.color}'><title>{escape(f'{row.label}, {s.name}: {bar.label}')}</title></rect>"
            )
        center = left + (i + 0.5) * group_w
        out.append(
            f"<text x='{center:.1f}' y='{top + plot_h + 16}' text-anchor='middle' {FONT}>{escape(row.label)}</text>"
        )
        if row.note:
            out.append(
                f"<text x='{center:.1f}' y='{top + plot_h + 32}' text-anchor='middle' {FONT} "
                f"font-weight='600'>{escape(row.note)}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def share(title: str, parts: Sequence[tuple[str, float, str, str]], *, width: int = 720) -> str:
    """One 100 % bar split into (name, share 0..1, label, color) parts, with a legend."""
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} 70' role='img' "
        f"aria-label='{escape(title, quote=True)}' class='chart'>"
    ]
    x = 0.0
    for name, fraction, label, color in parts:
        w = (width - 2) * fraction
        out.append(
            f"<rect x='{x + 1:.1f}' y='8' width='{w:.1f}' height='26' fill='{color}'>"
            f"<title>{escape(f'{name}: {label}')}</title></rect>"
        )
        x += w
    legend_x = 1.0
    for name, _fraction, label, color in parts:
        text = f"{name} {label}"
        out.append(
            f"<rect x='{legend_x:.1f}' y='46' width='10' height='10' fill='{color}'/>"
            f"<text x='{legend_x + 14:.1f}' y='55' {FONT}>{escape(text)}</text>"
        )
        legend_x += 28 + 7 * len(text)
    out.append("</svg>")
    return "".join(out)


__all__ = ["Bar", "Row", "Series", "columns", "hbars", "share"]
