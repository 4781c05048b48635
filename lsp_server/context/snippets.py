"""Context snippets: what retrieval returns, how they read, and the sensitivity hook.

Every snippet names the workspace folder and the path it came from, so that the caller can
keep a snippet from a sensitive path, or holding a secret, away from a remote tier (and
record in the ledger that context was withheld). `gate_from_scanner` adapts the project's
sensitivity scanner (anything with `scan(text, path)` returning a report with `sensitive`
and `summary()`), without this package importing the router.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from lsp_server.context.entries import DefinitionRef, FileEntry
from lsp_server.context.languages import CLASS_KINDS, FUNCTION_KINDS

SnippetKind = Literal["import", "class", "base", "usage", "similar", "call"]

# (workspace-relative path, snippet text) -> why it must not leave the machine, or None.
Gate = Callable[[str, str], str | None]

MAX_SNIPPET_LINES = 60
_MISSING = object()
MAX_LINE_CHARS = 300


@dataclass(frozen=True)
class ContextSnippet:
    root: str  # the workspace folder (absolute)
    path: str  # relative to it, '/'-separated
    start_line: int  # 0-based, first line the text comes from
    end_line: int  # 0-based, last line
    kind: SnippetKind
    symbol: str | None  # the definition it shows, if any
    text: str
    tokens: int = 0
    score: float = 0.0

    @property
    def absolute_path(self) -> Path:
        return Path(self.root) / self.path


@dataclass(frozen=True)
class Withheld:
    path: str
    kind: SnippetKind
    reason: str  # from the gate, e.g. "secret:aws-access-key-id" (never the text)


@dataclass(frozen=True)
class ContextBundle:
    snippets: tuple[ContextSnippet, ...] = ()
    withheld: tuple[Withheld, ...] = ()
    budget: int = 0

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.snippets)

    def files(self) -> list[tuple[str, str]]:
        """(path, text) per file, in order of first appearance: snippets of one file joined,
        for a prompt that separates files (`ContextFile` in the completion prompt)."""
        grouped: OrderedDict[str, list[str]] = OrderedDict()
        for snippet in self.snippets:
            grouped.setdefault(snippet.path, []).append(snippet.text)
        return [(path, "\n\n".join(texts)) for path, texts in grouped.items()]

    def filtered(self, gate: Gate) -> ContextBundle:
        """The same bundle without the snippets `gate` refuses (for a remote tier)."""
        kept: list[ContextSnippet] = []
        withheld = list(self.withheld)
        for snippet in self.snippets:
            reason = gate(snippet.path, snippet.text)
            if reason is None:
                kept.append(snippet)
            else:
                withheld.append(Withheld(snippet.path, snippet.kind, reason))
        return replace(self, snippets=tuple(kept), withheld=tuple(withheld))


class _Report(Protocol):
    @property
    def sensitive(self) -> bool: ...

    def summary(self) -> str: ...


class _Scanner(Protocol):
    def scan(self, text: str, path: str | None = None) -> _Report: ...


def gate_from_scanner(scanner: _Scanner) -> Gate:
    def gate(path: str, text: str) -> str | None:
        report = scanner.scan(text, path)
        return report.summary() if report.sensitive else None

    return gate


# --------------------------------------------------------------------------- reading text back


class SourceLines:
    """Lines of indexed files, read back from disk for snippets, if the file is unchanged since
    it was indexed (same size and modification time); a small LRU, thread-safe."""

    def __init__(self, max_files: int = 64) -> None:
        self.max_files = max_files
        self._cache: OrderedDict[Path, tuple[int, int, list[bytes]]] = OrderedDict()
        self._rendered: OrderedDict[tuple[Path, int, int, tuple[int, ...]], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def lines(self, path: Path, mtime_ns: int, size: int) -> list[bytes] | None:
        with self._lock:
            hit = self._cache.get(path)
            if hit is not None and hit[0] == mtime_ns and hit[1] == size:
                self._cache.move_to_end(path)
                return hit[2]
        try:
            info = os.stat(path)
            if info.st_mtime_ns != mtime_ns or info.st_size != size:
                return None  # changed since indexed: its lines no longer match the index
            with open(path, "rb") as f:
                data = f.read(size + 1)
        except OSError:
            return None
        if len(data) != size:
            return None
        lines = data.split(b"\n")
        with self._lock:
            self._cache[path] = (mtime_ns, size, lines)
            while len(self._cache) > self.max_files:
                self._cache.popitem(last=False)
        return lines

    def for_entry(self, root: Path, entry: FileEntry) -> list[bytes] | None:
        return self.lines(root / entry.path, entry.mtime_ns, entry.size)

    def rendered(self, root: Path, entry: FileEntry, key: tuple[int, ...]) -> tuple[bool, str | None]:
        """A snippet made earlier from this version of the file (same size and time)."""
        with self._lock:
            made = self._rendered.get((root / entry.path, entry.mtime_ns, entry.size, key), _MISSING)
        return (False, None) if made is _MISSING else (True, made)  # type: ignore[return-value]

    def remember(self, root: Path, entry: FileEntry, key: tuple[int, ...], text: str | None) -> None:
        with self._lock:
            self._rendered[(root / entry.path, entry.mtime_ns, entry.size, key)] = text
            while len(self._rendered) > 8 * self.max_files:
                self._rendered.popitem(last=False)


def _decode(line: bytes) -> str:
    text = line.decode("utf-8", "replace").rstrip("\r")
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + " ..."


def header_text(lines: Sequence[bytes], d: DefinitionRef) -> str:
    last = min(d.header_end_line, len(lines) - 1)
    if d.line > last:
        return ""
    chunk = list(lines[d.line : last + 1])
    chunk[-1] = chunk[-1][: d.header_end_col] if d.header_end_line == last else chunk[-1]
    if chunk[0][: d.start_col].strip():
        # Not the first thing on its line (a field in a one-line struct): cut what precedes it.
        chunk[0] = chunk[0][d.start_col :]
    return "\n".join(_decode(line) for line in chunk).rstrip()


def stub(signature: str, kind: str, language: str) -> str:
    """A header written as a declaration without a body: `def f(x): ...`, `func F() { ... }`."""
    if kind not in FUNCTION_KINDS or not signature or kind == "macro":
        return signature
    if language == "python":
        return signature + " ..." if signature.endswith(":") else signature
    if signature.endswith((";", "}", "=>")):
        return signature
    return signature + " { ... }"


def _members(d: DefinitionRef) -> list[DefinitionRef]:
    """A class's members in file order; Go methods (by receiver), Rust `impl` blocks and C++
    out-of-line definitions live outside the class's braces, anywhere in the file."""
    lexical = d.entry.language not in ("go", "rust", "cpp")
    seen: set[tuple[str, str]] = set()
    out = []
    for m in d.entry.members(d.name):
        if lexical and not d.line <= m.line <= d.end_line:
            continue
        if (m.name, m.kind) in seen:  # a C++ declaration and its definition
            continue
        seen.add((m.name, m.kind))
        out.append(m)
    return out


