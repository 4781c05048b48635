"""Reading a diff's lines from a stream with bounded memory, and the file names in its headers
(git's quoting, `a/` `b/` prefixes, plain `diff -u` names)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO


def read_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[bytes]:
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


class DiffLines:
    """An iterator over lines that can push lines back (one-line lookahead for `---`/`+++`)."""

    def __init__(self, it: Iterator[bytes]) -> None:
        self._it = it
        self._back: list[bytes] = []

    def __iter__(self) -> DiffLines:
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

_C_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
    ord('"'): 34,
    ord("\\"): 92,
}


def unquote(s: bytes) -> tuple[bytes, bytes]:
    """Undo git's C-style quoting of `s` (which starts with '"'): (name bytes, text after it)."""
    out = bytearray()
    i, n = 1, len(s)
    while i < n:
        c = s[i]
        if c == 34:  # closing quote
            return bytes(out), s[i + 1 :]
        if c == 92 and i + 1 < n:
            d = s[i + 1]
            if 48 <= d <= 55:  # octal escape: a raw byte (non-ASCII paths under core.quotepath)
                j = i + 1
                while j < n and j < i + 4 and 48 <= s[j] <= 55:
                    j += 1
                out.append(int(s[i + 1 : j], 8) & 0xFF)
                i = j
                continue
            out.append(_C_ESCAPES.get(d, d))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out), b""  # unterminated: take what there is


def file_line_name(rest: bytes) -> bytes | None:
    """The name on a `---`/`+++` line: quoted, or up to a tab (git's space marker, diff's timestamp)."""
    rest = rest.rstrip(b"\r\n")
    name = unquote(rest)[0] if rest.startswith(b'"') else rest.split(b"\t", 1)[0]
    return None if name == b"/dev/null" else name


def header_name(rest: bytes) -> bytes:
    """A name on a `rename from`, `copy to`... line (no prefix, maybe quoted)."""
    rest = rest.rstrip(b"\r\n")
    return unquote(rest)[0] if rest.startswith(b'"') else rest


_PREFIX = re.compile(rb"[a-z]/")


def split_git_names(rest: bytes) -> tuple[bytes, bytes]:
    """The two names of `diff --git A B`. Unquoted names may contain spaces, so prefer the split
    whose halves name the same file; renames get their real names from later lines anyway."""
    if rest.startswith(b'"'):
        a, after = unquote(rest)
        after = after.lstrip(b" ")
        return a, (unquote(after)[0] if after.startswith(b'"') else after)
    if rest.endswith(b'"') and (q := rest.find(b' "')) != -1:
        return rest[:q], unquote(rest[q + 1 :])[0]
    n = len(rest)
    if n % 2 == 1 and rest[n // 2 : n // 2 + 1] == b" ":
        a, b = rest[: n // 2], rest[n // 2 + 1 :]
        if a == b or (_PREFIX.match(a) and _PREFIX.match(b) and a[2:] == b[2:]):
            return a, b
    for sep in (b" b/", b" "):
        if (i := rest.find(sep)) != -1:
            return rest[:i], rest[i + 1 :]
    return rest, rest


def plain_prefixes(old: bytes | None, new: bytes | None) -> tuple[bytes, bytes]:
    """Prefixes to strip from a diff without a `diff --git` line: `a/x b/x` and `old/x new/x`
    (diff -ru) lose their first directory; `src/x src/x` (svn) keeps it."""
    if old is not None and new is not None and b"/" in old and b"/" in new:
        (old_top, old_rest), (new_top, new_rest) = old.split(b"/", 1), new.split(b"/", 1)
        if old_top != new_top and old_rest == new_rest:
            return old_top + b"/", new_top + b"/"
    if (old is None or old.startswith(b"a/")) and (new is None or new.startswith(b"b/")):
        return b"a/", b"b/"
    return b"", b""


def strip_prefix(name: bytes | None, prefix: bytes) -> bytes | None:
    if name is not None and prefix and name.startswith(prefix):
        return name[len(prefix) :]
    return name
