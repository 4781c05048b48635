"""Pure conversions between the protocol and the features: positions, windows, selections.

Positions: LSP positions <-> code-point columns, for the negotiated position encoding.

LSP lines end only at \\n, \\r\\n or \\r (str.splitlines also splits at form feeds and
other separators), and a character offset counts UTF-16 code units unless the
client and server agreed on UTF-8 or UTF-32.

Documents: the window of a huge document around the cursor, minified lines clipped around
it, and the text of a selection. No server needed: tests call these directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

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


# -- documents: windows, long lines, selections (code points, not client units) ------

Point = tuple[int, int]  # (line, code-point column)
WINDOW_STEP = 256


def window(lines: list[str], line: int, window_lines: int) -> tuple[list[str], int]:
    """The lines within `window_lines` of `line`, and the cursor's line in them. The window's
    start moves in steps of WINDOW_STEP lines, so the prompt (and the KV cache) stays put
    while the user types."""
    start = max(0, line - window_lines) // WINDOW_STEP * WINDOW_STEP
    return lines[start : line + window_lines + 1], line - start


def clip_long_lines(lines: list[str], line: int, column: int, limit: int) -> tuple[list[str], int]:
    """Minified files: keep `limit` characters of each line, the cursor's line around the cursor."""
    clipped = [text if len(text) <= limit else text[:limit] for text in lines]
    current = lines[line]
    if len(current) > limit:
        start = max(0, column - limit * 3 // 4) // 512 * 512  # in steps, so typing keeps the cache
        clipped[line] = current[start : start + limit]
        column -= start
    return clipped, column


def ordered_range(
    lines: list[str], start: tuple[int, int], end: tuple[int, int], encoding: Encoding
) -> tuple[Point, Point]:
    """A client range as clamped code-point points, start first."""
    first = clamp_position(lines, start[0], start[1], encoding)
    last = clamp_position(lines, end[0], end[1], encoding)
    return (first, last) if first <= last else (last, first)


def whole_document(lines: list[str]) -> tuple[Point, Point]:
    return (0, 0), (len(lines) - 1, len(lines[-1]))


def text_between(lines: list[str], start: Point, end: Point) -> str:
    if start[0] == end[0]:
        return lines[start[0]][start[1] : end[1]]
    return "\n".join([lines[start[0]][start[1] :], *lines[start[0] + 1 : end[0]], lines[end[0]][: end[1]]])


def offset(lines: list[str], point: Point) -> int:
    """The point's offset in "\\n".join(lines)."""
    return sum(len(line) + 1 for line in lines[: point[0]]) + point[1]


def replaced(lines: list[str], start: Point, end: Point, new_text: str) -> str:
    """The document's text with [start, end) replaced by `new_text`."""
    text = "\n".join(lines)
    return text[: offset(lines, start)] + new_text + text[offset(lines, end) :]


def client_point(lines: list[str], point: Point, encoding: Encoding) -> tuple[int, int]:
    """A code-point point as the client counts it."""
    return point[0], to_client_character(lines[point[0]], point[1], encoding)


def file_path(uri: str) -> Path | None:
    """The file a `file:` URI names; None for other schemes (untitled buffers, remote files)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))
