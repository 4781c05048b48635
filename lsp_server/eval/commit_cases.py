"""Commits for the commit-message eval, made from real files available offline.

Every case starts from real text installed with the project's own dependencies (their Python
modules, their test files, the README in their package metadata, their declared
requirements) and applies one change of a kind commits are made of: a docstring and a changed
return value (the change the embedded model once called "checks the diff between two
files"), a new function, a removed one, a rename, a guard clause, a new parameter, a comment,
a README section, a test, a dependency bump, a moved module, and two files at once. Each case
knows what it changed (`targets`) and which commit types fit (`types`), so a subject can be
scored against the truth as well as against the facts.

Sampling is seeded: the same installation and seed give the same cases.
"""

from __future__ import annotations

import ast
import email
import importlib.metadata
import importlib.util
import random
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

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

ATTEMPTS_PER_CASE = 25
KINDS = (
    "docstring_return",
    "add_function",
    "remove_function",
    "rename_function",
    "guard",
    "add_parameter",
    "comment",
    "readme",
    "add_test",
    "dependency_bump",
    "move_module",
    "two_files",
)


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
class _Module:
    path: str  # inside the repository: "rich/console.py"
    text: str
    tree: ast.Module


@dataclass(frozen=True)
class _Function:
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


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _module_files(package: str, *, tests: bool = False) -> list[tuple[str, Path]]:
    """(path in the repository, file) of a package's modules, or of its test files."""
    root = _package_dir(package)
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


def _load(rel: str, path: Path) -> _Module | None:
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    if "\t" in text or "\r" in text:
        return None
    return _Module(rel, text, tree)


