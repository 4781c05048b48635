"""What a file imports, read from its syntax tree, for each language the outline knows."""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node


@dataclass(frozen=True, slots=True)
class Import:
    module: str  # as written: "os.path", "./util", "example.com/x/util", "std::collections", "foo.h"
    names: tuple[tuple[str, str], ...]  # (imported name, local name); empty: the module itself
    alias: str | None  # the module's local name (`import numpy as np`, `import * as ns`, a Go alias)
    level: int  # Python: the leading dots of a relative import
    line: int


def text_of(data: bytes, start: int, end: int) -> str:
    return data[start:end].decode("utf-8", "replace")


def read_imports(nodes: list[Node], data: bytes, language: str) -> list[Import]:
    reader = _IMPORT_READERS.get(language, _read_js)
    out: list[Import] = []
    for node in sorted(nodes, key=lambda n: n.start_byte):
        out.extend(reader(node, data))
    return out


def _node_text(node: Node | None, data: bytes) -> str:
    return "" if node is None else text_of(data, node.start_byte, node.end_byte)


def _read_python(node: Node, data: bytes) -> list[Import]:
    line = node.start_point.row
    if node.type == "import_statement":
        out = []
        for child in node.named_children:
            if child.type == "dotted_name":
                out.append(Import(_node_text(child, data), (), None, 0, line))
            elif child.type == "aliased_import":
                out.append(
                    Import(
                        _node_text(child.child_by_field_name("name"), data),
                        (),
                        _node_text(child.child_by_field_name("alias"), data),
                        0,
                        line,
                    )
                )
        return out
    if node.type == "future_import_statement":
        return []
    module_node = node.child_by_field_name("module_name")
    module, level = "", 0
    if module_node is not None:
        text = _node_text(module_node, data)
        level = len(text) - len(text.lstrip("."))
        module = text[level:]
    names: list[tuple[str, str]] = []
    for child in node.children_by_field_name("name"):
        if child.type == "aliased_import":
            name = _node_text(child.child_by_field_name("name"), data)
            names.append((name, _node_text(child.child_by_field_name("alias"), data)))
        else:
            name = _node_text(child, data)
            names.append((name, name))
    if any(child.type == "wildcard_import" for child in node.named_children):
        names.append(("*", "*"))
    return [Import(module, tuple(names), None, level, line)]


def _string_value(node: Node | None, data: bytes) -> str:
    return _node_text(node, data).strip("'\"`")


def _read_js(node: Node, data: bytes) -> list[Import]:
    line = node.start_point.row
    if node.type != "import_statement":  # const {a, b: c} = require('x')
        declarator = next((c for c in node.named_children if c.type == "variable_declarator"), None)
        if declarator is None:
            return []
        value = declarator.child_by_field_name("value")
        args = value.child_by_field_name("arguments") if value is not None else None
        source = next((c for c in args.named_children if c.type == "string"), None) if args is not None else None
        if source is None:
            return []
        target = declarator.child_by_field_name("name")
        if target is not None and target.type == "identifier":
            return [Import(_string_value(source, data), (), _node_text(target, data), 0, line)]
        names = []
        for child in target.named_children if target is not None else ():
            if child.type == "shorthand_property_identifier_pattern":
                names.append((_node_text(child, data), _node_text(child, data)))
            elif child.type == "pair_pattern":
                names.append(
                    (
                        _node_text(child.child_by_field_name("key"), data),
                        _node_text(child.child_by_field_name("value"), data),
                    )
                )
        return [Import(_string_value(source, data), tuple(names), None, 0, line)]
    source_text = _string_value(node.child_by_field_name("source"), data)
    names = []
    alias = None
    clause = next((c for c in node.named_children if c.type == "import_clause"), None)
    for child in clause.named_children if clause is not None else ():
        if child.type == "identifier":
            names.append(("default", _node_text(child, data)))
        elif child.type == "namespace_import":
            alias = _node_text(next((c for c in child.named_children if c.type == "identifier"), None), data)
        elif child.type == "named_imports":
            for spec in child.named_children:
                if spec.type != "import_specifier":
                    continue
                name = _node_text(spec.child_by_field_name("name"), data)
                local = _node_text(spec.child_by_field_name("alias"), data) or name
                names.append((name, local))
    return [Import(source_text, tuple(names), alias, 0, line)]


def _read_go(node: Node, data: bytes) -> list[Import]:
    path = _string_value(node.child_by_field_name("path"), data)
    alias = _node_text(node.child_by_field_name("name"), data) or None
    return [Import(path, (), alias, 0, node.start_point.row)]


def _flatten_use(node: Node, prefix: str, data: bytes, out: list[tuple[str, str, str]]) -> None:
    """Rust use trees -> (path, name, local)."""
    kind = node.type
    if kind in ("identifier", "self", "crate", "super", "metavariable"):
        name = _node_text(node, data)
        out.append((prefix, name, name))
    elif kind == "scoped_identifier":
        path = _node_text(node.child_by_field_name("path"), data)
        name = _node_text(node.child_by_field_name("name"), data)
        out.append((_join_path(prefix, path), name, name))
    elif kind == "use_as_clause":
        inner = node.child_by_field_name("path")
        alias = _node_text(node.child_by_field_name("alias"), data)
        sub: list[tuple[str, str, str]] = []
        if inner is not None:
            _flatten_use(inner, prefix, data, sub)
        out.extend((p, n, alias) for p, n, _ in sub)
    elif kind == "scoped_use_list":
        path = _node_text(node.child_by_field_name("path"), data)
        inner = node.child_by_field_name("list")
        if inner is not None:
            _flatten_use(inner, _join_path(prefix, path), data, out)
    elif kind == "use_list":
        for child in node.named_children:
            _flatten_use(child, prefix, data, out)
    elif kind == "use_wildcard":
        path = _node_text(node.named_children[0], data) if node.named_children else ""
        out.append((_join_path(prefix, path), "*", "*"))


def _join_path(prefix: str, path: str) -> str:
    return f"{prefix}::{path}" if prefix and path else prefix or path


def _read_rust(node: Node, data: bytes) -> list[Import]:
    argument = node.child_by_field_name("argument")
    if argument is None:
        return []
    flat: list[tuple[str, str, str]] = []
    _flatten_use(argument, "", data, flat)
    by_path: dict[str, list[tuple[str, str]]] = {}
    for path, name, local in flat:
        by_path.setdefault(path, []).append((name, local))
    return [Import(path, tuple(names), None, 0, node.start_point.row) for path, names in by_path.items()]


def _read_java(node: Node, data: bytes) -> list[Import]:
    target = next((c for c in node.named_children if c.type in ("scoped_identifier", "identifier")), None)
    if target is None:
        return []
    text = _node_text(target, data)
    if any(c.type == "asterisk" for c in node.named_children):
        return [Import(text, (("*", "*"),), None, 0, node.start_point.row)]
    module, _, name = text.rpartition(".")
    return [Import(module, ((name, name),), None, 0, node.start_point.row)]


def _read_c(node: Node, data: bytes) -> list[Import]:
    path = node.child_by_field_name("path")
    if path is None:
        return []
    text = _node_text(path, data)
    if path.type == "system_lib_string":
        return [Import(text.strip("<>"), (), None, 0, node.start_point.row)]
    return [Import(text.strip('"'), (), None, 1, node.start_point.row)]  # level 1: relative to the file


_IMPORT_READERS = {
    "python": _read_python,
    "go": _read_go,
    "rust": _read_rust,
    "java": _read_java,
    "c": _read_c,
    "cpp": _read_c,
}
