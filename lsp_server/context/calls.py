"""Other calls of the function whose arguments are being written at the cursor.

When the cursor sits inside `name(...`, the arguments the rest of the workspace passes to
`name` say more about what comes next than its definition does: which local names are
conventionally passed, which keywords are used, how the line usually ends. The definition
comes through the `import`/`usage` snippets; this module finds the call sites, through the
index's identifier postings (only chunks that contain the name are read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lsp_server.context.entries import FileEntry
from lsp_server.context.identifiers import STOPWORDS
from lsp_server.context.index import WorkspaceIndex
from lsp_server.context.resolve import GenerationMemo
from lsp_server.context.snippets import MAX_LINE_CHARS, SourceLines

# Lines that define a name rather than call it, in the common languages.
_DEFINITION = re.compile(
    r"^\s*(?:@|(?:async\s+)?def\s|class\s|func\s|fn\s|pub\s|function\s|struct\s|interface\s|type\s|"
    r"(?:public|private|protected|static|export)\s)"
)
_CALLEE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)\s*$")
_OPEN, _CLOSE = "([{", ")]}"
# Chunks read at most, and files they may come from: a name called everywhere (a logger,
# a common constructor) must not make one keystroke read half the workspace.
MAX_CHUNKS = 48
MAX_FILES = 12

# Every keystroke in an argument list asks again for the same callee's sites.
_MEMO = GenerationMemo(size=256)


@dataclass(frozen=True)
class CallSite:
    entry: FileEntry
    root: Path
    line: int  # 0-based
    text: str  # the call's line, without its indentation


def callee_at(line_prefix: str) -> str | None:
    """The name whose argument list the cursor is in, on the cursor's line: `f(a, g(b), ` -> `f`.
    None when the cursor is not inside a call opened on this line, or inside a string."""
    quote: str | None = None
    opens: list[int] = []
    for i, ch in enumerate(line_prefix):
        if quote is not None:
            if ch == quote and line_prefix[i - 1] != "\\":
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch == "#":
            return None  # a comment (in the languages that use `#`; harmless elsewhere)
        elif ch in _OPEN:
            opens.append(i)
        elif ch in _CLOSE and opens:
            opens.pop()
    if quote is not None or not opens or line_prefix[opens[-1]] != "(":
        return None
    found = _CALLEE.search(line_prefix[: opens[-1]])
    if found is None or found.group(1) in STOPWORDS or len(found.group(1)) < 2:
        return None
    return found.group(1)


def _nearness(path: str, near: str | None) -> int:
    """How many leading folders `path` shares with `near` (negated, for sorting)."""
    if near is None:
        return 0
    shared = 0
    for a, b in zip(path.split("/")[:-1], near.split("/")[:-1], strict=False):
        if a != b:
            break
        shared += 1
    return -shared


def call_sites(
    index: WorkspaceIndex,
    sources: SourceLines,
    name: str,
    *,
    exclude_file: int | None,
    near: str | None,
    limit: int,
) -> list[CallSite]:
    """Up to `limit` distinct lines of other files that call `name`: files in the folders
    nearest `near` (the edited file's path) first, then by path, lines in order. The same
    callee gives the same sites on every keystroke."""
    key = ("calls", name, exclude_file, near, limit)
    hit, sites = _MEMO.get(index, key)
    if hit:
        return sites  # type: ignore[return-value]
    sites = _find_sites(index, sources, name, exclude_file=exclude_file, near=near, limit=limit)
    _MEMO.put(index, key, sites)
    return sites


def _find_sites(
    index: WorkspaceIndex,
    sources: SourceLines,
    name: str,
    *,
    exclude_file: int | None,
    near: str | None,
    limit: int,
) -> list[CallSite]:
    pattern = re.compile(r"(?<![A-Za-z0-9_$])" + re.escape(name) + r"\s*\(")
    found = index.chunks_naming(name, exclude_file=exclude_file)
    found.sort(key=lambda item: (item[0].root, _nearness(item[0].path, near), item[0].path))
    out: list[CallSite] = []
    seen: set[str] = set()
    chunks_read = 0
    for entry, spans in found[:MAX_FILES]:
        root = index.roots[entry.root]
        lines = sources.for_entry(root, entry)
        if lines is None:
            continue
        for start, end in spans:
            if chunks_read >= MAX_CHUNKS:
                return out
            chunks_read += 1
            for number in range(start, min(end, len(lines))):
                text = lines[number].decode("utf-8", "replace").strip()
                if len(text) > MAX_LINE_CHARS or text in seen or _DEFINITION.match(text):
                    continue
                call = pattern.search(text)
                if call is None or not text[call.end() :].strip():
                    continue  # not a call, or its arguments start on the next line
                seen.add(text)
                out.append(CallSite(entry, root, number, text))
                if len(out) >= limit:
                    return out
    return out