def _functions(module: _Module) -> list[_Function]:
    out = []
    for node in module.tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(_Function(node, None))
        elif isinstance(node, ast.ClassDef):
            out += [
                _Function(n, node.name) for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
    return out


def _has_docstring(fn: _Function) -> bool:
    return ast.get_docstring(fn.node, clean=False) is not None


def _body_line(fn: _Function, *, after_docstring: bool = True) -> int | None:
    """0-based line of the body's first statement (after its docstring), if it starts a line."""
    body = fn.node.body
    first = body[0]
    if after_docstring and _has_docstring(fn):
        if len(body) < 2:
            return None
        first = body[1]
    if first.lineno <= fn.node.lineno or first.col_offset == 0:
        return None  # a one-line function
    return first.lineno - 1


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _replace_lines(text: str, start: int, end: int, new: list[str]) -> str:
    lines = text.split("\n")
    return "\n".join(lines[:start] + new + lines[end:])


def _fresh(name: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is None


# --------------------------------------------------------------------------- the kinds of change


Maker = Callable[[random.Random, "_Pool"], CommitCase | None]


class _Pool:
    """The installed material: files listed once, each read and parsed when first picked."""

    def __init__(self) -> None:
        self.files = [f for p in SOURCE_PACKAGES for f in _module_files(p)]
        self.test_files = [f for p in TEST_PACKAGES for f in _module_files(p, tests=True)]
        self.dists = sorted(
            (d for d in importlib.metadata.distributions() if _usable_dist(d)), key=lambda d: d.metadata["Name"].lower()
        )
        self._cache: dict[str, _Module | None] = {}
        if not self.files:
            raise CaseError("no Python modules of the project's dependencies are installed to build commits from")

    def load(self, rel: str, path: Path) -> _Module | None:
        if rel not in self._cache:
            self._cache[rel] = _load(rel, path)
        return self._cache[rel]

    def module(self, rng: random.Random) -> _Module:
        for _ in range(20):
            found = self.load(*rng.choice(self.files))
            if found is not None:
                return found
        raise CaseError("the installed modules cannot be read")

    def test_module(self, rng: random.Random) -> _Module | None:
        if not self.test_files:
            return None
        found = self.load(*rng.choice(self.test_files))
        return found if found is not None and found.text.count("\ndef test_") >= 2 else None

    def siblings(self, module: _Module, rng: random.Random, count: int = 5) -> list[_Module]:
        top = module.path.split("/", 1)[0]
        paths = [f for f in self.files if f[0].split("/", 1)[0] == top and f[0] != module.path]
        rng.shuffle(paths)
        return [m for m in (self.load(*f) for f in paths[:count]) if m is not None]


def _usable_dist(dist: importlib.metadata.Distribution) -> bool:
    meta = dist.metadata
    return bool(meta["Name"]) and bool(meta.get_all("Requires-Dist")) and bool(dist.read_text("METADATA"))


def _pick(rng: random.Random, items: Sequence[_T], test: Callable[[_T], bool]) -> _T | None:
    items = list(items)
    rng.shuffle(items)
    for item in items:
        if test(item):
            return item
    return None


def _case(
    kind: str,
    module_path: str,
    what: str,
    before: dict[str, str],
    after: dict[str, str | None],
    targets: tuple[str, ...],
    types: tuple[str, ...],
) -> CommitCase:
    return CommitCase(f"{kind}:{module_path}:{what}", kind, before, after, targets, types)


def _docstring_return(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)

    def fits(fn: _Function) -> bool:
        returns = [
            n
            for n in ast.walk(fn.node)
            if isinstance(n, ast.Return) and n.value is not None and n.lineno == n.end_lineno
        ]
        return not _has_docstring(fn) and bool(returns) and _body_line(fn, after_docstring=False) is not None

    fn = _pick(rng, _functions(module), fits)
    if not isinstance(fn, _Function):
        return None
    lines = module.text.split("\n")
    ret = [
        n for n in ast.walk(fn.node) if isinstance(n, ast.Return) and n.value is not None and n.lineno == n.end_lineno
    ][-1]
    row = ret.lineno - 1
    line = lines[row]
    expr = ast.get_source_segment(module.text, ret.value)  # type: ignore[arg-type]
    if expr is None or expr not in line:
        return None
    lines[row] = line.replace(f"return {expr}", f"return 2 * ({expr})", 1)
    body = _body_line(fn, after_docstring=False)
    assert body is not None
    lines.insert(body, f'{_indent(lines[body])}"""Return twice the previous result."""')
    return _case(
        "docstring_return",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: "\n".join(lines)},
        (fn.name,),
        ("fix", "feat", "refactor", "perf"),
    )


def _add_function(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)
    for donor in pool.siblings(module, rng):
        fn = _pick(
            rng,
            [f for f in _functions(donor) if f.parent is None],
            lambda f: _fresh(f.name, module.text) and not f.name.startswith("__"),
        )
        if isinstance(fn, _Function):
            source = "\n".join(donor.text.split("\n")[fn.start : fn.node.end_lineno])
            new = module.text.rstrip("\n") + "\n\n\n" + source + "\n"
            return _case(
                "add_function",
                module.path,
                fn.name,
                {module.path: module.text},
                {module.path: new},
                (fn.name,),
                ("feat",),
            )
    return None


def _remove_function(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)
    fn = _pick(rng, _functions(module), lambda f: not f.name.startswith("__") and f.node.end_lineno is not None)
    if not isinstance(fn, _Function):
        return None
    end = fn.node.end_lineno or fn.node.lineno
    lines = module.text.split("\n")
    while end < len(lines) and not lines[end].strip():
        end += 1
    new = _replace_lines(module.text, fn.start, end, [])
    return _case(
        "remove_function",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: new},
        (fn.name,),
        ("refactor", "chore", "fix", "feat", "perf"),
    )


def _rename_function(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)

    def fits(fn: _Function) -> bool:
        if fn.name.startswith("__"):
            return False
        new = fn.name[1:] if fn.name.startswith("_") else "_" + fn.name
        uses = len(re.findall(rf"\b{re.escape(fn.name)}\b", module.text))
        return uses >= 2 and _fresh(new, module.text) and fn.parent is None

    fn = _pick(rng, _functions(module), fits)
    if not isinstance(fn, _Function):
        return None
    new_name = fn.name[1:] if fn.name.startswith("_") else "_" + fn.name
    new = re.sub(rf"(?<![\w.]){re.escape(fn.name)}\b", new_name, module.text)
    return _case(
        "rename_function",
        module.path,
        fn.name,
        {module.path: module.text},
        {module.path: new},
        (fn.name, new_name),
        ("refactor", "chore", "style"),
    )


def _guard(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)

    def param(fn: _Function) -> str | None:
        names = [a.arg for a in fn.node.args.posonlyargs + fn.node.args.args if a.arg not in ("self", "cls")]
        return names[0] if names else None

    fn = _pick(rng, _functions(module), lambda f: param(f) is not None and _body_line(f) is not None)
    if not isinstance(fn, _Function):
        return None
    name = param(fn)
    row = _body_line(fn)
    assert row is not None and name is not None
    lines = module.text.split("\n")
    pad = _indent(lines[row])
    guard = [f"{pad}if {name} is None:", f'{pad}    raise ValueError("{name} must not be None")']
    new = _replace_lines(module.text, row, row, guard)
    return _case(
        "guard",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: new},
        (fn.name,),
        ("fix", "feat", "refactor"),
    )


