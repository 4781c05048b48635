"""Parse unified diffs (git's format and plain `diff -u`) into `FileChange` records.

Our own parser rather than `unidiff`: we must parse file by file from a stream with bounded
memory, drop the text of files we only summarize as soon as we know, and accept everything
git really prints (quoted paths, binary patches, combined merge diffs, CRLF, bytes that are
not UTF-8, `diff.suppressBlankEmpty`) without raising. `unidiff` reads a whole patch set into
memory and rejects several of these.

Garbage: input with text but no recognisable file header raises `DiffError`; empty or
whitespace-only input is an empty diff (no files). Text before the first file (an e-mail
patch's headers and message) and after the last hunk (a signature) is ignored.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Literal, TextIO, cast

from lsp_server.explain.diff.model import MAX_LINE_BYTES, DiffError, FileChange, Hunk, Status, format_hunk_header
from lsp_server.explain.diff.reader import (
    _PREFIX,
    DiffLines,
    file_line_name,
    header_name,
    plain_prefixes,
    read_lines,
    split_git_names,
    strip_prefix,
    unquote,
)
from lsp_server.explain.diff.summary_rules import DEFAULT_RULES, SummaryRules

# --------------------------------------------------------------------------- what is summarized

# --------------------------------------------------------------------------- reading lines
# --------------------------------------------------------------------------- the parser

# At most 18 digits: no file has more lines, and int() refuses over 4300 digits (ValueError).
_HUNK_RE = re.compile(rb"@@ -(\d{1,18})(?:,(\d{1,18}))? \+(\d{1,18})(?:,(\d{1,18}))? @@(.*)", re.DOTALL)
_MODE_RE = re.compile(rb"[0-7]{6}")


@dataclass
class _Options:
    errors: str
    rules: SummaryRules


@dataclass
class _Builder:
    """Everything known about one file while its lines stream past."""

    kind: Literal["git", "combined", "plain"]
    opts: _Options
    old: bytes | None = None
    new: bytes | None = None
    old_prefix: bytes = b""
    new_prefix: bytes = b""
    old_mode: str | None = None
    new_mode: str | None = None
    new_file: bool = False
    deleted: bool = False
    rename: bool = False
    copy: bool = False
    similarity: int | None = None
    binary: bool = False
    has_file_lines: bool = False
    hunk_count: int = 0
    hunks: list[Hunk] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    body_lines: int = 0
    keep_text: bool | None = None  # decided at the first hunk, when the path is final
    late_reason: str | None = None  # "generated" (by content) or "too large"

    def path(self) -> str:
        raw = self.new if self.new is not None and not self.deleted else self.old
        return self.decode(raw) if raw is not None else ""

    def decode(self, raw: bytes) -> str:
        return raw.decode("utf-8", self.opts.errors)

    def set_file_lines(self, old: bytes | None, new: bytes | None) -> None:
        self.has_file_lines = True
        if self.kind != "git":
            self.old_prefix, self.new_prefix = plain_prefixes(old, new)
        # An explicit `rename from/to` is more reliable than prefix-stripped ---/+++ names.
        if not (self.rename or self.copy):
            self.old, self.new = strip_prefix(old, self.old_prefix), strip_prefix(new, self.new_prefix)
        if old is None:
            self.new_file = True
        if new is None:
            self.deleted = True

    def submodule(self) -> bool:
        return "160000" in (self.old_mode, self.new_mode)

    def header_line(self, head: bytes, src: DiffLines) -> bool:
        """An extended header line (`old mode`, `rename from`, `index`...); False if it is not one."""
        if head.startswith(b"old mode "):
            self.old_mode = head[9:].decode("ascii", "replace")
        elif head.startswith(b"new mode "):
            self.new_mode = head[9:].decode("ascii", "replace")
        elif head.startswith(b"deleted file mode "):
            self.deleted = True
            self.old_mode = _first_mode(head[18:])
        elif head.startswith(b"new file mode "):
            self.new_file = True
            self.new_mode = _first_mode(head[14:])
        elif head.startswith((b"rename from ", b"rename old ")):  # git apply still reads the old spelling
            self.rename, self.old = True, header_name(head.split(b" ", 2)[2])
        elif head.startswith((b"rename to ", b"rename new ")):
            self.rename, self.new = True, header_name(head.split(b" ", 2)[2])
        elif head.startswith(b"copy from "):
            self.copy, self.old = True, header_name(head[10:])
        elif head.startswith(b"copy to "):
            self.copy, self.new = True, header_name(head[8:])
        elif head.startswith(b"similarity index "):
            digits = head[17:].rstrip(b"%")
            self.similarity = int(digits) if digits.isdigit() and len(digits) <= 3 else None  # a percentage
        elif head.startswith(b"dissimilarity index "):
            pass
        elif head.startswith(b"index "):
            modes = _MODE_RE.findall(head[6:].partition(b" ")[2])
            if modes and self.old_mode is None and self.new_mode is None:
                self.old_mode = self.new_mode = modes[-1].decode()
        elif head.startswith(b"mode ") and self.kind == "combined":
            modes = _MODE_RE.findall(head)
            if modes:
                self.old_mode, self.new_mode = modes[0].decode(), modes[-1].decode()
        elif head.startswith((b"Binary files ", b"Files ")) and head.endswith(b" differ"):
            self.binary = True
            if head.startswith(b"Binary files /dev/null "):
                self.new_file = True
            elif head.endswith(b" and /dev/null differ"):
                self.deleted = True
        elif head == b"GIT binary patch":
            # The base85 payload is never needed: skip to the next file without keeping it.
            self.binary = True
            while (line := src.get()) is not None:
                if line.startswith(b"diff "):
                    src.push(line)
                    break
        else:
            return False
        return True

    def start_hunk(self) -> bool:
        """Whether to keep this file's hunk text; decided once, when the path is final."""
        if self.keep_text is None:
            self.keep_text = not (
                self.kind == "combined" or self.binary or self.submodule() or self.opts.rules.classify_path(self.path())
            )
        return self.keep_text

    def end_hunk(self, hunk: Hunk | None, added: int, removed: int, body: int) -> None:
        self.hunk_count += 1
        self.added += added
        self.removed += removed
        self.body_lines += body
        limit = self.opts.rules.max_changed_lines
        # Context lines count too (at 4x) so that a diff with huge context stays bounded.
        if limit is not None and (self.added + self.removed > limit or self.body_lines > 4 * limit):
            self.late_reason, self.keep_text = "too large", False
            self.hunks.clear()
        elif hunk is not None and self.keep_text:
            self.hunks.append(hunk)

    def finish(self) -> FileChange:
        old = None if self.new_file else self.old
        new = None if self.deleted else self.new
        if old is None and new is None:  # a header so broken it names nothing
            old = new = self.old or self.new or b""
        status: Status
        if old is None:
            status = "added"
        elif new is None:
            status = "deleted"
        elif self.rename:
            status = "renamed"
        elif self.copy:
            status = "copied"
        elif (
            self.old_mode != self.new_mode
            and self.old_mode
            and self.new_mode
            and not self.binary
            and self.hunk_count == 0
        ):
            status = "mode_changed"
        else:
            status = "modified"
        path = self.path()
        reason = (
            "binary"
            if self.binary
            else "merge diff"
            if self.kind == "combined"
            else "submodule"
            if self.submodule()
            else self.opts.rules.classify_path(path) or self.late_reason
        )
        return FileChange(
            old_path=None if old is None else self.decode(old),
            new_path=None if new is None else self.decode(new),
            status=status,
            old_mode=None if status == "added" else self.old_mode,
            new_mode=None if status == "deleted" else self.new_mode,
            similarity=self.similarity if status in ("renamed", "copied") else None,
            binary=self.binary,
            hunks=() if reason else tuple(self.hunks),
            added=self.added,
            removed=self.removed,
            summarized_only=reason is not None,
            summary_reason=reason,
        )


