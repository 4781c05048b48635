"""From an import or a name to definitions in the workspace index.

Python imports are resolved to files as the interpreter would find them inside the workspace
(absolute `a.b.c` by the package path, relative `from ..x import y` from the importing
file's package), following re-exports through `__init__.py` a couple of hops. JavaScript and
TypeScript relative specifiers (`./util`, `../lib`) are resolved to files too. Everything
else is resolved by name, preferring definitions whose file path shares the most with the
import's path (Go import paths, Rust `crate::a::b`, Java packages, C includes) and with the
importing file's directory.
"""

from __future__ import annotations

import posixpath
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable

from lsp_server.context.entries import DefinitionRef, FileEntry
from lsp_server.context.imports import Import
from lsp_server.context.index import WorkspaceIndex

MAX_REEXPORT_HOPS = 2
# A name with more definitions than this across the workspace is too ambiguous to guess,
# unless one of them sits in the importing file's own directory.
MAX_AMBIGUOUS = 8
# Past this many definitions of a name, only those in the importer's directory are considered.
MAX_SCAN = 64

_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_SPLIT = re.compile(r"[./:\\]+|::")


def _dir(path: str) -> str:
    return posixpath.dirname(path)


def _module_path(entry: FileEntry) -> str:
    """`pkg/sub/mod.py` -> pkg/sub/mod, `pkg/sub/__init__.py` -> pkg/sub."""
    stem = entry.path.rsplit(".", 1)[0]
    if stem.endswith("/__init__"):
        return stem[: -len("/__init__")]
    return stem


def python_module(
    index: WorkspaceIndex, module: str, *, root: int | None = None, level: int = 0, importer: str | None = None
) -> FileEntry | None:
    """The file of Python module `module` (dotted), absolute or relative to `importer`."""
    if level:
        if importer is None or root is None:
            return None
        base = _dir(importer)
        for _ in range(level - 1):
            base = _dir(base)
        target = posixpath.join(base, *module.split(".")) if module else base
        for candidate in (target + ".py", target + ".pyi", target + "/__init__.py", target + "/__init__.pyi"):
            entry = index.file(root, candidate.lstrip("/"))
            if entry is not None:
                return entry
        return None
    if not module:
        return None
    parts = module.split(".")
    suffix = "/".join(parts)
    matches = [
        e
        for e in index.with_stem(parts[-1])
        if e.language == "python" and (_module_path(e) == suffix or _module_path(e).endswith("/" + suffix))
    ]
    if not matches:
        return None
    # The shallowest match is the import root (`src/pkg/...` or `pkg/...`); ties: the importer's folder.
    matches.sort(key=lambda e: (e.root != root, e.path.count("/"), e.path))
    return matches[0]


def js_module(index: WorkspaceIndex, specifier: str, root: int, importer: str) -> FileEntry | None:
    if not specifier.startswith("."):
        return None
    target = posixpath.normpath(posixpath.join(_dir(importer), specifier))
    if target.startswith(".."):
        return None
    candidates = (
        [target] + [target + ext for ext in _JS_EXTENSIONS] + [f"{target}/index{ext}" for ext in _JS_EXTENSIONS]
    )
    if target.endswith((".js", ".jsx", ".mjs", ".cjs")):  # TypeScript imports `./x.js` for `./x.ts`
        stem = target.rsplit(".", 1)[0]
        candidates += [stem + ext for ext in (".ts", ".tsx", ".mts", ".cts")]
    for candidate in candidates:
        entry = index.file(root, candidate)
        if entry is not None:
            return entry
    return None


def top_level(entry: FileEntry, name: str) -> DefinitionRef | None:
    for i, (n, parent) in enumerate(zip(entry.names, entry.parents, strict=True)):
        if n == name and parent is None:
            return entry.definition(i)
    return None


def _python_name(index: WorkspaceIndex, entry: FileEntry, name: str, hops: int) -> DefinitionRef | None:
    found = top_level(entry, name)
    if found is not None or hops <= 0:
        return found
    for imp in entry.imports:  # re-exports: `from .sub import name` in a package's __init__
        for imported, local in imp.names:
            if local == name or imported == "*":
                target = python_module(index, imp.module, root=entry.root, level=imp.level, importer=entry.path)
                if target is None and imp.level:
                    target = python_module(
                        index,
                        f"{imp.module}.{imported}" if imp.module else imported,
                        root=entry.root,
                        level=imp.level,
                        importer=entry.path,
                    )
                if target is not None and target is not entry:
                    hit = _python_name(index, target, imported if imported != "*" else name, hops - 1)
                    if hit is not None:
                        return hit
    return None


def _path_affinity(path: str, hint_parts: list[str], importer_dir: str) -> tuple[int, int, int]:
    """Higher is better: shared components with the import path, same directory, shallowness."""
    parts = path.rsplit(".", 1)[0].split("/")
    shared = sum(1 for p in hint_parts if p in parts)
    same_dir = int(_dir(path) == importer_dir)
    return shared, same_dir, -path.count("/")