def _add_parameter(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)
    lines = module.text.split("\n")

    def header(fn: _Function) -> int | None:
        row = fn.node.lineno - 1
        body = fn.node.body[0].lineno - 1
        line = lines[row]
        ends = re.search(r"\)(\s*->\s*[^:]+)?:\s*(#.*)?$", line)
        if body <= row or not ends or fn.node.args.kwarg or fn.node.args.vararg or "strict" in module.text:
            return None
        return row

    fn = _pick(rng, _functions(module), lambda f: header(f) is not None and not f.name.startswith("__"))
    if not isinstance(fn, _Function):
        return None
    row = header(fn)
    assert row is not None
    line = lines[row]
    close = re.search(r"\)(\s*->\s*[^:]+)?:\s*(#.*)?$", line)
    assert close is not None
    cut = close.start()
    opened = line[:cut].rstrip()
    sep = "" if opened.endswith("(") else ", "
    extra = "strict: bool = False" if fn.node.args.kwonlyargs or "*" in opened else "*, strict: bool = False"
    lines[row] = f"{opened}{sep}{extra}{line[cut:]}"
    return _case(
        "add_parameter",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: "\n".join(lines)},
        (fn.name,),
        ("feat", "refactor", "fix"),
    )


def _comment(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)
    fn = _pick(rng, _functions(module), lambda f: _body_line(f) is not None)
    if not isinstance(fn, _Function):
        return None
    row = _body_line(fn)
    assert row is not None
    lines = module.text.split("\n")
    pad = _indent(lines[row])
    note = [f"{pad}# Callers rely on this running before any I/O: keep it first."]
    new = _replace_lines(module.text, row, row, note)
    return _case(
        "comment",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: new},
        (fn.name, module.path.rsplit("/", 1)[-1]),
        ("docs", "chore", "style"),
    )


def _readme_text(dist: importlib.metadata.Distribution) -> str | None:
    raw = dist.read_text("METADATA") or ""
    message = email.message_from_string(raw)
    body = message.get_payload()
    if not isinstance(body, str):
        return None
    ctype = (message.get("Description-Content-Type") or "").lower()
    if "markdown" not in ctype or body.count("\n#") < 2 or not 800 <= len(body) <= 40_000:
        return None
    return body.strip() + "\n"


def _readme(rng: random.Random, pool: _Pool) -> CommitCase | None:
    dists = [d for d in pool.dists if _readme_text(d) is not None]
    if not dists:
        return None
    dist = rng.choice(dists)
    text = _readme_text(dist)
    assert text is not None
    name = dist.metadata["Name"]
    section = (
        f"\n## Troubleshooting\n\nIf `import {name.replace('-', '_')}` fails after an upgrade, remove the old "
        "version first and install again.\n"
    )
    return _case(
        "readme",
        "README.md",
        name,
        {"README.md": text, "setup.py": "from setuptools import setup\n\nsetup()\n"},
        {"README.md": text + section},
        ("README.md", "README", "readme", "troubleshooting"),
        ("docs",),
    )


