"""The languages the context engine understands: file extensions, grammars and queries.

Grammars come from the tree-sitter project's own per-language wheels on PyPI
(`tree-sitter-python`, `tree-sitter-javascript`, ...): each ships its compiled parser inside
the wheel, so nothing is downloaded at run time (see docs/context-engine.md for why not a
language pack). A grammar is loaded on first use; a language whose package is missing is
simply not indexed.

The queries capture definitions as `@definition.<kind>` with their `@name`, and imports. They
take their node types from the grammars' own `tags.scm` files, extended with what completion
context needs and tags leave out: class members (fields, method signatures in interfaces),
containers for nesting (Rust `impl`), and imports, which tags do not describe at all.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from tree_sitter import Language, Parser, Query, QueryCursor, QueryError

log = logging.getLogger(__name__)

# Kinds a definition can have. "Class-like" kinds own members: their snippet is an outline.
CLASS_KINDS = frozenset({"class", "struct", "interface", "trait", "enum", "type", "impl"})
FUNCTION_KINDS = frozenset({"function", "method", "macro"})
MEMBER_KINDS = frozenset({"field", "method"})

# Node types that hold a definition's body: the signature is everything before it.
BODY_TYPES = frozenset(
    {
        "block",
        "class_body",
        "statement_block",
        "compound_statement",
        "field_declaration_list",
        "declaration_list",
        "interface_body",
        "enum_body",
        "object_type",
        "enum_variant_list",
        "constructor_body",
        "enum_class_body",
        "annotation_type_body",
        "record_body",
        "enumerator_list",
    }
)

_PYTHON_DEFS = """
(function_definition name: (identifier) @name) @definition.function
(class_definition name: (identifier) @name) @definition.class
(class_definition body: (block (expression_statement (assignment left: (identifier) @name) @definition.field)))
(module (expression_statement (assignment left: (identifier) @name) @definition.constant))
"""
_PYTHON_IMPORTS = """
(import_statement) @import
(import_from_statement) @import
(future_import_statement) @import
"""

_JS_DEFS = """
(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (_) @name) @definition.class
(method_definition name: (_) @name) @definition.method
(variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)]) @definition.function
"""
_JS_ONLY_DEFS = """
(field_definition property: (property_identifier) @name) @definition.field
"""
_TS_DEFS = """
(abstract_class_declaration name: (type_identifier) @name) @definition.class
(interface_declaration name: (type_identifier) @name) @definition.interface
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(function_signature name: (identifier) @name) @definition.function
(method_signature name: (property_identifier) @name) @definition.method
(abstract_method_signature name: (property_identifier) @name) @definition.method
(public_field_definition name: (property_identifier) @name) @definition.field
(property_signature name: (property_identifier) @name) @definition.field
"""
# tree-sitter queries read best one pattern per line, however long
_JS_IMPORTS = """
(import_statement) @import
(lexical_declaration (variable_declarator value: (call_expression function: (identifier) @fn (#eq? @fn "require")))) @import
(variable_declaration (variable_declarator value: (call_expression function: (identifier) @fn (#eq? @fn "require")))) @import
"""  # noqa: E501

_GO_DEFS = """
(function_declaration name: (identifier) @name) @definition.function
(method_declaration name: (field_identifier) @name) @definition.method
(type_spec name: (type_identifier) @name) @definition.type
(method_elem name: (field_identifier) @name) @definition.method
(field_declaration name: (field_identifier) @name) @definition.field
(source_file (const_declaration (const_spec name: (identifier) @name) @definition.constant))
(source_file (var_declaration (var_spec name: (identifier) @name) @definition.variable))
"""
_GO_IMPORTS = "(import_spec) @import"

_RUST_DEFS = """
(function_item name: (identifier) @name) @definition.function
(function_signature_item name: (identifier) @name) @definition.method
(struct_item name: (type_identifier) @name) @definition.struct
(union_item name: (type_identifier) @name) @definition.struct
(enum_item name: (type_identifier) @name) @definition.enum
(trait_item name: (type_identifier) @name) @definition.trait
(type_item name: (type_identifier) @name) @definition.type
(impl_item type: (_) @name) @definition.impl
(macro_definition name: (identifier) @name) @definition.macro
(const_item name: (identifier) @name) @definition.constant
(static_item name: (identifier) @name) @definition.constant
(field_declaration name: (field_identifier) @name) @definition.field
"""
_RUST_IMPORTS = "(use_declaration) @import"

_JAVA_DEFS = """
(class_declaration name: (identifier) @name) @definition.class
(record_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.interface
(annotation_type_declaration name: (identifier) @name) @definition.interface
(enum_declaration name: (identifier) @name) @definition.enum
(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.method
(field_declaration declarator: (variable_declarator name: (identifier) @name)) @definition.field
"""
_JAVA_IMPORTS = "(import_declaration) @import"

_C_DEFS = """
(function_declarator declarator: (identifier) @name) @definition.function
(struct_specifier name: (type_identifier) @name body: (_)) @definition.struct
(union_specifier name: (type_identifier) @name body: (_)) @definition.struct
(enum_specifier name: (type_identifier) @name body: (_)) @definition.enum
(type_definition declarator: (type_identifier) @name) @definition.type
(preproc_def name: (identifier) @name) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro
(field_declaration declarator: (field_identifier) @name) @definition.field
"""
_CPP_DEFS = (
    _C_DEFS
    + """
(class_specifier name: (type_identifier) @name body: (_)) @definition.class
(function_declarator declarator: (field_identifier) @name) @definition.method
(function_declarator declarator: (qualified_identifier scope: (_) @scope name: (identifier) @name)) @definition.method
"""
)
_C_IMPORTS = "(preproc_include) @import"


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    extensions: tuple[str, ...]
    module: str  # the grammar's Python package
    function: str  # its function that returns the language pointer
    definitions: str
    imports: str


LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec("python", (".py", ".pyi"), "tree_sitter_python", "language", _PYTHON_DEFS, _PYTHON_IMPORTS),
    LanguageSpec(
        "javascript",
        (".js", ".jsx", ".mjs", ".cjs"),
        "tree_sitter_javascript",
        "language",
        _JS_DEFS + _JS_ONLY_DEFS,
        _JS_IMPORTS,
    ),
    LanguageSpec(
        "typescript",
        (".ts", ".mts", ".cts"),
        "tree_sitter_typescript",
        "language_typescript",
        _JS_DEFS + _TS_DEFS,
        _JS_IMPORTS,
    ),
    LanguageSpec("tsx", (".tsx",), "tree_sitter_typescript", "language_tsx", _JS_DEFS + _TS_DEFS, _JS_IMPORTS),
    LanguageSpec("go", (".go",), "tree_sitter_go", "language", _GO_DEFS, _GO_IMPORTS),
    LanguageSpec("rust", (".rs",), "tree_sitter_rust", "language", _RUST_DEFS, _RUST_IMPORTS),
    LanguageSpec("java", (".java",), "tree_sitter_java", "language", _JAVA_DEFS, _JAVA_IMPORTS),
    LanguageSpec("c", (".c", ".h"), "tree_sitter_c", "language", _C_DEFS, _C_IMPORTS),
    LanguageSpec(
        "cpp",
        (".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp"),
        "tree_sitter_cpp",
        "language",
        _CPP_DEFS,
        _C_IMPORTS,
    ),
)

_BY_NAME = {spec.name: spec for spec in LANGUAGES}
_BY_EXTENSION = {ext: spec.name for spec in LANGUAGES for ext in spec.extensions}
EXTENSIONS = frozenset(_BY_EXTENSION)


def language_for_path(path: str) -> str | None:
    """The language of a file from its name ("python", "tsx", ...), or None if not indexed."""
    dot = path.rfind(".")
    if dot < 0 or "/" in path[dot:]:
        return None
    return _BY_EXTENSION.get(path[dot:].lower())


def spec(name: str) -> LanguageSpec:
    return _BY_NAME[name]


@dataclass(frozen=True)
class Grammar:
    """A loaded language with its compiled queries. Queries are immutable and thread-safe;
    parsers and cursors are not, so `Tools` hands out one set per thread."""

    name: str
    language: Language
    definitions: Query
    imports: Query


@cache
def grammar(name: str) -> Grammar | None:
    """The grammar for `name`, or None when its package is not installed or does not load."""
    lang_spec = _BY_NAME.get(name)
    if lang_spec is None:
        return None
    try:
        module: Any = importlib.import_module(lang_spec.module)
        language = Language(getattr(module, lang_spec.function)())
        return Grammar(name, language, Query(language, lang_spec.definitions), Query(language, lang_spec.imports))
    except (ImportError, AttributeError, ValueError, QueryError) as exc:
        # A grammar release that renamed a node type: that language is left unindexed, the rest work.
        log.warning("context: %s grammar unavailable (%s)", name, exc)
        return None


# Depth (in syntax nodes below the root) where a definition or an import pattern may start.
# Python: module > decorated_definition > class > block > decorated_definition > function is 5,
# a nested class's methods 9; C++: namespace > declaration_list > class > field list > field >
# declarator is 6. Imports: `try:` / `#ifdef` / Go's import lists put them at depth 2-3.
MAX_DEFINITION_DEPTH = 10
MAX_IMPORT_DEPTH = 3
MAX_MEMBER_DEPTH = 4


class Tools:
    """A parser and query cursors per (thread, language): tree-sitter parsers keep state."""

    def __init__(self) -> None:
        self._local = threading.local()

    def parser(self, name: str) -> Parser | None:
        parsers: dict[str, Parser] = self._local.__dict__.setdefault("parsers", {})
        if name not in parsers:
            loaded = grammar(name)
            if loaded is None:
                return None
            parsers[name] = Parser(loaded.language)
        return parsers[name]

    def cursors(self, name: str) -> tuple[QueryCursor, QueryCursor] | None:
        cursors: dict[str, tuple[QueryCursor, QueryCursor]] = self._local.__dict__.setdefault("cursors", {})
        if name not in cursors:
            loaded = grammar(name)
            if loaded is None:
                return None
            definitions, imports = QueryCursor(loaded.definitions), QueryCursor(loaded.imports)
            # Deeper than this is inside a function body (dropped anyway): not walking there
            # makes the queries several times faster on real files.
            definitions.set_max_start_depth(MAX_DEFINITION_DEPTH)
            imports.set_max_start_depth(MAX_IMPORT_DEPTH)
            cursors[name] = (definitions, imports)
        return cursors[name]

    def class_cursor(self, name: str) -> QueryCursor | None:
        """A definitions cursor for one class node: its members are at most 4 levels down
        (class > body > decorated > function; C++ class > list > field > declarator)."""
        cursors: dict[str, QueryCursor] = self._local.__dict__.setdefault("class_cursors", {})
        if name not in cursors:
            loaded = grammar(name)
            if loaded is None:
                return None
            cursor = QueryCursor(loaded.definitions)
            cursor.set_max_start_depth(MAX_MEMBER_DEPTH)
            cursors[name] = cursor
        return cursors[name]


TOOLS = Tools()