def _first_mode(text: bytes) -> str | None:
    m = _MODE_RE.search(text)
    return m.group().decode() if m else None


def _read_hunk(cur: _Builder, head: bytes, m: re.Match[bytes], src: DiffLines) -> None:
    """Consume one hunk's body. Line counts from the header decide where it ends, so a removed
    line that reads `-- x` or a trailing e-mail signature is never mistaken for a header."""
    old_start, new_start = int(m[1]), int(m[3])
    old_len = 1 if m[2] is None else int(m[2])
    new_len = 1 if m[4] is None else int(m[4])
    errors = cur.opts.errors
    keep = cur.start_hunk()
    marker = cur.opts.rules.marker_re if keep and cur.hunk_count == 0 else None
    marker_lines = cur.opts.rules.marker_lines
    generated = False
    old_left, new_left = old_len, new_len
    new_no = new_start if new_len else new_start + 1  # new-side number of the next line
    lines: list[str] = []
    added = removed = body = 0
    while old_left > 0 or new_left > 0:
        raw = src.get()
        if raw is None:
            break
        c = raw[:1]
        if c in (b"\n", b"\r", b"") and not raw.strip(b"\r\n"):
            raw, c = b" " + raw, b" "  # an empty context line (diff.suppressBlankEmpty)
        if c == b" " and old_left > 0 and new_left > 0:
            old_left -= 1
            new_left -= 1
        elif c == b"-" and old_left > 0:
            old_left -= 1
            removed += 1
        elif c == b"+" and new_left > 0:
            new_left -= 1
            added += 1
        elif c == b"\\":
            pass
        else:  # not a body line, or more lines than the header promised: the hunk ends here
            src.push(raw)
            break
        body += 1
        if keep:
            line = raw.decode("utf-8", errors)
            lines.append(line if line.endswith("\n") else line + "\n")
            if marker is not None and c != b"-" and new_no <= marker_lines:
                generated = generated or bool(marker.search(line))
        if c != b"-" and c != b"\\":
            new_no += 1
    if (nxt := src.peek()) is not None and nxt.startswith(b"\\"):  # "\ No newline at end of file"
        src.get()
        body += 1
        if keep:
            line = nxt.decode("utf-8", errors)
            lines.append(line if line.endswith("\n") else line + "\n")
    hunk = None
    if keep:
        section = m[5].rstrip(b"\r\n").decode("utf-8", errors)
        header = head.decode("utf-8", errors)
        if old_left or new_left:  # truncated input: make the header match what is there
            old_len, new_len = old_len - old_left, new_len - new_left
            header = format_hunk_header(old_start, old_len, new_start, new_len, section)
        hunk = Hunk(header, old_start, old_len, new_start, new_len, "".join(lines), added, removed)
    if generated:
        cur.late_reason, cur.keep_text = "generated", False
    cur.end_hunk(hunk, added, removed, body)