def definition_text(lines: Sequence[bytes], d: DefinitionRef, max_members: int = 40) -> str:
    """A function's header, or a class's header with its members' headers (bodies elided)."""
    head = header_text(lines, d)
    language = d.entry.language
    if d.kind not in CLASS_KINDS:
        return stub(head, d.kind, language)
    members = _members(d)[:max_members]
    braced = language not in ("go", "rust")
    inside = [m for m in members if braced or m.kind == "field"]
    outside = [m for m in members if not (braced or m.kind == "field")]
    body = [text for m in inside if (text := stub(header_text(lines, m), m.kind, language))]
    after = [text.strip() for m in outside if (text := stub(header_text(lines, m), m.kind, language))]
    if language == "python":
        return "\n".join([head, *body]) if body else head + " ..."
    if d.kind == "type" and not body:
        return "\n".join([head, *after])
    indent = head[: len(head) - len(head.lstrip())]
    out = [head + " {", *body, indent + "}"] if body else [head + " { ... }"]
    if after and language == "rust":
        out += [f"impl {d.name} {{", *("    " + a for a in after), "}"]
    else:
        out += after
    return "\n".join(out)


def chunk_text(lines: Sequence[bytes], start: int, end: int) -> str:
    return "\n".join(_decode(line) for line in lines[start : min(end, start + MAX_SNIPPET_LINES)]).rstrip()