class GenerationMemo:
    """Answers of one index generation (a fold of new records starts a new one): the names near
    the cursor and the file's imports are asked again on every keystroke."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._by_index: weakref.WeakKeyDictionary[WorkspaceIndex, tuple[int, OrderedDict[tuple[object, ...], object]]]
        self._by_index = weakref.WeakKeyDictionary()

    def _table(self, index: WorkspaceIndex) -> OrderedDict[tuple[object, ...], object]:
        generation, table = self._by_index.get(index, (-1, OrderedDict()))
        if generation != index.generation:
            table = OrderedDict()
            self._by_index[index] = (index.generation, table)
        return table

    def get(self, index: WorkspaceIndex, key: tuple[object, ...]) -> tuple[bool, object]:
        with self._lock:
            table = self._table(index)
            if key in table:
                table.move_to_end(key)
                return True, table[key]
            return False, None

    def put(self, index: WorkspaceIndex, key: tuple[object, ...], value: object) -> None:
        with self._lock:
            table = self._table(index)
            table[key] = value
            while len(table) > self.size:
                table.popitem(last=False)


_MEMO = GenerationMemo()


def by_name(
    index: WorkspaceIndex,
    name: str,
    *,
    hint: str = "",
    importer: str | None = None,
    root: int | None = None,
    exclude_file: int | None = None,
    members: bool = False,
) -> DefinitionRef | None:
    """The most plausible definition of `name`: top-level ones (class members too when
    `members`), nearest the hint path and the importer, None when hopelessly ambiguous."""
    key = ("name", name, hint, importer, root, exclude_file, members)
    hit, value = _MEMO.get(index, key)
    if hit:
        return value  # type: ignore[return-value]
    found = _by_name(index, name, hint=hint, importer=importer, root=root, exclude_file=exclude_file, members=members)
    _MEMO.put(index, key, found)
    return found


def _by_name(
    index: WorkspaceIndex,
    name: str,
    *,
    hint: str,
    importer: str | None,
    root: int | None,
    exclude_file: int | None,
    members: bool,
) -> DefinitionRef | None:
    importer_dir = _dir(importer) if importer else ""
    found = index.definitions_named(name, top_level=not members, limit=MAX_SCAN)
    if found is None:
        # Defined all over the workspace: only a definition next to the importer is a fair guess.
        if root is None or importer is None:
            return None
        found = index.definitions_named(name, top_level=not members, directory=(root, importer_dir), limit=MAX_SCAN)
        if not found:
            return None
    found = [d for d in found if d.entry.file_id != exclude_file]
    if not found:
        return None
    hint_parts = [p for p in _SPLIT.split(hint) if p and p not in ("crate", "super", "self", "std")]
    ranked = sorted(
        found,
        key=lambda d: (
            tuple(-x for x in _path_affinity(d.entry.path, hint_parts, importer_dir)),
            d.entry.root != root,
            d.entry.path,
            d.line,
        ),
    )
    best = ranked[0]
    if len(found) > MAX_AMBIGUOUS:
        shared, same_dir, _ = _path_affinity(best.entry.path, hint_parts, importer_dir)
        if not same_dir and not shared:
            return None
    return best


def resolve_import(
    index: WorkspaceIndex,
    imp: Import,
    language: str,
    *,
    root: int | None,
    importer: str | None,
    wanted: Iterable[str] | None = None,
) -> list[tuple[str, DefinitionRef]]:
    """(local name, definition) for the names an import brings in. `wanted` limits a module import
    (`import x as y`, `import * as ns`, a Go package) to the attributes used as `y.attr`."""
    wanted_key = tuple(wanted or ())
    key = ("import", imp, language, root, importer, wanted_key)
    hit, value = _MEMO.get(index, key)
    if hit:
        return value  # type: ignore[return-value]
    found = _resolve_import(index, imp, language, root=root, importer=importer, wanted=wanted_key)
    _MEMO.put(index, key, found)
    return found


def _resolve_import(
    index: WorkspaceIndex,
    imp: Import,
    language: str,
    *,
    root: int | None,
    importer: str | None,
    wanted: tuple[str, ...],
) -> list[tuple[str, DefinitionRef]]:
    out: list[tuple[str, DefinitionRef]] = []
    wanted_names = list(wanted or ())
    exclude = None
    if root is not None and importer is not None:
        current = index.file(root, importer)
        exclude = current.file_id if current is not None else None
    if language == "python":
        target = python_module(index, imp.module, root=root, level=imp.level, importer=importer)
        if imp.names:
            for imported, local in imp.names:
                if imported == "*":
                    continue
                hit = _python_name(index, target, imported, MAX_REEXPORT_HOPS) if target is not None else None
                if hit is None and target is None and not imp.level:
                    hit = by_name(index, imported, hint=imp.module, importer=importer, root=root, exclude_file=exclude)
                if hit is not None:
                    out.append((local, hit))
        elif target is not None:
            for attr in wanted_names:
                hit = _python_name(index, target, attr, MAX_REEXPORT_HOPS)
                if hit is not None:
                    out.append((attr, hit))
        return out
    target = None
    if language in ("javascript", "typescript", "tsx") and root is not None and importer is not None:
        target = js_module(index, imp.module, root, importer)
    names = [(n, local) for n, local in imp.names if n != "*"]
    if not names and wanted_names:
        names = [(attr, attr) for attr in wanted_names]
    for imported, local in names:
        hit = None
        if target is not None:
            hit = top_level(target, imported) if imported != "default" else None
        if hit is None and imported != "default":
            hit = by_name(index, imported, hint=imp.module, importer=importer, root=root, exclude_file=exclude)
        if hit is not None:
            out.append((local, hit))
    return out
