"""Redaction: each finding's span replaced by a placeholder naming its rule."""

from __future__ import annotations

from lsp_server.sensitivity.findings import SensitivityReport


def redact(text: str, report: SensitivityReport, placeholder: str = "[REDACTED:{rule}]") -> str:
    """`text` with every finding's span replaced by `placeholder` ({rule}, {family}, {kind})."""
    spans = sorted((f.start, f.end, f) for f in report.findings if f.kind != "path" and f.end > f.start)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(spans):
        start, end, first = spans[i]
        i += 1
        while i < len(spans) and spans[i][0] < end:  # merge overlapping spans
            end = max(end, spans[i][1])
            i += 1
        start = max(start, pos)
        out.append(text[pos:start])
        out.append(
            placeholder.replace("{rule}", first.rule).replace("{family}", first.family).replace("{kind}", first.kind)
        )
        pos = max(pos, end)
    out.append(text[pos:])
    return "".join(out)
