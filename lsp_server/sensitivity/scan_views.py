"""Normalised views of a text: what a secret looks like once its encoding is undone.

A secret can sit in a text in a form that no rule matches as written: a private key on the
removed lines of a diff (`-MIIE...`), a notebook cell as one escaped JSON string per line,
base64 (`client-key-data: LS0tLS1CRUdJTi...`), split by string concatenation
(`"ghp_abc" + "def..."`) or URL-encoded (`ghp%5Fabc...`). Each function here builds a *view*:
the decoded text of only the parts that need it, with, for every view character, the span
of the original characters it came from. The scanner runs its detectors on each view and
maps the findings back, so `redact()` covers the original characters (the whole base64
value, every piece of a concatenation).

Views are built only where a cheap test says the form is present, and hold only the
affected parts (a few lines around a PEM block in a diff, the lines with `%XX` escapes),
so they cost little on ordinary code.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class View:
    """Decoded pieces of a text. `starts[i]`/`ends[i]`: the original span of view char i."""

    kind: str  # "diff-old", "diff-new", "json", "base64", "concat", "url"
    parts: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    _text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.parts)
        return self._text

    def __len__(self) -> int:
        return len(self.starts)

    def verbatim(self, source: str, start: int, end: int) -> None:
        """Original characters copied one for one."""
        if end > start:
            self.parts.append(source[start:end])
            self.starts.extend(range(start, end))
            self.ends.extend(range(start + 1, end + 1))

    def decoded(self, text: str, start: int, end: int) -> None:
        """Characters that together come from the original span [start, end)."""
        if text:
            self.parts.append(text)
            self.starts.extend([start] * len(text))
            self.ends.extend([end] * len(text))

    def char(self, ch: str, start: int, end: int) -> None:
        self.parts.append(ch)
        self.starts.append(start)
        self.ends.append(end)

    def separator(self) -> None:
        """A line break between pieces that were not adjacent (maps to nothing new)."""
        if self.starts:
            self.char("\n", self.ends[-1], self.ends[-1])

    @classmethod
    def merged(cls, views: list[View]) -> View:
        """One view of several (one pass of the detectors instead of one per view)."""
        out = cls("merged")
        for view in views:
            out.separator()
            out.parts.extend(view.parts)
            out.starts.extend(view.starts)
            out.ends.extend(view.ends)
        return out

    def through(self, outer: View) -> View:
        """This view of `outer`'s text, mapped onto `outer`'s original (a view of a view)."""
        out = View(self.kind, self.parts)
        out.starts = [outer.starts[i] for i in self.starts]
        out.ends = [outer.ends[max(i - 1, 0)] if i > 0 else outer.starts[0] for i in self.ends]
        return out

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[max(start, end - 1)]


# --------------------------------------------------------------------------- diffs

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.MULTILINE)
_MULTILINE_SECRET = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}-----|PuTTY-User-Key-File-\d")
_BLOCK_END = re.compile(r"-----END [A-Z0-9 ]{0,40}-----|Private-MAC: ")


def diff_views(text: str) -> list[View]:
    """The old and the new side of the diff hunks that hold a multi-line secret (a PEM block,
    a PuTTY key), with the `-`/`+`/` ` markers removed: `-MIIE...` lines are key lines again."""
    if "\n@@ -" not in text and not text.startswith("@@ -"):
        return []
    if "-----BEGIN " not in text and "PuTTY-User-Key-File-" not in text:
        return []
    if _HUNK.search(text) is None:
        return []
    old, new = View("diff-old"), View("diff-new")
    for block_start, block_end in _marked_blocks(text):
        for view in (old, new):
            view.separator()
        pos = block_start
        while pos < block_end:
            line_end = text.find("\n", pos, block_end)
            line_end = block_end if line_end < 0 else line_end + 1
            marker = text[pos]
            if marker in " -":
                old.verbatim(text, pos + 1, line_end)
            if marker in " +":
                new.verbatim(text, pos + 1, line_end)
            pos = line_end
    return [v for v in (old, new) if len(v)]


def _marked_blocks(text: str) -> Iterator[tuple[int, int]]:
    """Line ranges from each multi-line secret's first line to its last (or 400 lines)."""
    pos = 0
    while m := _MULTILINE_SECRET.search(text, pos):
        start = text.rfind("\n", 0, m.start()) + 1
        if text[start : start + 1] not in ("-", "+", " "):
            pos = m.end()
            continue
        end_marker = _BLOCK_END.search(text, m.end(), m.end() + 40_000)
        limit = end_marker.end() if end_marker else m.end() + 40_000
        end = text.find("\n", limit)
        end = len(text) if end < 0 else end + 1
        yield start, end
        pos = end


# --------------------------------------------------------------------------- JSON strings

_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.){0,20000}"')
_JSON_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"'}
_ARRAY_GAP = re.compile(r"\s*,\s*")


