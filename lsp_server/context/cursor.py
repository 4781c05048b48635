"""What surrounds the cursor in an open document: the enclosing class and function, the
names in the lines around it, and the document's imports and outline."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from tree_sitter import Node

from lsp_server.context.documents import (
    CLASS_NODES,
    FUNCTION_NODES,
    LINES_AFTER,
    LINES_BEFORE,
    MAX_NAMES,
    ClassScope,
    Document,
    _ClassMemo,
    _ImportsMemo,
)
from lsp_server.context.identifiers import IDENTIFIER, STOPWORDS
from lsp_server.context.imports import Import, read_imports
from lsp_server.context.languages import CLASS_KINDS, TOOLS
from lsp_server.context.outline import FileOutline, outline, read_definitions, signature_text
from lsp_server.context.tokens import keys


@dataclass(frozen=True)
class CursorScope:
    imports: tuple[Import, ...]
    enclosing: ClassScope | None
    owner: str | None  # the type a Go method / Rust impl / C++ `A::f` body belongs to, when not lexical
    names: tuple[str, ...]  # identifiers near the cursor, nearest first (the one being typed left out)
    attributes: frozenset[str]  # those of them used as `x.name`
    qualified: tuple[tuple[str, str], ...]  # (x, name) for each `x.name` near the cursor, nearest first
    window_keys: np.ndarray  # hashed identifier set of the window around the cursor
    line: int


def byte_offset(data: bytes, line: int, character: int, starts: np.ndarray | None = None) -> int:
    """Byte offset of a (line, code point) position, clamped to the text. `starts`: the offsets
    of the line starts, if known."""
    if starts is None:
        starts = line_starts(data)
    if line >= len(starts):
        return len(data)
    start = int(starts[line])
    end = int(starts[line + 1]) - 1 if line + 1 < len(starts) else len(data)
    prefix = data[start:end].decode("utf-8", "surrogatepass")[:character]
    return start + len(prefix.encode("utf-8", "surrogatepass"))


def cursor_line_prefix(text: str, line: int, character: int) -> str:
    """The cursor line's text before the cursor (`line` and `character` 0-based, code points)."""
    start = 0
    for _ in range(line):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    end = text.find("\n", start)
    row = text[start : end if end >= 0 else len(text)]
    return row[:character]


def line_starts(data: bytes) -> np.ndarray:
    return np.concatenate(([0], np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1))


def _base_names(node: Node, data: bytes) -> tuple[str, ...]:
    """Superclasses / implemented interfaces named in a class header."""
    out: list[str] = []
    for field_name in ("superclasses", "superclass", "interfaces", "trait"):
        child = node.child_by_field_name(field_name)
        if child is not None:
            out.extend(IDENTIFIER.findall(data[child.start_byte : child.end_byte].decode("utf-8", "replace")))
    for child in node.named_children:
        if child.type in ("class_heritage", "base_class_clause", "super_interfaces", "extends_interfaces"):
            out.extend(IDENTIFIER.findall(data[child.start_byte : child.end_byte].decode("utf-8", "replace")))
    skip = {"extends", "implements", "public", "private", "protected", "virtual", "object", "Object", "metaclass"}
    return tuple(dict.fromkeys(name for name in out if name not in skip))


def _class_scope(doc: Document, node: Node) -> ClassScope | None:
    memo = doc.class_memo
    if memo is not None and memo.start == node.start_byte and memo.end == node.end_byte:
        return memo.scope
    scope, headers = _read_class(doc, node)
    if scope is not None:
        doc.class_memo = _ClassMemo(node.start_byte, node.end_byte, headers, scope)
    return scope


def _read_class(doc: Document, node: Node) -> tuple[ClassScope | None, list[tuple[int, int]]]:
    definitions_cursor = TOOLS.class_cursor(doc.language)
    if definitions_cursor is None:
        return None, []
    defs = read_definitions(definitions_cursor.matches(node), doc.data, doc.language)
    if node.type != "impl_item" and (not defs or defs[0].kind not in CLASS_KINDS):
        return None, []
    headers = [(node.start_byte, _body_start(node))]
    if node.type == "impl_item":
        type_node = node.child_by_field_name("type")
        name = doc.data[type_node.start_byte : type_node.end_byte].decode("utf-8", "replace") if type_node else "?"
        name = name.split("<")[0]
        header = signature_text(doc.data, node.start_byte, _body_start(node))
        members = [d for d in defs if d.parent == name]
    else:
        head = defs[0]
        name = head.name
        header = signature_text(doc.data, head.start_byte, head.header_end)
        members = [d for d in defs[1:] if d.parent == name]
    sigs = tuple((d, signature_text(doc.data, d.start_byte, d.header_end)) for d in members)
    headers += [(d.start_byte, d.header_end) for d in members]
    return ClassScope(name, header, sigs, _base_names(node, doc.data), node.start_point.row), headers


def _body_start(node: Node) -> int:
    body = node.child_by_field_name("body")
    return body.start_byte if body is not None else node.end_byte


