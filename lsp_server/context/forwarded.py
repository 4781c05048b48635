"""Definitions the editor forwards from its other language servers (an optional extra).

An editor that runs a language server for the file's language (Pylance, gopls, rust-analyzer,
tsserver, ...) knows exactly where the symbols at the cursor are defined, library code
included. The ninetyten clients may ask it (VS Code: `vscode.executeDefinitionProvider`;
Neovim: `textDocument/definition` to the buffer's other clients) and send the locations with
the `ninetyten/definitions` notification. The server reads the definitions' headers itself
(from the open document or from disk, size-capped) and offers them to the prompt. Nothing
depends on it: without a forwarding client this stays empty.

What a client sends is a location, never trusted further than that: a file that is not
readable text, too large, or binary is skipped, and the snippet goes through the same
sensitivity gate as any other context before a remote tier sees it.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lsp_server.context.languages import CLASS_KINDS, FUNCTION_KINDS, language_for_path
from lsp_server.context.outline import Definition, FileOutline, outline
from lsp_server.context.records import looks_binary
from lsp_server.context.snippets import stub

MAX_LOCATIONS = 8  # per document: the symbols around one cursor
MAX_FILE_BYTES = 1024 * 1024
MAX_LINES = 12  # shown for a location in a file of a language without a grammar
MAX_MEMBERS = 24
MAX_SNIPPET_CHARS = 2000
_PACKAGE_DIRS = ("site-packages", "dist-packages", "node_modules", "vendor", "pkg", "registry")


@dataclass(frozen=True)
class Location:
    path: Path  # absolute
    line: int  # 0-based: where the client says the symbol is defined


@dataclass(frozen=True)
class ForwardedSnippet:
    path: str  # as shown in the prompt: workspace-relative, else from the package directory on
    line: int
    text: str


def display_path(path: Path, roots: Sequence[Path]) -> str:
    """Workspace-relative when inside a folder; for library code the part after the package
    directory (`site-packages/requests/api.py` -> `requests/api.py`); else the last two parts."""
    for root in roots:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    parts = path.parts
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] in _PACKAGE_DIRS and index + 1 < len(parts):
            return PurePosixPath(*parts[index + 1 :]).as_posix()
    return PurePosixPath(*parts[-2:]).as_posix()


def _read(path: Path, info: os.stat_result) -> str | None:
    """The file's text, given the stat the caller already took of it."""
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if looks_binary(data):
        return None
    return data.decode("utf-8", "replace")


def _innermost(found: FileOutline, line: int) -> Definition | None:
    """The smallest definition whose lines hold `line` (the location points at its name)."""
    holding = [d for d in found.definitions if d.line <= line <= d.end_line]
    return min(holding, key=lambda d: d.end_line - d.line) if holding else None


def definition_snippet(text: str, language: str | None, line: int) -> str | None:
    """The definition at `line` as a prompt shows it: its header (bodies elided), a class with
    its members' headers; the lines from `line` on for a language without a grammar."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        return None
    found = outline(text, language) if language is not None else None
    d = _innermost(found, line) if found is not None else None
    if found is None or d is None:
        chunk = "\n".join(row.rstrip() for row in lines[line : line + MAX_LINES]).rstrip()
        return chunk[:MAX_SNIPPET_CHARS] or None
    assert language is not None
    head = found.signature(d)
    if d.kind in CLASS_KINDS:
        members = [m for m in found.members(d.name) if d.line <= m.line <= d.end_line][:MAX_MEMBERS]
        body = [stub(found.signature(m), m.kind, language) for m in members]
        if language == "python":
            out = "\n".join([head, *body]) if body else head + " ..."
        else:
            out = "\n".join([head + " {", *body, "}"]) if body else head + " { ... }"
    elif d.kind in FUNCTION_KINDS:
        out = stub(head, d.kind, language)
    else:
        out = head
    return out[:MAX_SNIPPET_CHARS] or None


class ForwardedDefinitions:
    """Per document, the definitions its client forwarded last, rendered once per file version."""

    def __init__(self, roots: Sequence[Path] = ()) -> None:
        self.roots = [Path(r) for r in roots]
        self._by_uri: dict[str, tuple[Location, ...]] = {}
        self._rendered: OrderedDict[tuple[Path, int, int, int], str | None] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_uri.values())

    def set(self, uri: str, locations: Sequence[Location]) -> bool:
        """Replace what `uri`'s client forwarded; False when nothing changed."""
        unique = tuple(dict.fromkeys(locations))[:MAX_LOCATIONS]
        if self._by_uri.get(uri) == unique:
            return False
        if unique:
            self._by_uri[uri] = unique
        else:
            self._by_uri.pop(uri, None)
        return True

    def forget(self, uri: str) -> None:
        self._by_uri.pop(uri, None)

    def snippets(self, uri: str, open_text: Callable[[Path], str | None]) -> list[ForwardedSnippet]:
        """Rendered definitions for `uri`, in the order the client sent them; `open_text(path)`
        is the editor's text of an open document (else the file is read from disk)."""
        out: list[ForwardedSnippet] = []
        seen: set[str] = set()
        for location in self._by_uri.get(uri, ()):
            snippet = self._render(location, open_text)
            if snippet is not None and snippet not in seen:
                seen.add(snippet)
                out.append(ForwardedSnippet(display_path(location.path, self.roots), location.line, snippet))
        return out

    def _render(self, location: Location, open_text: Callable[[Path], str | None]) -> str | None:
        # Consecutive keystrokes ask for the same definitions: render each file version once.
        text = open_text(location.path)
        info: os.stat_result | None = None
        if text is not None:
            key = (location.path, location.line, len(text), hash(text))
        else:
            try:
                info = location.path.stat()
            except OSError:
                return None
            key = (location.path, location.line, info.st_mtime_ns, -1 - info.st_size)
        if key in self._rendered:
            self._rendered.move_to_end(key)
            return self._rendered[key]
        if info is not None:
            text = _read(location.path, info)
        snippet = definition_snippet(text, language_for_path(location.path.name), location.line) if text else None
        self._rendered[key] = snippet
        while len(self._rendered) > 256:
            self._rendered.popitem(last=False)
        return snippet
