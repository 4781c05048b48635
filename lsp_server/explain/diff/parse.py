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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, BinaryIO, Literal, TextIO, cast

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
        return split_lines(self.text)


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


def split_lines(text: str) -> list[str]:
    """Split on '\\n' only: str.splitlines would also split on CR, form feed, U+2028..."""
    if not text:
        return []
    parts = text.split("\n")
    last = parts.pop()
    out = [p + "\n" for p in parts]
    if last:
        out.append(last)
    return out


# --------------------------------------------------------------------------- what is summarized

_LOCK_FILES = (
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb",
    "deno.lock", "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock", "pylock.toml", "pylock.*.toml",
    "conda-lock.yml", "Cargo.lock", "go.sum", "go.work.sum", "composer.lock", "Gemfile.lock", "mix.lock",
    "pubspec.lock", "Podfile.lock", "Package.resolved", "packages.lock.json", "gradle.lockfile",
    "flake.lock", ".terraform.lock.hcl", "Berksfile.lock", "renv.lock",
)
_GENERATED_FILES = (
    "*.min.js", "*.min.mjs", "*.min.css", "*.map", "*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py",
    "*.pb.go", "*.pb.cc", "*.pb.h", "*.pb.swift",
)
# Markers generators write at the top of their output. "DO NOT EDIT" is case-sensitive on
# purpose: "do not edit this list without ..." in hand-written files is not a generator.
_GENERATED_MARKER = r"DO NOT EDIT|@generated\b|(?i:\bauto-?generated\b|\bautomatically generated\b)"


def _glob_regex(globs: Iterable[str]) -> re.Pattern[str]:
    parts = (re.escape(g).replace(r"\*", "[^/]*") for g in globs)
    return re.compile("(?:" + "|".join(parts) + r")\Z")


@dataclass(frozen=True)
class SummaryRules:
    """Which files are summarized by name instead of being sent to a model. Configurable per call."""

    lock_files: tuple[str, ...] = _LOCK_FILES  # basename globs (`*` only)
    generated_files: tuple[str, ...] = _GENERATED_FILES  # basename globs
    generated_dirs: frozenset[str] = frozenset({"dist", "build"})  # any path component
    vendored_dirs: frozenset[str] = frozenset({"vendor", "third_party", "third-party", "node_modules",
                                               "bower_components"})
    generated_marker: str = _GENERATED_MARKER  # searched in a file's first `marker_lines` new lines
    marker_lines: int = 10
    max_changed_lines: int | None = 5000  # more changed lines than this: "too large"

    @cached_property
    def _lock_re(self) -> re.Pattern[str]:
        return _glob_regex(self.lock_files)

    @cached_property
    def _generated_re(self) -> re.Pattern[str]:
        return _glob_regex(self.generated_files)

    @cached_property
    def marker_re(self) -> re.Pattern[str]:
        return re.compile(self.generated_marker)

    def classify_path(self, path: str) -> str | None:
        """'lock file', 'vendored' or 'generated' when the path alone decides, else None."""
        *dirs, name = path.split("/")
        if self._lock_re.match(name):
            return "lock file"
        if any(d in self.vendored_dirs for d in dirs):
            return "vendored"
        if self._generated_re.match(name) or any(d in self.generated_dirs for d in dirs):
            return "generated"
        return None


DEFAULT_RULES = SummaryRules()


# --------------------------------------------------------------------------- reading lines


def _read_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[bytes]:
    """Lines of the stream (with their '\\n'); an over-long line is cut without reading it whole."""
    readline = stream.readline
    while True:
        line = readline(max_line_bytes + 1)
        if not line:
            return
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            dropped = len(line) - max_line_bytes
            while rest := readline(65536):
                dropped += len(rest)
                if rest.endswith(b"\n"):
                    dropped -= 1
                    break
            line = line[:max_line_bytes] + f" \u2026 [{dropped} bytes cut]\n".encode()
        yield line


class _Lines:
    """An iterator over lines that can push lines back (one-line lookahead for `---`/`+++`)."""

    def __init__(self, it: Iterator[bytes]) -> None:
        self._it = it
        self._back: list[bytes] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> bytes:
        if self._back:
            return self._back.pop()
        return next(self._it)

    def get(self) -> bytes | None:
        return next(self, None)

    def push(self, line: bytes) -> None:
        self._back.append(line)

    def peek(self) -> bytes | None:
        line = self.get()
        if line is not None:
            self.push(line)
        return line


