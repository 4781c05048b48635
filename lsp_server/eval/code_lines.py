"""Completion tasks cut from real code on this machine, no download needed.

- **lines**: single-line statements of the Python standard library's own modules (tests,
  IDLE, lib2to3 and demos left out), blanked after their indentation; the answer is the
  statement. What a user meets when the cursor sits on a fresh line in real code.
- **crossfile**: call sites in real multi-file packages installed next to ninetyten (its own
  dependencies: click, rich, pydantic, ...). A function or class imported from a sibling
  module of the same package is called on one line with arguments; the line is cut after the
  opening parenthesis and the answer is the rest of the line. Only the edited file is open, so
  the definition is visible to the model only through repository context.

Both are seeded samples, one task per file (files in a seeded random order; packages taken
in turn): the same `--seed` and `--limit` give the same tasks on the same Python and package
versions, and a smaller limit picks the first tasks of a larger one.
"""

from __future__ import annotations

import ast
import importlib.util
import random
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Suite = Literal["lines", "crossfile"]

# The project's own dependencies that are multi-file, pure-Python packages (those installed
# are used). Extension modules and single-file packages have no sibling modules to import from.
CROSSFILE_PACKAGES: tuple[str, ...] = (
    "aiohttp",
    "anyio",
    "attr",
    "cattrs",
    "click",
    "fastapi",
    "httpx",
    "huggingface_hub",
    "jinja2",
    "lsprotocol",
    "pydantic",
    "pygls",
    "rich",
    "starlette",
)
_STDLIB_SKIP = (
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "turtledemo",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "ensurepip",
    "pydoc_data",
)
MAX_EXPECTED_CHARS = 80
MAX_FILE_BYTES = 256 * 1024


@dataclass(frozen=True)
class LineTask:
    task_id: str
    suite: Suite
    root: Path  # the folder the path is relative to (a package's parent for crossfile)
    path: str  # '/'-separated, relative to root
    text: str  # the document with the answer cut out
    line: int  # cursor, 0-based, in code points
    character: int
    expected: str
    package: str = ""  # crossfile: the package the task comes from
    symbol: str = ""  # crossfile: the function or class called
    defined_in: str = ""  # crossfile: its module, relative to root


def _round_robin(sources: list[Iterator[LineTask]], limit: int | None) -> list[LineTask]:
    """One task from each source in turn until `limit` (lazily: only what is needed is read)."""
    out: list[LineTask] = []
    live = list(sources)
    while live and (not limit or len(out) < limit):
        for source in list(live):
            task = next(source, None)
            if task is None:
                live.remove(source)
                continue
            out.append(task)
            if limit and len(out) >= limit:
                break
    return out


def _shuffled(items: list[Path], rng: random.Random) -> list[Path]:
    items = list(items)
    rng.shuffle(items)
    return items


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


# --------------------------------------------------------------------------- lines


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_line_tasks(limit: int | None, seed: int = 0, root: Path | None = None) -> list[LineTask]:
    """Single-line statements of standard-library modules, blanked after their indentation:
    one per module, the modules in a seeded random order."""
    root = root or stdlib_root()
    paths = [
        p
        for p in sorted(root.rglob("*.py"))
        if not any(part in _STDLIB_SKIP or part.startswith("test") for part in p.relative_to(root).parts)
    ]

    def tasks() -> Iterator[LineTask]:
        for path in _shuffled(paths, random.Random(seed)):
            rel = path.relative_to(root).as_posix()
            task = _line_task(root, path, rel, random.Random(f"{seed}:{rel}"))
            if task is not None:
                yield task

    return _round_robin([tasks()], limit)


def _line_task(root: Path, path: Path, rel: str, rng: random.Random) -> LineTask | None:
    text = _read(path)
    if text is None:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    lines = text.split("\n")
    skip = _docstring_lines(tree)
    candidates: list[int] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or node.end_lineno != node.lineno or node.lineno in skip:
            continue
        if isinstance(node, (ast.Pass, ast.Import, ast.ImportFrom)):
            continue  # a `pass` or an import is not what completion is for
        index = node.lineno - 1
        if index < 5 or index >= len(lines):
            continue
        statement = lines[index].strip()
        if len(statement) < 4 or statement.startswith("#") or ";" in statement:
            continue
        candidates.append(index)
    if not candidates:
        return None
    index = rng.choice(sorted(set(candidates)))
    row = lines[index]
    indent = row[: len(row) - len(row.lstrip())]
    document = "\n".join([*lines[:index], indent, *lines[index + 1 :]])
    return LineTask(f"lines/{rel}:{index + 1}", "lines", root, rel, document, index, len(indent), row.strip())


