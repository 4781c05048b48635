"""String literals joined by `+`, `.`, `..`, `&` or `||` (across line continuations), read
as the one string they make: a key split in two to get past a scanner is whole again."""

from __future__ import annotations

import itertools
import re

from lsp_server.sensitivity.scan_views import View

_LITERAL = r"""(?:"(?:[^"\\\n]|\\.){0,400}"|'(?:[^'\\\n]|\\.){0,400}'|`[^`\\\n]{0,400}`)"""
# Two or more literals joined by nothing (C, Python), `+` (JS, Java, C#, Go, Python), `.`
# (PHP, Perl), `&` (VB), `||` (SQL) or `..` (Lua), possibly across lines (with `\` too).
_JOIN = r"""(?:[ \t]*(?:\\?\r?\n[ \t]*){0,2}(?:\+|\.\.?|&|\|\|)?[ \t]*(?:\\?\r?\n[ \t]*){0,2})"""
_CHAIN = re.compile(rf"{_LITERAL}(?:{_JOIN}{_LITERAL})+")
_ONE_LITERAL = re.compile(_LITERAL)


# Quotes -> "q", blanks -> " ", operators -> "o", newline -> "n", backslash -> "b", letters,
# digits and the other token characters -> "t", the rest -> "x": a literal followed by another
# literal becomes a byte pattern that starts with a literal ("q"), which `re` finds fast.
_SHAPE = bytes(
    ord("q")
    if chr(i) in "\"'`"
    else ord(" ")
    if chr(i) in " \t\r"
    else ord("o")
    if chr(i) in "+.&|"
    else ord("n")
    if chr(i) == "\n"
    else ord("b")
    if chr(i) == "\\"
    else ord("t")
    if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "_-/=$:~")
    else ord("x")
    for i in range(256)
)
# A closing quote after a token character (not an escape's letter: `'width,\n' 'including'`
# joins no token), a gap that is not empty (blanks, an operator, line breaks), an opening
# quote before a token character. Prose split at spaces, the usual way to wrap long strings,
# gives no hint at all.
_SHAPE_HINT = re.compile(
    rb"q(?<=[^b][to]q)(?: +| *(?:b?n *){1,2}| *oo? *(?:b?n *){0,2}| *(?:b?n *){1,2}oo? *)q(?=[to])"
)


def concat_view(text: str, ascii_bytes: bytes | None = None) -> View | None:
    """Chains of adjacent string literals, joined into one literal, with the line's text in
    front (`KEY = "ab" + "cd"` -> `KEY = "abcd"`)."""
    shape = (text.encode("ascii", "replace") if ascii_bytes is None else ascii_bytes).translate(_SHAPE)
    view = View("concat")
    pos = 0
    for hint in _SHAPE_HINT.finditer(shape):
        if hint.start() < pos:
            continue
        # The literal that the hint's first quote closes starts at the previous same quote.
        line_start = text.rfind("\n", 0, hint.start()) + 1
        opening = text.rfind(text[hint.start()], max(pos, line_start, hint.start() - 402), hint.start())
        m = _CHAIN.match(text, opening, min(len(text), hint.end() + 1600)) if opening >= 0 else None
        if m is None:
            continue
        pos = m.end()
        pieces = list(_ONE_LITERAL.finditer(text, m.start(), m.end()))
        if len(pieces) < 2 or not _splits_a_token(text, pieces):
            continue
        view.separator()
        line_start = text.rfind("\n", 0, m.start()) + 1
        view.verbatim(text, max(line_start, m.start() - 200), m.start() + 1)
        for piece in pieces:
            view.verbatim(text, piece.start() + 1, piece.end() - 1)
        view.verbatim(text, m.end() - 1, m.end())
    return view if len(view) else None


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/=$:~")


def _splits_a_token(text: str, pieces: list[re.Match[str]]) -> bool:
    """Whether joining the pieces makes a run of token characters of 8 or more across a
    seam (`"ghp_abc" "def"`); chains of words and sentences add nothing to the scan."""
    for a, b in itertools.pairwise(pieces):
        run = 0
        i = a.end() - 2
        while i > a.start() and run < 8 and text[i] in _TOKEN_CHARS:
            run += 1
            i -= 1
        if run < 8 and text[i] == "\\":
            run -= 1  # the letter of an escape (`'...width,\n' 'including...'`) is not text
        if run <= 0:
            continue
        j = b.start() + 1
        while j < b.end() - 1 and run < 8 and text[j] in _TOKEN_CHARS:
            run += 1
            j += 1
        if run >= 8:
            return True
    return False
