"""A file's outline: its definitions (with signatures and lines) and its imports, from tree-sitter.

One pure function, `outline(source, language)`, used by the background indexer on every
workspace file, by the cursor analysis on the document being edited, and by the diff facts on
old and new file text. Bodies are never kept: a definition carries its header (the signature
up to its body), which is what completion context and change summaries need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node, Tree

from lsp_server.context.imports import Import, read_imports, text_of
from lsp_server.context.languages import BODY_TYPES, CLASS_KINDS, FUNCTION_KINDS, TOOLS

# A signature longer than this is cut: a 40-parameter constructor is still recognisable.
MAX_SIGNATURE_LINES = 8
MAX_SIGNATURE_CHARS = 400
MAX_FIELD_CHARS = 160


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    kind: str  # function, method, class, struct, interface, trait, enum, type, field, constant, variable, macro
    parent: str | None  # the class / struct / impl / receiver type it belongs to
    line: int  # 0-based first line of its header (decorators, `export` included)
    end_line: int  # 0-based last line
    start_byte: int  # where the header starts
    header_end: int  # where the header ends (the body starts)
    end_byte: int
    header_end_line: int
    header_end_col: int  # in bytes

    @property
    def qualified_name(self) -> str:
        return f"{self.parent}.{self.name}" if self.parent else self.name


@dataclass(frozen=True, slots=True)
class FileOutline:
    language: str
    definitions: tuple[Definition, ...]
    imports: tuple[Import, ...]
    source: bytes = b""

    def members(self, parent: str) -> list[Definition]:
        return [d for d in self.definitions if d.parent == parent]

    def signature(self, definition: Definition) -> str:
        return signature_text(self.source, definition.start_byte, definition.header_end)

    def text(self, definition: Definition) -> str:
        """The whole definition, body included."""
        return self.source[definition.start_byte : definition.end_byte].decode("utf-8", "replace")


def signature_text(data: bytes, start: int, end: int) -> str:
    """A header as it reads in the file (first line indented as there), capped."""
    line_start = data.rfind(b"\n", 0, start) + 1
    indent = data[line_start:start]
    if indent.strip():
        indent = b""
    text = (indent + data[start:end]).decode("utf-8", "replace").rstrip()
    lines = text.split("\n")
    if len(lines) > MAX_SIGNATURE_LINES:
        text = "\n".join(lines[:MAX_SIGNATURE_LINES]) + " ..."
    if len(text) > MAX_SIGNATURE_CHARS:
        text = text[:MAX_SIGNATURE_CHARS].rstrip() + " ..."
    return text


def parse(source: bytes, language: str, old: Tree | None = None) -> Tree | None:
    parser = TOOLS.parser(language)
    if parser is None:
        return None
    return parser.parse(source, old) if old is not None else parser.parse(source)


def outline(source: bytes | str, language: str, tree: Tree | None = None) -> FileOutline:
    """Definitions and imports of one file. Never raises on bad code: tree-sitter recovers."""
    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    if tree is None:
        tree = parse(data, language)
    cursors = TOOLS.cursors(language)
    if tree is None or cursors is None:
        return FileOutline(language, (), (), data)
    defs_cursor, imports_cursor = cursors
    root = tree.root_node
    return FileOutline(
        language,
        read_definitions(defs_cursor.matches(root), data, language),
        tuple(read_imports(imports_cursor.captures(root).get("import", []), data, language)),
        data,
    )


# --------------------------------------------------------------------------- definitions


@dataclass(slots=True)
class _Raw:
    node: Node  # the whole definition (decorators included)
    inner: Node  # the node the grammar calls the definition (its body is a field of this one)
    name: str
    kind: str
    start: int  # byte range of the whole definition (decorators included)
    end: int
    scope: str | None  # an explicit owner: C++ `A::m`, a Go receiver


_RECEIVER_TYPE = re.compile(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*\)\s*$")


def _definition_node(node: Node, kind: str) -> Node:
    """The node whose text is the definition: a C function declarator's declaration, a
    decorated Python definition with its decorators."""
    if node.type == "function_declarator":
        cur: Node | None = node
        while cur is not None and cur.type not in (
            "function_definition",
            "declaration",
            "field_declaration",
            "translation_unit",
            "compound_statement",
        ):
            cur = cur.parent
        if cur is not None and cur.type in ("function_definition", "declaration", "field_declaration"):
            return cur
        return node
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        return parent
    return node


def _raw_definitions(matches: list[tuple[int, dict[str, list[Node]]]], data: bytes) -> list[_Raw]:
    raws: list[_Raw] = []
    seen: set[tuple[int, int]] = set()
    for _, captures in matches:
        names = captures.get("name")
        if not names:
            continue
        kind = next((key[11:] for key in captures if key.startswith("definition.")), None)
        if kind is None:
            continue
        inner = captures[f"definition.{kind}"][0]
        node = _definition_node(inner, kind)
        if node.type != "decorated_definition":
            inner = node
        key = (node.start_byte, node.end_byte)
        if key in seen:  # C++ `A::m` matches both the C and the C++ pattern
            continue
        seen.add(key)
        name_node = names[0]
        name = text_of(data, name_node.start_byte, name_node.end_byte)
        scope = None
        if "scope" in captures:
            scope_node = captures["scope"][0]
            scope = text_of(data, scope_node.start_byte, scope_node.end_byte).split("<")[0].split("::")[-1]
        elif node.type == "method_declaration" and (receiver := node.child_by_field_name("receiver")) is not None:
            m = _RECEIVER_TYPE.search(text_of(data, receiver.start_byte, receiver.end_byte))
            scope = m.group(1) if m else None
        if kind == "impl":
            name = name.split("<")[0].split("::")[-1].strip()
        raws.append(_Raw(node, inner, name, kind, node.start_byte, node.end_byte, scope))
    return raws


def read_definitions(
    matches: list[tuple[int, dict[str, list[Node]]]], data: bytes, language: str
) -> tuple[Definition, ...]:
    raws = _raw_definitions(matches, data)
    raws.sort(key=lambda r: (r.start, -r.end))
    out: list[Definition] = []
    stack: list[_Raw] = []
    for raw in raws:
        while stack and stack[-1].end <= raw.start:
            stack.pop()
        enclosing = stack[-1] if stack else None
        stack.append(raw)
        if enclosing is not None and enclosing.kind in FUNCTION_KINDS:
            continue  # a local: a nested function, a variable in a body
        kind = raw.kind
        parent = raw.scope
        if enclosing is not None and enclosing.kind in CLASS_KINDS:
            parent = enclosing.name
            if kind == "function":
                kind = "method"
        elif kind == "field":
            continue  # a "field" outside any class is a local struct's, or a parse error's
        if kind == "method" and parent is None and raw.scope is None:
            kind = "function"  # a method signature outside a class: an object literal's
        if kind == "type" and language == "go":
            kind = _go_type_kind(raw.inner)
        if kind == "impl":
            continue  # a container only: its functions are members of its type
        node = raw.node
        start, header_end = _header_span(node, raw.inner, kind, data)
        header_end_line = node.start_point.row + data.count(b"\n", node.start_byte, header_end)
        line = node.start_point.row - data.count(b"\n", start, node.start_byte)
        col = header_end - (data.rfind(b"\n", 0, header_end) + 1)
        out.append(
            Definition(
                raw.name, kind, parent, line, node.end_point.row, start, header_end, node.end_byte, header_end_line, col
            )
        )
    return tuple(out)


def _go_type_kind(node: Node) -> str:
    inner = node.child_by_field_name("type")
    if inner is not None and inner.type == "struct_type":
        return "struct"
    if inner is not None and inner.type == "interface_type":
        return "interface"
    return "type"


def _body(node: Node) -> Node | None:
    body = node.child_by_field_name("body")
    if body is not None:
        return body
    if node.type == "variable_declarator":  # `const f = (a) => ...`
        value = node.child_by_field_name("value")
        return value.child_by_field_name("body") if value is not None else None
    if node.type == "type_spec":  # Go: `type T struct {` -> the field list
        inner = node.child_by_field_name("type")
        if inner is not None:
            for child in inner.named_children:
                if child.type in BODY_TYPES:
                    return child
        return None
    for child in node.named_children:
        if child.type in BODY_TYPES:
            return child
    return None


_GO_SPEC_LISTS = frozenset({"type_declaration", "var_declaration", "const_declaration"})


def _header_span(node: Node, inner: Node, kind: str, data: bytes) -> tuple[int, int]:
    """Byte range of a definition's header: from its first keyword to its body."""
    start = node.start_byte
    parent = node.parent
    if parent is not None and parent.type in _GO_SPEC_LISTS and parent.named_child_count == 1:
        start = parent.start_byte  # `type T struct`, `var V = 1`: the keyword belongs to the spec
    elif node.type == "variable_declarator" and parent is not None:
        start = parent.start_byte  # `export const f = ...` reads better than `f = ...`
        if parent.parent is not None and parent.parent.type == "export_statement":
            start = parent.parent.start_byte
    elif parent is not None and parent.type == "export_statement":
        start = parent.start_byte
    if kind in ("field", "constant", "variable"):
        end = data.find(b"\n", start, node.end_byte)
        end = node.end_byte if end < 0 else end
        return start, min(end, start + MAX_FIELD_CHARS)
    if kind == "type" and inner.type != "type_spec":  # a typedef or alias: the whole of it says what it is
        return start, node.end_byte
    body = _body(inner)
    end = body.start_byte if body is not None else node.end_byte
    if body is None and kind in CLASS_KINDS:
        brace = data.find(b"{", start, node.end_byte)  # a Go interface has no body node
        end = brace if brace >= 0 else end
    while end > start and data[end - 1 : end] in (b" ", b"\t", b"\n", b"\r"):
        end -= 1
    return start, end


# --------------------------------------------------------------------------- imports
