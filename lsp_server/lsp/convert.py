"""LSP positions <-> code-point columns, for the negotiated position encoding.

LSP lines end only at \\n, \\r\\n or \\r (str.splitlines also splits at form feeds and
other separators), and a character offset counts UTF-16 code units unless the
client and server agreed on UTF-8 or UTF-32.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["utf-8", "utf-16", "utf-32"]


def split_lines(text: str) -> list[str]:
    """The document's lines as LSP sees them, without their line endings."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def to_codepoint_column(line: str, character: int, encoding: Encoding) -> int:
    """Code-point column for a client offset; clamped to the line, rounded down inside a character."""
    if character <= 0:
        return 0
    if encoding == "utf-32" or line.isascii():  # isascii is O(1) on CPython's compact strings
        return min(character, len(line))
    # Every code point is at least one unit, so the answer is at most `character`; walk back
    # from there in C-speed steps rather than a Python loop over a possibly huge line.
    column = min(character, len(line))
    while column > 0 and _unit_length(line, column, encoding) > character:
        excess = _unit_length(line, column, encoding) - character
        # each code point is at most 2 (utf-16) / 4 (utf-8) units: step back at least 1
        column -= max(1, excess // (2 if encoding == "utf-16" else 4))
    return max(column, 0)


def _unit_length(line: str, column: int, encoding: Encoding) -> int:
    prefix = line[:column]
    if encoding == "utf-8":
        return len(prefix.encode("utf-8", "surrogatepass"))
    if encoding == "utf-16":
        return len(prefix.encode("utf-16-le", "surrogatepass")) // 2
    return column


def to_client_character(line: str, column: int, encoding: Encoding) -> int:
    """Client offset for a code-point column."""
    column = max(0, min(column, len(line)))
    if encoding == "utf-32" or line.isascii():
        return column
    return _unit_length(line, column, encoding)


def clamp_position(lines: list[str], line: int, character: int, encoding: Encoding) -> tuple[int, int]:
    """(line, code-point column) inside the document for any client position."""
    if not lines:
        return 0, 0
    if line < 0:
        return 0, 0
    if line >= len(lines):
        last = len(lines) - 1
        return last, len(lines[last])
    return line, to_codepoint_column(lines[line], character, encoding)


def normalize_encoding(value: object) -> Encoding:
    text = str(getattr(value, "value", value) or "utf-16").lower()
    if text in ("utf-8", "utf-16", "utf-32"):
        return text  # type: ignore[return-value]
    return "utf-16"
