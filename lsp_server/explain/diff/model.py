"""What a parsed diff is: files, their hunks, and what became of each file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["added", "deleted", "modified", "renamed", "copied", "mode_changed"]

# A line longer than this is cut (with a marker): one minified line must not blow the memory
# bound or a model's context. Real source lines are far shorter.
MAX_LINE_BYTES = 8192


class DiffError(Exception):
    """A diff could not be read; the message says what to do about it."""


@dataclass(frozen=True)
class Hunk:
    header: str  # the `@@ -a,b +c,d @@ section` line, without its newline
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    text: str  # the hunk's lines, each prefixed ' ', '+', '-' or '\\' and ending in '\n'
    added: int
    removed: int

    @property
    def section(self) -> str:
        """The function/section context git prints after the second `@@`."""
        _, _, rest = self.header.partition(" @@")
        return rest

    def lines(self) -> list[str]:
        return hunk_lines(self.text)


@dataclass(frozen=True)
class FileChange:
    old_path: str | None  # None for /dev/null (an added file)
    new_path: str | None  # None for /dev/null (a deleted file)
    status: Status
    old_mode: str | None = None
    new_mode: str | None = None
    similarity: int | None = None  # renames and copies
    binary: bool = False
    hunks: tuple[Hunk, ...] = ()  # always empty when summarized_only (their text is dropped)
    added: int = 0
    removed: int = 0
    summarized_only: bool = False  # lock, generated, vendored, binary, huge: named, not sent to a model
    summary_reason: str | None = None

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def hunk_lines(text: str) -> list[str]:
    """A hunk's lines as git wrote them, each with its '\\n'. Not a document's lines (for those,
    lsp_server.lsp.convert.split_lines): in a diff a CR, a form feed or U+2028 is content."""
    if not text:
        return []
    parts = text.split("\n")
    last = parts.pop()
    out = [p + "\n" for p in parts]
    if last:
        out.append(last)
    return out


def format_hunk_header(old_start: int, old_len: int, new_start: int, new_len: int, section: str) -> str:
    return f"@@ -{old_start},{old_len} +{new_start},{new_len} @@{section}"