# --------------------------------------------------------------------------- crossfile


def package_dir(name: str) -> Path | None:
    """Where an installed package's modules are (None: not installed, or not a package)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of a package (relative to its parent)."""
    out: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _top_level_definitions(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        text = _read(path)
        names: set[str] = set()
        if text is not None:
            try:
                tree = ast.parse(text)
                names = {
                    n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                }
            except (SyntaxError, ValueError):
                pass
        cache[path] = names
    return cache[path]


def _imported_from_siblings(
    tree: ast.Module,
    module: list[str],
    is_package: bool,
    modules: dict[str, Path],
    current: Path,
    cache: dict[Path, set[str]],
) -> dict[str, tuple[str, Path]]:
    """Local name -> (defined name, file) for names imported from another module of the package."""
    found: dict[str, tuple[str, Path]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = module if is_package else module[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        path = modules.get(target)
        if path is None or path == current:
            continue
        defined = _top_level_definitions(path, cache)
        for alias in node.names:
            if alias.name in defined:
                found[alias.asname or alias.name] = (alias.name, path)
    return found


def crossfile_tasks(limit: int | None, seed: int = 0, packages: tuple[str, ...] = CROSSFILE_PACKAGES) -> list[LineTask]:
    """Call sites of sibling-module functions and classes, cut after the opening parenthesis:
    one per file, files in a seeded random order, packages taken in turn."""
    rng = random.Random(seed)
    sources = []
    for name in sorted(packages):
        package = package_dir(name)
        if package is not None:
            sources.append(_package_tasks(name, package, random.Random(f"{seed}:{name}")))
    rng.shuffle(sources)
    return _round_robin(sources, limit)


def _package_tasks(name: str, package: Path, rng: random.Random) -> Iterator[LineTask]:
    root = package.parent
    modules = _module_files(package)
    cache: dict[Path, set[str]] = {}
    for dotted, path in sorted(modules.items(), key=lambda item: rng.random()):
        task = _call_task(name, root, dotted, path, modules, cache, rng)
        if task is not None:
            yield task


def _call_task(
    name: str,
    root: Path,
    dotted: str,
    path: Path,
    modules: dict[str, Path],
    cache: dict[Path, set[str]],
    rng: random.Random,
) -> LineTask | None:
    text = _read(path)
    if text is None:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    imported = _imported_from_siblings(tree, dotted.split("."), path.name == "__init__.py", modules, path, cache)
    if not imported:
        return None
    lines = text.split("\n")
    candidates: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    for call in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset)):
        func = call.func
        if not isinstance(func, ast.Name) or func.id not in imported or func.id in seen:
            continue
        if not (call.args or call.keywords) or call.end_lineno != call.lineno or func.end_col_offset is None:
            continue
        row = lines[call.lineno - 1]
        # ast columns are UTF-8 byte offsets; these tasks keep to ASCII lines.
        if not row.isascii() or row[func.end_col_offset : func.end_col_offset + 1] != "(":
            continue
        cut = func.end_col_offset + 1
        expected = row[cut:].rstrip()
        if not expected.strip() or len(expected) > MAX_EXPECTED_CHARS:
            continue
        seen.add(func.id)  # the first call of a name: later ones could copy its arguments
        candidates.append((call.lineno - 1, cut, func.id))
    if not candidates:
        return None
    index, cut, local = rng.choice(candidates)
    row = lines[index]
    document = "\n".join([*lines[:index], row[:cut], *lines[index + 1 :]])
    defined, where = imported[local]
    rel = path.relative_to(root).as_posix()
    return LineTask(
        f"crossfile/{rel}:{index + 1}",
        "crossfile",
        root,
        rel,
        document,
        index,
        cut,
        row[cut:].rstrip(),
        name,
        defined,
        where.relative_to(root).as_posix(),
    )