def json_view(text: str) -> View | None:
    """JSON string literals that hold escapes, unescaped. Consecutive strings of one array
    (a notebook cell's lines) are joined into one piece; a value keeps its key in front."""
    if "\\" not in text or '"' not in text:
        return None
    # A JSON document (a notebook, a credentials file): every escaped string. Elsewhere (code,
    # YAML), only strings with escaped quotes or \u escapes: JSON embedded in a string.
    whole = text.lstrip()[:1] in ("{", "[")
    if not whole and '\\"' not in text and "\\u" not in text:
        return None
    view = View("json")
    previous_end = -1
    for m in _json_strings(text, whole):
        start, end = m.span()
        literal = m.group()
        if "\\" not in literal or not (whole or '\\"' in literal or "\\u" in literal):
            previous_end = -1
            continue
        joined = previous_end >= 0 and _ARRAY_GAP.fullmatch(text, previous_end, start) is not None
        if not joined:
            view.separator()
            # The line up to the string (its key, `__author__ =`...) gives it its context.
            line_start = text.rfind("\n", 0, start) + 1
            view.verbatim(text, max(line_start, start - 240), start + 1)
        else:
            view.parts[-1] = view.parts[-1][:-1]  # drop the closing quote of the previous piece
            view.starts.pop()
            view.ends.pop()
            view._text = None
        _unescape_into(view, text, start + 1, end - 1)
        view.verbatim(text, end - 1, end)
        previous_end = end
    return view if len(view) else None


_EMBEDDED_ESCAPE = re.compile(r'\\["u]')


def _json_strings(text: str, whole: bool) -> Iterator[re.Match[str]]:
    """The string literals of a JSON document; elsewhere, those of the lines that hold an
    escaped quote or a `\\u` escape (the only ones kept there), found without reading the
    rest. A literal never spans lines, so a line's literals are the same either way."""
    if whole:
        yield from _JSON_STRING.finditer(text)
        return
    done_until = -1
    for escape in _EMBEDDED_ESCAPE.finditer(text):
        if escape.start() < done_until:
            continue
        line_start = text.rfind("\n", 0, escape.start()) + 1
        line_end = text.find("\n", escape.end())
        done_until = len(text) if line_end < 0 else line_end
        yield from _JSON_STRING.finditer(text, line_start, done_until)


def _unescape_into(view: View, text: str, start: int, end: int) -> None:
    pos = start
    while pos < end:
        slash = text.find("\\", pos, end)
        if slash < 0:
            view.verbatim(text, pos, end)
            return
        view.verbatim(text, pos, slash)
        kind = text[slash + 1 : slash + 2]
        if kind == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[slash + 2 : slash + 6]):
            view.char(chr(int(text[slash + 2 : slash + 6], 16)), slash, slash + 6)
            pos = slash + 6
        elif kind in _JSON_ESCAPES:
            view.char(_JSON_ESCAPES[kind], slash, slash + 2)
            pos = slash + 2
        else:
            view.verbatim(text, slash, slash + 1)
            pos = slash + 1


# --------------------------------------------------------------------------- base64

_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
# DER: SEQUENCE, then INTEGER 0 (PKCS#1 RSA, PKCS#8) or INTEGER 1 + OCTET STRING (SEC1 EC).
_DER_PRIVATE_KEY = re.compile(rb"\x30(?:\x82..|\x81.|[\x00-\x7f])\x02\x01(?:\x00|\x01\x04)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class DecodedBlob:
    start: int
    end: int
    text: str | None  # the decoded text, when it is text
    der_private_key: bool


def decode_blob(value: str) -> bytes | None:
    core = value.rstrip("=")
    if len(core) % 4 == 1:
        return None
    padded = core + "=" * (-len(core) % 4)
    try:
        if "-" in core or "_" in core:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def decoded_blobs(text: str, runs: list[tuple[int, int]], min_length: int = 40) -> list[DecodedBlob]:
    """Long base64 values among the token runs that decode to text (a PEM key, a JSON
    credential file, `user:password`) or to a DER private key."""
    out: list[DecodedBlob] = []
    for run_start, run_end in runs:
        if run_end - run_start < min_length:
            continue
        for m in _B64_RUN.finditer(text, run_start, run_end):
            start, end = m.span()
            if end - start < min_length:
                continue
            raw = decode_blob(m.group())
            if raw is None or len(raw) < 24:
                continue
            if _DER_PRIVATE_KEY.match(raw):
                out.append(DecodedBlob(start, end, None, True))
                continue
            try:
                decoded = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in decoded)
            if printable >= 0.95 * len(decoded):
                out.append(DecodedBlob(start, end, decoded, False))
    return out


def base64_view(blobs: list[DecodedBlob]) -> View | None:
    view = View("base64")
    for blob in blobs:
        if blob.text:
            view.separator()
            view.decoded(blob.text, blob.start, blob.end)
    return view if len(view) else None


# --------------------------------------------------------------------------- concatenation
# --------------------------------------------------------------------------- URL encoding

_PERCENT = re.compile(r"%(2[1-9A-Fa-f]|[3-6][0-9A-Fa-f]|7[0-9A-Ea-e])")


def url_view(text: str) -> View | None:
    """Lines with `%XX` escapes of printable characters, decoded."""
    if "%" not in text:
        return None
    view = View("url")
    done_until = -1
    for m in _PERCENT.finditer(text):
        if m.start() < done_until:
            continue
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.end())
        line_end = len(text) if line_end < 0 else line_end
        line_start = max(line_start, m.start() - 2000)
        line_end = min(line_end, m.end() + 2000)
        view.separator()
        pos = line_start
        for esc in _PERCENT.finditer(text, line_start, line_end):
            view.verbatim(text, pos, esc.start())
            view.char(chr(int(esc.group(1), 16)), esc.start(), esc.end())
            pos = esc.end()
        view.verbatim(text, pos, line_end)
        done_until = line_end
    return view if len(view) else None
