"""Text shapes that let C-speed searches skip most of the text before any Python work."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from lsp_server.sensitivity.secret_rules import (
    MIN_TOKEN_RUN,
    TOKEN_CHARS,
)

# --- text shapes ----------------------------------------------------------------------------

# One byte per character (non-ASCII becomes "?"), so byte offsets are character offsets.
# TOKEN_SHAPE: token characters -> "T", the rest -> " ": long tokens are found with
# bytes.find(b"T" * 20), which skips through the text far faster than any regex.
# pii.digit_shape: digits -> "0", upper -> "A", lower -> "a": PII candidates ("0000 0000...",
# "AA00...") become literal-prefixed byte patterns.
TOKEN_SHAPE = bytes(ord("T") if chr(i) in TOKEN_CHARS else ord(" ") for i in range(256))
RUN_NEEDLE = b"T" * MIN_TOKEN_RUN


@dataclass(slots=True)
class Excerpt:
    """Pieces of the scanned text joined by NUL characters, with the way back to the text."""

    text: str
    starts: list[int]  # where each piece starts in `text`
    origins: list[int]  # where each piece starts in the scanned text

    def to_original(self, pos: int) -> int:
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.origins[i] + pos - self.starts[i]


def excerpt(source: str, spans: list[tuple[int, int]]) -> Excerpt:
    starts: list[int] = []
    offset = 0
    for start, end in spans:
        starts.append(offset)
        offset += end - start + 1
    # NUL keeps matches inside one piece: no rule pattern matches it (\s and \w do not).
    return Excerpt("\0".join(source[s:e] for s, e in spans), starts, [s for s, _ in spans])


def long_token_runs(ascii_bytes: bytes) -> list[tuple[int, int]]:
    """(start, end) of every maximal run of >= MIN_TOKEN_RUN token characters."""
    shape = ascii_bytes.translate(TOKEN_SHAPE)
    runs: list[tuple[int, int]] = []
    pos = 0
    while (start := shape.find(RUN_NEEDLE, pos)) >= 0:
        end = shape.find(b" ", start + MIN_TOKEN_RUN)
        end = len(shape) if end < 0 else end
        runs.append((start, end))
        pos = end
    return runs


def lines_around(text: str, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (merged) lines that hold the runs."""
    lines: list[tuple[int, int]] = []
    for start, end in runs:
        if lines and start < lines[-1][1]:
            continue
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        lines.append((line_start, len(text) if line_end < 0 else line_end))
    return lines
