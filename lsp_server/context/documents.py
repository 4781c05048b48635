"""The document being edited: parsed incrementally, and read around the cursor.

A full tree-sitter parse of a large file takes tens of milliseconds; after a keystroke the
edit is found by comparing the new text with the last one (common prefix and suffix) and the
old tree is re-used, which brings a re-parse under a millisecond. `DocumentCache.get` is
what the retrieval calls on every request; `warm` is for `didOpen`.

`scope_at` reads what retrieval needs at the cursor: the file's imports, the class the cursor
is in (its outline from the live text, and its base classes), and the identifiers near the
cursor, nearest first. The identifier being typed is left out, so that the context does not
change with every letter (which would defeat llama.cpp's prompt cache).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from tree_sitter import Point, Tree

from lsp_server.context.imports import Import
from lsp_server.context.languages import TOOLS, grammar, language_for_path
from lsp_server.context.outline import Definition, parse

# Node types of classes and class-like containers, across the grammars.
CLASS_NODES = frozenset(
    {
        "class_definition",
        "class_declaration",
        "abstract_class_declaration",
        "class_specifier",
        "struct_specifier",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "struct_item",
        "enum_item",
        "trait_item",
        "impl_item",
        "class",
    }
)
FUNCTION_NODES = frozenset(
    {
        "function_definition",
        "method_definition",
        "function_declaration",
        "method_declaration",
        "function_item",
        "constructor_declaration",
        "arrow_function",
        "function_expression",
        "generator_function_declaration",
    }
)

LINES_BEFORE = 40
LINES_AFTER = 10
MAX_NAMES = 48


@dataclass(frozen=True)
class ClassScope:
    name: str
    header: str
    members: tuple[tuple[Definition, str], ...]  # (member, its signature), in file order
    bases: tuple[str, ...]
    line: int


@dataclass
class _ImportsMemo:
    imports: tuple[Import, ...]
    end: int  # byte offset where the last import statement ends


@dataclass
class _ClassMemo:
    start: int  # the class node's byte range
    end: int
    headers: list[tuple[int, int]]  # byte ranges of the class header and member headers
    scope: ClassScope


@dataclass
class Document:
    path: str
    language: str
    data: bytes
    tree: Tree
    version: int = 0
    # What the cursor analysis found, carried over edits that cannot have changed it: most
    # keystrokes land in a function body, far from imports and member headers.
    imports_memo: _ImportsMemo | None = None
    class_memo: _ClassMemo | None = field(default=None)
    # False when `tree` is the last parse with the edits since applied (`Tree.edit`), not a
    # parse of `data`: its nodes sit at the right offsets, but the edited text is not parsed.
    parsed: bool = True
    unparsed_bytes: int = 0
    # After a re-parse ran over its budget, how many bytes of edits to wait before the next try
    # (doubling each time): a file whose re-parses are slow must not cost every keystroke.
    parse_backoff: int = 0


# A line that may be (or become) an import, per language.
_IMPORT_HINT = {
    "python": re.compile(rb"^\s*(?:import|from)\b", re.M),
    "go": re.compile(rb"^\s*(?:import\b|\")", re.M),
    "rust": re.compile(rb"^\s*(?:pub\s+)?use\b", re.M),
    "c": re.compile(rb"^\s*#\s*include\b", re.M),
    "cpp": re.compile(rb"^\s*#\s*include\b", re.M),
    "java": re.compile(rb"^\s*import\b", re.M),
}
_JS_IMPORT_HINT = re.compile(rb"^\s*import\b|\brequire\s*\(", re.M)


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if not n:
        return 0
    diff = np.flatnonzero(np.frombuffer(a, np.uint8, n) != np.frombuffer(b, np.uint8, n))
    return int(diff[0]) if len(diff) else n


def _point(data: bytes, offset: int) -> Point:
    row = data.count(b"\n", 0, offset)
    return Point(row, offset - (data.rfind(b"\n", 0, offset) + 1))


class DocumentCache:
    """Parsed documents by path, most recent first; thread-safe."""

    def __init__(self, max_documents: int = 16) -> None:
        self.max_documents = max_documents
        self._docs: OrderedDict[str, Document] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, text: str, language: str | None = None) -> Document | None:
        """The document with this text, parsed (incrementally when it was seen before); None for
        a language without a grammar."""
        language = language or language_for_path(path)
        if language is None or grammar(language) is None:
            return None
        data = text.encode("utf-8", "surrogatepass")
        with self._lock:
            old = self._docs.get(path)
            if old is not None and old.language == language:
                if old.data == data:
                    self._docs.move_to_end(path)
                    return old
                doc = self._reparse(old, data)
            else:
                tree = parse(data, language)
                assert tree is not None
                doc = Document(path, language, data, tree)
            self._docs[path] = doc
            self._docs.move_to_end(path)
            while len(self._docs) > self.max_documents:
                self._docs.popitem(last=False)
            return doc

    def warm(self, path: str, text: str) -> None:
        self.get(path, text)

    def forget(self, path: str) -> None:
        with self._lock:
            self._docs.pop(path, None)

    @staticmethod
    def _reparse(old: Document, data: bytes) -> Document:
        start = _common_prefix(old.data, data)
        limit = min(len(old.data), len(data)) - start
        tail = _common_prefix(old.data[::-1][:limit], data[::-1][:limit])
        old_end, new_end = len(old.data) - tail, len(data) - tail
        tree = old.tree.copy()
        tree.edit(
            start_byte=start,
            old_end_byte=old_end,
            new_end_byte=new_end,
            start_point=_point(old.data, start),
            old_end_point=_point(old.data, old_end),
            new_end_point=_point(data, new_end),
        )
        doc = Document(
            old.path,
            old.language,
            data,
            tree,
            old.version + 1,
            parsed=False,
            unparsed_bytes=old.unparsed_bytes + max(old_end, new_end) - start,
            parse_backoff=old.parse_backoff,
        )
        doc.imports_memo = _carry_imports(old, data, start, old_end, new_end)
        doc.class_memo = _carry_class(old, start, old_end, new_end)
        # Most keystrokes land inside a function body: nothing the cursor analysis reads from
        # the tree (imports, classes and their members' headers) can have changed, and the
        # edited old tree serves. A re-parse (incremental, but tens of milliseconds in some
        # large files) is for edits that may change structure.
        structural = (
            doc.imports_memo is None
            or (old.class_memo is not None and doc.class_memo is None)
            or doc.unparsed_bytes > UNPARSED_LIMIT
            or _declares(old.language, _edited_lines(data, start, new_end))
            or _declares(old.language, _edited_lines(old.data, start, old_end))
        )
        if structural and doc.unparsed_bytes >= doc.parse_backoff:
            parsed = _parse_within(data, old.language, tree, REPARSE_BUDGET_S)
            if parsed is not None:
                doc.tree, doc.parsed, doc.unparsed_bytes, doc.parse_backoff = parsed, True, 0, 0
            else:
                doc.parse_backoff = max(2 * doc.parse_backoff, doc.unparsed_bytes + 64)
        return doc


# A line that declares something: a definition keyword, or in brace languages a brace that
# opens or closes a block (in Python a brace is a dict or a set).
_DECLARES = (
    rb"^\s*(?:@|(?:export\s+|pub(?:\([^)]*\))?\s+|public\s+|private\s+|protected\s+|static\s+"
    rb"|async\s+)*(?:def|class|function|func|fn|struct|enum|trait|impl|interface|type|namespace|module"
    rb"|import|from|use|package)\b)"
)
_STRUCTURE = {
    "python": re.compile(_DECLARES, re.M),
}
_BRACE_STRUCTURE = re.compile(_DECLARES + rb"|[{}]", re.M)


def _declares(language: str, lines: bytes) -> bool:
    return _STRUCTURE.get(language, _BRACE_STRUCTURE).search(lines) is not None


UNPARSED_LIMIT = 2048  # bytes of edits left unparsed before a re-parse anyway
REPARSE_BUDGET_S = 0.008  # a re-parse taking longer is abandoned; the next request tries again


def _parse_within(data: bytes, language: str, old: Tree, budget_s: float) -> Tree | None:
    """Re-parse incrementally, giving up after `budget_s` (None: the edited old tree stays)."""
    parser = TOOLS.parser(language)
    if parser is None:
        return None
    deadline = time.perf_counter() + budget_s

    def read(offset: int, _point: Point) -> bytes:
        return data[offset : offset + 65536]

    def over_budget(*_state: object) -> bool:
        return time.perf_counter() > deadline

    try:
        return parser.parse(read, old, progress_callback=over_budget)
    except ValueError:  # cancelled
        parser.reset()  # else the next parse would resume this one
        return None


def _edited_lines(data: bytes, start: int, end: int) -> bytes:
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", end)
    return data[line_start : len(data) if line_end < 0 else line_end]


def _carry_imports(old: Document, data: bytes, start: int, old_end: int, new_end: int) -> _ImportsMemo | None:
    memo = old.imports_memo
    if memo is None or start <= memo.end:
        return None
    hint = _IMPORT_HINT.get(old.language, _JS_IMPORT_HINT)
    if hint.search(_edited_lines(data, start, new_end)) or hint.search(_edited_lines(old.data, start, old_end)):
        return None
    return memo


def _carry_class(old: Document, start: int, old_end: int, new_end: int) -> _ClassMemo | None:
    memo = old.class_memo
    if memo is None:
        return None
    if start >= memo.end:
        return memo
    if not (memo.start < start and old_end < memo.end):
        return None
    if any(a <= old_end and start <= b for a, b in memo.headers):
        return None
    delta = new_end - old_end
    headers = [(a + delta, b + delta) if a >= old_end else (a, b) for a, b in memo.headers]
    return _ClassMemo(memo.start, memo.end + delta, headers, memo.scope)


# --------------------------------------------------------------------------- the cursor