# --------------------------------------------------------------------------- paths

_C_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("t"): 9, ord("n"): 10, ord("v"): 11, ord("f"): 12, ord("r"): 13,
              ord('"'): 34, ord("\\"): 92}


def _unquote(s: bytes) -> tuple[bytes, bytes]:
    """Undo git's C-style quoting of `s` (which starts with '"'): (name bytes, text after it)."""
    out = bytearray()
    i, n = 1, len(s)
    while i < n:
        c = s[i]
        if c == 34:  # closing quote
            return bytes(out), s[i + 1:]
        if c == 92 and i + 1 < n:
            d = s[i + 1]
            if 48 <= d <= 55:  # octal escape: a raw byte (non-ASCII paths under core.quotepath)
                j = i + 1
                while j < n and j < i + 4 and 48 <= s[j] <= 55:
                    j += 1
                out.append(int(s[i + 1:j], 8) & 0xFF)
                i = j
                continue
            out.append(_C_ESCAPES.get(d, d))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out), b""  # unterminated: take what there is


def _file_line_name(rest: bytes) -> bytes | None:
    """The name on a `---`/`+++` line: quoted, or up to a tab (git's space marker, diff's timestamp)."""
    rest = rest.rstrip(b"\r\n")
    name = _unquote(rest)[0] if rest.startswith(b'"') else rest.split(b"\t", 1)[0]
    return None if name == b"/dev/null" else name


def _header_name(rest: bytes) -> bytes:
    """A name on a `rename from`, `copy to`... line (no prefix, maybe quoted)."""
    rest = rest.rstrip(b"\r\n")
    return _unquote(rest)[0] if rest.startswith(b'"') else rest


_PREFIX = re.compile(rb"[a-z]/")


