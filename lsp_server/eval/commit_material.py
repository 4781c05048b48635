"""The installed material the commit-message eval builds its commits from: the Python
modules and test files of the project's dependencies (read and parsed when first picked),
their package metadata (README, declared requirements), and the helpers that edit them."""

from __future__ import annotations

import ast
import importlib.metadata
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lsp_server.eval.code_lines import package_dir

_T = TypeVar("_T")

# Pure-Python packages that come with the project's own dependencies (pygls, httpx, pydantic,
# rich, huggingface_hub, matplotlib, ...): whatever of these is installed is the pool.
SOURCE_PACKAGES = (
    "rich",
    "httpx",
    "httpcore",
    "anyio",
    "pygls",
    "platformdirs",
    "filelock",
    "markdown_it",
    "h11",
    "idna",
    "attr",
    "cattrs",
    "packaging",
    "dateutil",
    "pyparsing",
    "tqdm",
    "fsspec",
    "huggingface_hub",
    "pygments",
    "yaml",
    "lsprotocol",
    "watchfiles",
    "certifi",
)
# Packages whose wheels ship their test suites.
TEST_PACKAGES = ("numpy", "matplotlib")
MIN_SOURCE_BYTES, MAX_SOURCE_BYTES = 1_500, 60_000


class CaseError(Exception):
    """No case can be built (nothing suitable installed)."""


@dataclass(frozen=True)
class CommitCase:
    id: str
    kind: str
    before: dict[str, str]  # path -> text of the first commit
    after: dict[str, str | None]  # path -> text staged for the commit under test (None: deleted)
    targets: tuple[str, ...]  # what a subject that says what changed names (any one of them)
    types: tuple[str, ...]  # conventional-commit types that fit the change


@dataclass(frozen=True)
class Module:
    path: str  # inside the repository: "rich/console.py"
    text: str
    tree: ast.Module


@dataclass(frozen=True)
class Function:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    parent: str | None  # the class it is a method of

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def qualified(self) -> str:
        return f"{self.parent}.{self.name}" if self.parent else self.name

    @property
    def start(self) -> int:  # 0-based first line, decorators included
        lines = [d.lineno for d in self.node.decorator_list] + [self.node.lineno]
        return min(lines) - 1


def _module_files(package: str, *, tests: bool = False) -> list[tuple[str, Path]]:
    """(path in the repository, file) of a package's modules, or of its test files."""
    root = package_dir(package)
    if root is None:
        return []
    out = []
    for path in sorted(root.rglob("test_*.py" if tests else "*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if not tests and ("/tests/" in rel or "/testing/" in rel or path.name.startswith("test_")):
            continue
        try:
            if not MIN_SOURCE_BYTES <= path.stat().st_size <= MAX_SOURCE_BYTES:
                continue
        except OSError:
            continue
        out.append((rel, path))
    return out


def _load(rel: str, path: Path) -> Module | None:
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    if "\t" in text or "\r" in text:
        return None
    return Module(rel, text, tree)


def functions(module: Module) -> list[Function]:
    out = []
    for node in module.tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(Function(node, None))
        elif isinstance(node, ast.ClassDef):
            out += [Function(n, node.name) for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return out


def has_docstring(fn: Function) -> bool:
    return ast.get_docstring(fn.node, clean=False) is not None


def body_line(fn: Function, *, after_docstring: bool = True) -> int | None:
    """0-based line of the body's first statement (after its docstring), if it starts a line."""
    body = fn.node.body
    first = body[0]
    if after_docstring and has_docstring(fn):
        if len(body) < 2:
            return None
        first = body[1]
    if first.lineno <= fn.node.lineno or first.col_offset == 0:
        return None  # a one-line function
    return first.lineno - 1


def indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def replace_lines(text: str, start: int, end: int, new: list[str]) -> str:
    lines = text.split("\n")
    return "\n".join(lines[:start] + new + lines[end:])


def fresh(name: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is None


class Pool:
    """The installed material: files listed once, each read and parsed when first picked."""

    def __init__(self) -> None:
        self.files = [f for p in SOURCE_PACKAGES for f in _module_files(p)]
        self.test_files = [f for p in TEST_PACKAGES for f in _module_files(p, tests=True)]
        self.dists = sorted(
            (d for d in importlib.metadata.distributions() if _usable_dist(d)), key=lambda d: d.metadata["Name"].lower()
        )
        self._cache: dict[str, Module | None] = {}
        if not self.files:
            raise CaseError("no Python modules of the project's dependencies are installed to build commits from")

    def load(self, rel: str, path: Path) -> Module | None:
        if rel not in self._cache:
            self._cache[rel] = _load(rel, path)
        return self._cache[rel]

    def module(self, rng: random.Random) -> Module:
        for _ in range(20):
            found = self.load(*rng.choice(self.files))
            if found is not None:
                return found
        raise CaseError("the installed modules cannot be read")

    def test_module(self, rng: random.Random) -> Module | None:
        if not self.test_files:
            return None
        found = self.load(*rng.choice(self.test_files))
        return found if found is not None and found.text.count("\ndef test_") >= 2 else None

    def siblings(self, module: Module, rng: random.Random, count: int = 5) -> list[Module]:
        top = module.path.split("/", 1)[0]
        paths = [f for f in self.files if f[0].split("/", 1)[0] == top and f[0] != module.path]
        rng.shuffle(paths)
        return [m for m in (self.load(*f) for f in paths[:count]) if m is not None]


def _usable_dist(dist: importlib.metadata.Distribution) -> bool:
    meta = dist.metadata
    return bool(meta["Name"]) and bool(meta.get_all("Requires-Dist")) and bool(dist.read_text("METADATA"))


def pick(rng: random.Random, items: Sequence[_T], test: Callable[[_T], bool]) -> _T | None:
    items = list(items)
    rng.shuffle(items)
    for item in items:
        if test(item):
            return item
    return None


def make_case(
    kind: str,
    module_path: str,
    what: str,
    before: dict[str, str],
    after: dict[str, str | None],
    targets: tuple[str, ...],
    types: tuple[str, ...],
) -> CommitCase:
    return CommitCase(f"{kind}:{module_path}:{what}", kind, before, after, targets, types)