def _add_test(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.test_module(rng)
    if module is None:
        return None
    tests = [n for n in module.tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    if not tests:
        return None
    fn = rng.choice(tests)
    source = "\n".join(module.text.split("\n")[fn.lineno - 1 - len(fn.decorator_list) : fn.end_lineno])
    new_name = f"{fn.name}_again"
    if not _fresh(new_name, module.text):
        return None
    copy = source.replace(f"def {fn.name}(", f"def {new_name}(", 1)
    new = module.text.rstrip("\n") + "\n\n\n" + copy + "\n"
    return _case(
        "add_test",
        module.path,
        new_name,
        {module.path: module.text},
        {module.path: new},
        (new_name, fn.name, module.path.rsplit("/", 1)[-1].removesuffix(".py")),
        ("test",),
    )


_REQ = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<spec>[<>=!~][^;]*)?(?P<marker>;.*)?$")


def _dependency_bump(rng: random.Random, pool: _Pool) -> CommitCase | None:
    dist = rng.choice(pool.dists)
    reqs = [r for r in dist.metadata.get_all("Requires-Dist") or [] if "extra" not in r]
    parsed = [(m["name"], (m["spec"] or "").strip().replace(" ", ""), r) for r in reqs if (m := _REQ.match(r))]
    candidates = []
    for name, spec, _raw in parsed:
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        new_spec = f">={installed}" + (f",{spec.split(',', 1)[1]}" if spec.startswith(">=") and "," in spec else "")
        if new_spec != spec and not spec.startswith("=="):
            candidates.append((name, spec, new_spec))
    if not candidates:
        return None
    name, spec, new_spec = rng.choice(candidates)
    project = dist.metadata["Name"]

    def manifest(bumped: bool) -> str:
        lines = []
        for dep, dep_spec, _raw in parsed:
            lines.append(f'    "{dep}{new_spec if bumped and dep == name else dep_spec}",')
        return (
            f'[project]\nname = "{project}"\nversion = "{dist.version}"\nrequires-python = ">=3.9"\n'
            "dependencies = [\n" + "\n".join(lines) + "\n]\n"
        )

    return _case(
        "dependency_bump",
        "pyproject.toml",
        name,
        {"pyproject.toml": manifest(False)},
        {"pyproject.toml": manifest(True)},
        (name,),
        ("build", "chore", "fix"),
    )


def _move_module(rng: random.Random, pool: _Pool) -> CommitCase | None:
    module = pool.module(rng)
    head, _, name = module.path.rpartition("/")
    if not head or name == "__init__.py":
        return None
    target = f"{head}/_internal/{name}"
    return _case(
        "move_module",
        module.path,
        target,
        {module.path: module.text},
        {module.path: None, target: module.text},
        (name, name.removesuffix(".py"), "_internal"),
        ("refactor", "chore", "style"),
    )


def _two_files(rng: random.Random, pool: _Pool) -> CommitCase | None:
    first = _guard(rng, pool)
    if first is None:
        return None
    module_path = next(iter(first.before))
    first_module = pool._cache.get(module_path)
    if first_module is None:
        return None
    for sibling in pool.siblings(first_module, rng, 4):
        second = _add_function(rng, _OnePool(pool, sibling))
        if second is not None:
            break
    else:
        return None
    return CommitCase(
        f"two_files:{first.id}+{second.id}",
        "two_files",
        {**first.before, **second.before},
        {**first.after, **second.after},
        first.targets + second.targets,
        ("feat", "fix", "refactor"),
    )


class _OnePool(_Pool):
    """The pool with one module to change (and its siblings to copy from)."""

    def __init__(self, pool: _Pool, module: _Module) -> None:  # noqa: D107 - no re-reading
        self.files, self.test_files, self.dists, self._cache = pool.files, pool.test_files, pool.dists, pool._cache
        self._module = module

    def module(self, rng: random.Random) -> _Module:
        return self._module


MAKERS: dict[str, Maker] = {
    "docstring_return": _docstring_return,
    "add_function": _add_function,
    "remove_function": _remove_function,
    "rename_function": _rename_function,
    "guard": _guard,
    "add_parameter": _add_parameter,
    "comment": _comment,
    "readme": _readme,
    "add_test": _add_test,
    "dependency_bump": _dependency_bump,
    "move_module": _move_module,
    "two_files": _two_files,
}


def build_cases(limit: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[CommitCase]:
    """`limit` cases, one of each kind in turn; a kind that cannot be built here is dropped."""
    pool = _Pool()
    rng = random.Random(seed)
    out: list[CommitCase] = []
    seen: set[str] = set()
    live = list(kinds)
    while len(out) < limit and live:
        for kind in list(live):
            if len(out) >= limit:
                break
            for _attempt in range(ATTEMPTS_PER_CASE):
                case = MAKERS[kind](rng, pool)
                if case is not None and case.id not in seen and _valid(case):
                    seen.add(case.id)
                    out.append(case)
                    break
            else:
                live.remove(kind)  # nothing installed here makes this kind of commit
    if not out:
        raise CaseError("could not build any commit from the installed packages")
    return out


def _valid(case: CommitCase) -> bool:
    """Python files still parse after the change (a case must be a commit someone could make)."""
    for path, text in case.after.items():
        if text is not None and path.endswith(".py"):
            try:
                ast.parse(text)
            except SyntaxError:
                return False
    return case.after != {p: case.before.get(p) for p in case.after}


def describe(case: CommitCase) -> str:
    return textwrap.shorten(f"{case.kind}: {', '.join(case.targets)} ({', '.join(case.after)})", 100)
