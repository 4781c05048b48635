"""Which definitions a change added, removed, renamed or changed, from tree-sitter outlines.

With the whole old and new text of a file, their outlines are compared by qualified name
(`Class.method`): a function whose text differs is changed; a class is changed when its
header is (its members are symbols of their own); a removed and an added definition of the
same kind in the same class whose bodies match once the name is set aside are a rename.
With only the diff's hunks, each hunk's old and new side is parsed as a fragment, and
changed lines are attributed to the definition around them (or to the function name git
printed in the hunk header).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lsp_server.context.languages import CLASS_KINDS
from lsp_server.context.outline import Definition, FileOutline, outline
from lsp_server.explain.diff.model import Hunk
from lsp_server.explain.facts.edits import RENAMED_USES, function_details

ChangeKind = Literal["added", "removed", "renamed", "changed"]

RENAME_SIMILARITY = 0.7
_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_SECTION_NAME = re.compile(
    r"\b(?:def|class|func|fn|function|struct|enum|trait|interface|impl|type|module|sub|procedure)\s+"
    r"(?:\([^)]*\)\s*)?([A-Za-z_$][\w$]*)"
)
_C_LIKE_NAME = re.compile(r"([A-Za-z_$][\w$:]*)\s*\(")


@dataclass(frozen=True)
class SymbolChange:
    path: str
    name: str  # qualified: `Class.method`
    kind: str  # function, method, class, field, ...
    change: ChangeKind
    old_name: str | None = None  # renamed: what it was called
    details: tuple[str, ...] = ()  # changed function: which parts (see `edits.py`)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


_Key = tuple[str, str, int]  # qualified name, kind, which of the definitions with that name (a getter, its setter)


def _table(parsed: FileOutline) -> dict[_Key, tuple[Definition, str]]:
    out: dict[_Key, tuple[Definition, str]] = {}
    seen: dict[tuple[str, str], int] = {}
    for d in parsed.definitions:
        body = parsed.signature(d) if d.kind in CLASS_KINDS else parsed.text(d)
        n = seen.get((d.qualified_name, d.kind), 0)
        seen[(d.qualified_name, d.kind)] = n + 1
        out[(d.qualified_name, d.kind, n)] = (d, _normal(body))
    return out


def _renamed_uses(old_text: str, new_text: str, renames: dict[str, str]) -> bool:
    """Whether a definition changed only because names it uses were renamed."""
    for old, new in renames.items():
        old_text = re.sub(rf"(?<![\w$]){re.escape(old)}(?![\w$])", new, old_text)
    return old_text == new_text


def _similar(a: str, b: str, name_a: str, name_b: str) -> float:
    if a.replace(name_a, "\0") == b.replace(name_b, "\0"):
        return 1.0
    words_a = set(_WORD.findall(a)) - {name_a}
    words_b = set(_WORD.findall(b)) - {name_b}
    union = words_a | words_b
    if not union:
        return 0.0
    # Short bodies share few words by chance; long bodies must share most of them.
    return len(words_a & words_b) / len(union) if min(len(words_a), len(words_b)) >= 3 else 0.0


def compare_outlines(path: str, old: FileOutline | None, new: FileOutline | None) -> list[SymbolChange]:
    """Symbol changes between two versions of one file (None: the file did not exist)."""
    before = _table(old) if old is not None else {}
    after = _table(new) if new is not None else {}
    added = [key for key in after if key not in before]
    removed = [key for key in before if key not in after]
    changes: list[SymbolChange] = []
    renamed_from: dict[_Key, _Key] = {}
    # Pair renames, most similar first.
    pairs = []
    for a in added:
        da, text_a = after[a]
        for r in removed:
            dr, text_r = before[r]
            if da.kind != dr.kind or da.parent != dr.parent:
                continue
            score = _similar(text_r, text_a, dr.name, da.name)
            if score >= RENAME_SIMILARITY:
                pairs.append((score, r, a))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used: set[_Key] = set()
    for _score, r, a in pairs:
        if r in used or a in used:
            continue
        used.update((r, a))
        renamed_from[a] = r
    renames = {before[r][0].name: after[a][0].name for a, r in renamed_from.items()}
    for key in after:
        d, text = after[key]
        if key in renamed_from:
            changes.append(SymbolChange(path, d.qualified_name, d.kind, "renamed", renamed_from[key][0]))
        elif key not in before:
            changes.append(SymbolChange(path, d.qualified_name, d.kind, "added"))
        elif before[key][1] != text:
            details: tuple[str, ...] = ()
            if renames and _renamed_uses(before[key][1], text, renames):
                details = (RENAMED_USES,)
            elif d.kind not in CLASS_KINDS and old is not None and new is not None:
                details = function_details(old, before[key][0], new, d)
            changes.append(SymbolChange(path, d.qualified_name, d.kind, "changed", details=details))
    for key in removed:
        if key not in used:
            d, _ = before[key]
            changes.append(SymbolChange(path, d.qualified_name, d.kind, "removed"))
    unique: dict[tuple[str, str, str | None], SymbolChange] = {}
    for change in changes:
        unique.setdefault((change.name, change.change, change.old_name), change)
    return list(unique.values())


def _fragment(lines: list[str], side: Literal["old", "new"]) -> tuple[str, list[int]]:
    """One side of a hunk as text, and which of its lines changed."""
    keep = "-" if side == "old" else "+"
    text_lines: list[str] = []
    changed: list[int] = []
    for line in lines:
        mark, body = line[:1], line[1:].rstrip("\n")
        if mark == " " or mark == keep:
            if mark == keep:
                changed.append(len(text_lines))
            text_lines.append(body)
    return textwrap.dedent("\n".join(text_lines)), changed


def _section_symbol(section: str) -> str | None:
    m = _SECTION_NAME.search(section) or _C_LIKE_NAME.search(section)
    return m.group(1).split("::")[-1] if m else None


def compare_hunks(path: str, language: str, hunks: Sequence[Hunk]) -> list[SymbolChange]:
    """Symbol changes from the hunks alone (no whole-file text)."""
    found: dict[tuple[str, str], SymbolChange] = {}
    for hunk in hunks:
        lines = hunk.lines()
        sides = {}
        for side in ("old", "new"):
            text, changed = _fragment(lines, side)
            sides[side] = (outline(text, language), changed)
        old_parsed, old_changed = sides["old"]
        new_parsed, new_changed = sides["new"]
        for change in compare_outlines(path, old_parsed, new_parsed):
            if change.change != "changed":
                found.setdefault((change.name, change.change), change)
        # Changed lines inside a definition present on both sides, or under git's section name.
        old_names = {d.qualified_name for d in old_parsed.definitions}
        touched = False
        for parsed, changed in ((new_parsed, new_changed), (old_parsed, old_changed)):
            for row in changed:
                inner = [d for d in parsed.definitions if d.line <= row <= d.end_line and d.kind not in CLASS_KINDS]
                if inner:
                    touched = True
                    d = max(inner, key=lambda d: d.line)
                    if d.qualified_name in old_names and d.qualified_name in {
                        x.qualified_name for x in new_parsed.definitions
                    }:
                        found.setdefault(
                            (d.qualified_name, "changed"), SymbolChange(path, d.qualified_name, d.kind, "changed")
                        )
        if not touched and (old_changed or new_changed):
            name = _section_symbol(hunk.section)
            if name is not None and not any(c.short_name == name for c in found.values()):
                found.setdefault((name, "changed"), SymbolChange(path, name, "function", "changed"))
    return list(found.values())
