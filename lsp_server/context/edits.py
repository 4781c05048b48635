"""Recently edited ranges: where the user has been changing code, as lines, not whole files.

The editor's `didChange` events say which lines changed. `RecentEdits` keeps, per document,
the line ranges touched lately (shifted as later edits insert or delete lines above them, and
merged when they come close), so that a completion in one file can see what the user just
wrote in another (Continue and Tabby offer "recently edited" context the same way).

The order is stable: a range keeps the place it got when it was first edited, and a new range
goes to the end; the oldest are dropped first. While the user types in one file, the ranges of
the other files do not move, so the prompt's context does not change and llama.cpp keeps
re-using its KV cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

# Ranges this many lines apart (or closer) are one range.
MERGE_GAP = 3
# Lines shown around an edited range, above and below.
MARGIN = 2
MAX_RANGE_LINES = 24
MAX_LINE_CHARS = 300


@dataclass
class EditedRange:
    uri: str
    path: str
    start: int  # 0-based, first edited line
    end: int  # 0-based, last edited line (inclusive)
    order: int  # when it was first edited: the placement key


@dataclass(frozen=True)
class EditSnippet:
    uri: str
    path: str
    start: int
    end: int
    text: str


class RecentEdits:
    """Line ranges edited lately, per document; the newest `max_ranges` are kept."""

    def __init__(self, max_ranges: int = 8) -> None:
        self.max_ranges = max_ranges
        self._ranges: list[EditedRange] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._ranges)

    def ranges(self) -> list[EditedRange]:
        return sorted(self._ranges, key=lambda r: r.order)

    def record(self, uri: str, path: str, start_line: int, end_line: int, new_text: str) -> None:
        """An incremental change: lines `start_line`..`end_line` (the range replaced, inclusive)
        now hold `new_text`."""
        if start_line < 0 or end_line < start_line:
            return
        added = new_text.count("\n")
        removed = end_line - start_line
        shift = added - removed
        touched_end = start_line + added
        merged: EditedRange | None = None
        for edited in [r for r in self._ranges if r.uri == uri]:
            if edited.start > end_line:
                edited.start += shift
                edited.end += shift
            elif edited.end >= start_line:
                # The change overlaps the range: it now ends where the new text ends, at least.
                edited.end = max(edited.end + shift, touched_end)
            if edited.start <= touched_end + MERGE_GAP and edited.end >= start_line - MERGE_GAP:
                if merged is None:
                    edited.start = min(edited.start, start_line)
                    edited.end = max(edited.end, touched_end)
                    merged = edited
                else:  # the change joined two ranges: the older one absorbs the newer
                    keep, drop = (merged, edited) if merged.order < edited.order else (edited, merged)
                    keep.start, keep.end = min(keep.start, drop.start), max(keep.end, drop.end)
                    self._ranges.remove(drop)
                    merged = keep
        if merged is None:
            self._ranges.append(EditedRange(uri, path, start_line, touched_end, next(self._order)))
        while len(self._ranges) > self.max_ranges:
            self._ranges.remove(min(self._ranges, key=lambda r: r.order))

    def forget(self, uri: str) -> None:
        self._ranges = [r for r in self._ranges if r.uri != uri]

    def snippets(self, exclude_uri: str, text_of: Callable[[str], str | None]) -> list[EditSnippet]:
        """The edited ranges of other documents with a little around them, oldest first.

        `text_of(uri)` gives a document's current text (None: not open any more)."""
        out: list[EditSnippet] = []
        texts: dict[str, list[str] | None] = {}
        for edited in self.ranges():
            if edited.uri == exclude_uri:
                continue
            if edited.uri not in texts:
                text = text_of(edited.uri)
                texts[edited.uri] = text.split("\n") if text is not None else None
            lines = texts[edited.uri]
            if not lines:
                continue
            start = max(0, edited.start - MARGIN)
            end = min(len(lines) - 1, edited.end + MARGIN, start + MAX_RANGE_LINES - 1)
            body = [line.rstrip("\r")[:MAX_LINE_CHARS] for line in lines[start : end + 1]]
            if not any(line.strip() for line in body):
                continue
            out.append(EditSnippet(edited.uri, edited.path, start, end, "\n".join(body).rstrip()))
        return out