def _read_combined_hunk(cur: _Builder, head: bytes, src: DiffLines) -> None:
    """A merge diff hunk (`@@@`): counted, never kept (merge diffs are summarized)."""
    cols = len(head) - len(head.lstrip(b"@")) - 1
    added = removed = body = 0
    while (raw := src.get()) is not None:
        prefix = raw[:cols]
        if raw.startswith(b"\\") or not raw.strip(b"\r\n"):
            body += 1
            continue
        if len(prefix) < cols or prefix.strip(b" +-"):
            src.push(raw)
            break
        body += 1
        added += b"+" in prefix
        removed += b"-" in prefix
    cur.start_hunk()
    cur.end_hunk(None, added, removed, body)


def _parse(src: DiffLines, opts: _Options) -> Iterator[FileChange]:
    cur: _Builder | None = None
    found = stray = False
    for raw in src:
        head = raw.rstrip(b"\r\n")
        if head.startswith(b"diff --git "):
            if cur is not None:
                yield cur.finish()
            a, b = split_git_names(head[11:])
            cur = _Builder("git", opts)
            if _PREFIX.match(a) and _PREFIX.match(b):
                cur.old_prefix, cur.new_prefix = a[:2], b[:2]
            cur.old, cur.new = strip_prefix(a, cur.old_prefix), strip_prefix(b, cur.new_prefix)
            found = True
        elif head.startswith((b"diff --cc ", b"diff --combined ")):
            if cur is not None:
                yield cur.finish()
            rest = head.split(b" ", 2)[2]
            name = unquote(rest)[0] if rest.startswith(b'"') else rest
            cur = _Builder("combined", opts, old=name, new=name)
            found = True
        elif head.startswith(b"@@"):
            if cur is None:
                stray = True
            elif head.startswith(b"@@@"):
                if cur.kind == "combined":
                    _read_combined_hunk(cur, head, src)
            elif m := _HUNK_RE.match(head):
                _read_hunk(cur, head, m, src)
        elif head.startswith(b"--- ") and (nxt := src.peek()) is not None and nxt.startswith(b"+++ "):
            src.get()
            old, new = file_line_name(head[4:]), file_line_name(nxt[4:])
            if cur is None or cur.kind == "plain" or cur.has_file_lines or cur.hunk_count:
                if cur is not None:
                    yield cur.finish()
                cur = _Builder("plain", opts)
                found = True
            cur.set_file_lines(old, new)
        elif cur is not None and cur.kind != "plain" and cur.hunk_count == 0 and cur.header_line(head, src):
            pass
        elif head.startswith(b"Binary files ") and head.endswith(b" differ"):
            # plain `diff -r` output for a binary pair: a file of its own
            if cur is not None:
                yield cur.finish()
            cur = _Builder("plain", opts)
            names = head[13:-7]
            old, sep, new = names.rpartition(b" and ")
            cur.set_file_lines(file_line_name(old if sep else names), file_line_name(new if sep else names))
            cur.binary = found = True
        elif head.strip():
            stray = True
    if cur is not None:
        yield cur.finish()
    if not found and stray:
        raise DiffError(
            "the input is not a unified diff (no 'diff --git' or '---'/'+++' file header found); "
            "pass the output of `git diff` or `diff -u`"
        )


def iter_parse_diff(
    stream: IO[bytes] | TextIO,
    *,
    encoding_errors: str = "replace",
    rules: SummaryRules = DEFAULT_RULES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[FileChange]:
    """Parse a diff file by file from a binary stream; memory holds one file at a time.

    Bytes that are not UTF-8 are decoded with `encoding_errors` (default: replaced with U+FFFD).
    A text stream (sys.stdin) is read through its binary buffer."""
    codecs.lookup_error(encoding_errors)  # a bad handler name fails here, not mid-stream
    binary = cast(BinaryIO, getattr(stream, "buffer", stream))
    return _parse(DiffLines(read_lines(binary, max_line_bytes)), _Options(encoding_errors, rules))


def parse_diff(
    data: bytes,
    *,
    encoding_errors: str = "replace",
    rules: SummaryRules = DEFAULT_RULES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> list[FileChange]:
    """Parse a whole diff held in memory. See `iter_parse_diff`."""
    return list(
        iter_parse_diff(io.BytesIO(data), encoding_errors=encoding_errors, rules=rules, max_line_bytes=max_line_bytes)
    )