def _split_git_names(rest: bytes) -> tuple[bytes, bytes]:
    """The two names of `diff --git A B`. Unquoted names may contain spaces, so prefer the split
    whose halves name the same file; renames get their real names from later lines anyway."""
    if rest.startswith(b'"'):
        a, after = _unquote(rest)
        after = after.lstrip(b" ")
        return a, (_unquote(after)[0] if after.startswith(b'"') else after)
    if rest.endswith(b'"') and (q := rest.find(b' "')) != -1:
        return rest[:q], _unquote(rest[q + 1:])[0]
    n = len(rest)
    if n % 2 == 1 and rest[n // 2:n // 2 + 1] == b" ":
        a, b = rest[:n // 2], rest[n // 2 + 1:]
        if a == b or (_PREFIX.match(a) and _PREFIX.match(b) and a[2:] == b[2:]):
            return a, b
    for sep in (b" b/", b" "):
        if (i := rest.find(sep)) != -1:
            return rest[:i], rest[i + 1:]
    return rest, rest


def _plain_prefixes(old: bytes | None, new: bytes | None) -> tuple[bytes, bytes]:
    """Prefixes to strip from a diff without a `diff --git` line: `a/x b/x` and `old/x new/x`
    (diff -ru) lose their first directory; `src/x src/x` (svn) keeps it."""
    if old is not None and new is not None and b"/" in old and b"/" in new:
        (old_top, old_rest), (new_top, new_rest) = old.split(b"/", 1), new.split(b"/", 1)
        if old_top != new_top and old_rest == new_rest:
            return old_top + b"/", new_top + b"/"
    if (old is None or old.startswith(b"a/")) and (new is None or new.startswith(b"b/")):
        return b"a/", b"b/"
    return b"", b""


def _strip(name: bytes | None, prefix: bytes) -> bytes | None:
    if name is not None and prefix and name.startswith(prefix):
        return name[len(prefix):]
    return name


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
            self.old_prefix, self.new_prefix = _plain_prefixes(old, new)
        # An explicit `rename from/to` is more reliable than prefix-stripped ---/+++ names.
        if not (self.rename or self.copy):
            self.old, self.new = _strip(old, self.old_prefix), _strip(new, self.new_prefix)
        if old is None:
            self.new_file = True
        if new is None:
            self.deleted = True

    def submodule(self) -> bool:
        return "160000" in (self.old_mode, self.new_mode)

    def header_line(self, head: bytes, src: _Lines) -> bool:
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
            self.rename, self.old = True, _header_name(head.split(b" ", 2)[2])
        elif head.startswith((b"rename to ", b"rename new ")):
            self.rename, self.new = True, _header_name(head.split(b" ", 2)[2])
        elif head.startswith(b"copy from "):
            self.copy, self.old = True, _header_name(head[10:])
        elif head.startswith(b"copy to "):
            self.copy, self.new = True, _header_name(head[8:])
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
            self.keep_text = not (self.kind == "combined" or self.binary or self.submodule()
                                  or self.opts.rules.classify_path(self.path()))
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
        elif (self.old_mode != self.new_mode and self.old_mode and self.new_mode and not self.binary
              and self.hunk_count == 0):
            status = "mode_changed"
        else:
            status = "modified"
        path = self.path()
        reason = ("binary" if self.binary else "merge diff" if self.kind == "combined"
                  else "submodule" if self.submodule() else self.opts.rules.classify_path(path) or self.late_reason)
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


def format_hunk_header(old_start: int, old_len: int, new_start: int, new_len: int, section: str) -> str:
    return f"@@ -{old_start},{old_len} +{new_start},{new_len} @@{section}"


def _read_hunk(cur: _Builder, head: bytes, m: re.Match[bytes], src: _Lines) -> None:
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


def _read_combined_hunk(cur: _Builder, head: bytes, src: _Lines) -> None:
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


def _parse(src: _Lines, opts: _Options) -> Iterator[FileChange]:
    cur: _Builder | None = None
    found = stray = False
    for raw in src:
        head = raw.rstrip(b"\r\n")
        if head.startswith(b"diff --git "):
            if cur is not None:
                yield cur.finish()
            a, b = _split_git_names(head[11:])
            cur = _Builder("git", opts)
            if _PREFIX.match(a) and _PREFIX.match(b):
                cur.old_prefix, cur.new_prefix = a[:2], b[:2]
            cur.old, cur.new = _strip(a, cur.old_prefix), _strip(b, cur.new_prefix)
            found = True
        elif head.startswith((b"diff --cc ", b"diff --combined ")):
            if cur is not None:
                yield cur.finish()
            rest = head.split(b" ", 2)[2]
            name = _unquote(rest)[0] if rest.startswith(b'"') else rest
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
            old, new = _file_line_name(head[4:]), _file_line_name(nxt[4:])
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
            cur.set_file_lines(_file_line_name(old if sep else names), _file_line_name(new if sep else names))
            cur.binary = found = True
        elif head.strip():
            stray = True
    if cur is not None:
        yield cur.finish()
    if not found and stray:
        raise DiffError("the input is not a unified diff (no 'diff --git' or '---'/'+++' file header found); "
                        "pass the output of `git diff` or `diff -u`")


def iter_parse_diff(stream: IO[bytes] | TextIO, *, encoding_errors: str = "replace",
                    rules: SummaryRules = DEFAULT_RULES, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[FileChange]:
    """Parse a diff file by file from a binary stream; memory holds one file at a time.

    Bytes that are not UTF-8 are decoded with `encoding_errors` (default: replaced with U+FFFD).
    A text stream (sys.stdin) is read through its binary buffer."""
    codecs.lookup_error(encoding_errors)  # a bad handler name fails here, not mid-stream
    binary = cast(BinaryIO, getattr(stream, "buffer", stream))
    return _parse(_Lines(_read_lines(binary, max_line_bytes)), _Options(encoding_errors, rules))


def parse_diff(data: bytes, *, encoding_errors: str = "replace", rules: SummaryRules = DEFAULT_RULES,
               max_line_bytes: int = MAX_LINE_BYTES) -> list[FileChange]:
    """Parse a whole diff held in memory. See `iter_parse_diff`."""
    return list(iter_parse_diff(io.BytesIO(data), encoding_errors=encoding_errors, rules=rules,
                                max_line_bytes=max_line_bytes))