def _owner(doc: Document, node: Node) -> str | None:
    """The receiver type of a Go method, or the scope of a C++ `A::f` definition."""
    if node.type == "method_declaration" and doc.language == "go":
        receiver = node.child_by_field_name("receiver")
        if receiver is not None:
            names = IDENTIFIER.findall(doc.data[receiver.start_byte : receiver.end_byte].decode("utf-8", "replace"))
            return names[-1] if names else None
    if node.type == "function_definition" and doc.language == "cpp":
        declarator = node.child_by_field_name("declarator")
        inner = declarator.child_by_field_name("declarator") if declarator is not None else None
        if inner is not None and inner.type == "qualified_identifier":
            scope = inner.child_by_field_name("scope")
            if scope is not None:
                return doc.data[scope.start_byte : scope.end_byte].decode("utf-8", "replace").split("<")[0]
    return None


_QUALIFIED = re.compile(r"([A-Za-z_$][\w$]*)\s*(?:\.|::|->)\s*([A-Za-z_$][\w$]*)")


def _window(doc: Document, offset: int, line: int) -> tuple[list[tuple[int, str, bool]], str, str]:
    """Identifiers around the cursor as (distance in lines, name, after a dot), and the window's
    text before and after the cursor, without the identifier under the cursor."""
    data = doc.data
    line_start = data.rfind(b"\n", 0, offset) + 1
    line_end = data.find(b"\n", offset)
    line_end = len(data) if line_end < 0 else line_end
    # The identifier touching the cursor is being typed: leave it out.
    left = offset
    while left > line_start and (chr(data[left - 1]).isalnum() or data[left - 1] in b"_$"):
        left -= 1
    right = offset
    while right < line_end and (chr(data[right]).isalnum() or data[right] in b"_$"):
        right += 1
    before_start = line_start
    for _ in range(LINES_BEFORE):
        if before_start == 0:
            break
        before_start = data.rfind(b"\n", 0, before_start - 1) + 1
    after_end = line_end
    for _ in range(LINES_AFTER):
        if after_end >= len(data):
            break
        nxt = data.find(b"\n", after_end + 1)
        after_end = len(data) if nxt < 0 else nxt
    before = data[before_start:left].decode("utf-8", "replace")
    after = data[right:after_end].decode("utf-8", "replace")
    found: list[tuple[int, str, bool]] = []
    before_lines = before.split("\n")
    for i, text in enumerate(before_lines):
        distance = len(before_lines) - 1 - i
        for m in IDENTIFIER.finditer(text):
            found.append((distance, m.group(), m.start() > 0 and text[m.start() - 1] == "."))
    for i, text in enumerate(after.split("\n")):
        for m in IDENTIFIER.finditer(text):
            found.append((i, m.group(), m.start() > 0 and text[m.start() - 1] == "."))
    return found, before, after


def _document_imports(doc: Document) -> tuple[Import, ...]:
    if doc.imports_memo is not None:
        return doc.imports_memo.imports
    cursors = TOOLS.cursors(doc.language)
    assert cursors is not None
    nodes = cursors[1].captures(doc.tree.root_node).get("import", [])
    imports = tuple(read_imports(nodes, doc.data, doc.language))
    doc.imports_memo = _ImportsMemo(imports, max((n.end_byte for n in nodes), default=0))
    return imports


def scope_at(doc: Document, line: int, character: int) -> CursorScope:
    offset = byte_offset(doc.data, line, character)
    imports = _document_imports(doc)
    # The character before the cursor: at the end of a block (or of the text) the cursor itself
    # is past every node but the root.
    at = max(0, offset - 1)
    node: Node | None = doc.tree.root_node.descendant_for_byte_range(at, at)
    enclosing = None
    owner = None
    while node is not None:
        if enclosing is None and node.type in CLASS_NODES:
            enclosing = _class_scope(doc, node)
            if enclosing is not None:
                break
        if owner is None and node.type in FUNCTION_NODES:
            owner = _owner(doc, node)
        node = node.parent
    found, before, after = _window(doc, offset, line)
    found.sort(key=lambda item: item[0])  # stable: nearest lines first, then left to right
    names: dict[str, None] = {}
    attributes: set[str] = set()
    for _, name, dotted in found:
        if len(name) < 2 or name in STOPWORDS:
            continue
        if dotted:
            attributes.add(name)
        names.setdefault(name)
    window_names = {tok for tok in IDENTIFIER.findall(before + "\n" + after) if len(tok) > 1 and tok not in STOPWORDS}
    # `x.name` pairs, nearest the cursor first (characters before it, then after it).
    qualified: dict[tuple[str, str], int] = {}
    for m in _QUALIFIED.finditer(before):
        qualified[(m.group(1), m.group(2))] = len(before) - m.end()  # later matches are nearer: overwrite
    for m in _QUALIFIED.finditer(after):
        qualified.setdefault((m.group(1), m.group(2)), len(before) + m.start())
    pairs = tuple(pair for pair, _ in sorted(qualified.items(), key=lambda item: item[1]))
    return CursorScope(
        imports,
        enclosing,
        owner,
        tuple(list(names)[:MAX_NAMES]),
        frozenset(a for a in attributes if a in names),
        pairs,
        keys(window_names),
        line,
    )


def document_outline(doc: Document) -> FileOutline:
    return outline(doc.data, doc.language, doc.tree)
