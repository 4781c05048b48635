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


def _units(ch: str, encoding: Encoding) -> int:
    code = ord(ch)
    if encoding == "utf-16":
        return 2 if code > 0xFFFF else 1
    if encoding == "utf-8":
        if code < 0x80:
            return 1
        if code < 0x800:
            return 2
        return 3 if code < 0x10000 else 4
    return 1


def to_codepoint_column(line: str, character: int, encoding: Encoding) -> int:
    """Code-point column for a client offset; clamped to the line, rounded down inside a character."""
    if character <= 0:
        return 0
    if encoding == "utf-32":
        return min(character, len(line))
    units = 0
    for index, ch in enumerate(line):
        units += _units(ch, encoding)
        if units > character:
            return index
    return len(line)


def to_client_character(line: str, column: int, encoding: Encoding) -> int:
    """Client offset for a code-point column."""
    column = max(0, min(column, len(line)))
    if encoding == "utf-32":
        return column
    return sum(_units(ch, encoding) for ch in line[:column])


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
