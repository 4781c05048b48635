"""The kinds of change the commit-message eval makes from the installed material, one
function each: (rng, pool) -> a case, or None when this pick does not suit the kind."""

from __future__ import annotations

import ast
import email
import importlib.metadata
import importlib.util
import random
import re
from collections.abc import Callable

from lsp_server.eval.commit_material import (
    CommitCase,
    Function,
    Module,
    Pool,
    body_line,
    fresh,
    functions,
    has_docstring,
    indent,
    make_case,
    pick,
    replace_lines,
)

Maker = Callable[[random.Random, "Pool"], CommitCase | None]


def _docstring_return(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)

    def fits(fn: Function) -> bool:
        returns = [
            n
            for n in ast.walk(fn.node)
            if isinstance(n, ast.Return) and n.value is not None and n.lineno == n.end_lineno
        ]
        return not has_docstring(fn) and bool(returns) and body_line(fn, after_docstring=False) is not None

    fn = pick(rng, functions(module), fits)
    if not isinstance(fn, Function):
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
    body = body_line(fn, after_docstring=False)
    assert body is not None
    lines.insert(body, f'{indent(lines[body])}"""Return twice the previous result."""')
    return make_case(
        "docstring_return",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: "\n".join(lines)},
        (fn.name,),
        ("fix", "feat", "refactor", "perf"),
    )


def _add_function(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)
    for donor in pool.siblings(module, rng):
        fn = pick(
            rng,
            [f for f in functions(donor) if f.parent is None],
            lambda f: fresh(f.name, module.text) and not f.name.startswith("__"),
        )
        if isinstance(fn, Function):
            source = "\n".join(donor.text.split("\n")[fn.start : fn.node.end_lineno])
            new = module.text.rstrip("\n") + "\n\n\n" + source + "\n"
            return make_case(
                "add_function",
                module.path,
                fn.name,
                {module.path: module.text},
                {module.path: new},
                (fn.name,),
                ("feat",),
            )
    return None


def _remove_function(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)
    fn = pick(rng, functions(module), lambda f: not f.name.startswith("__") and f.node.end_lineno is not None)
    if not isinstance(fn, Function):
        return None
    end = fn.node.end_lineno or fn.node.lineno
    lines = module.text.split("\n")
    while end < len(lines) and not lines[end].strip():
        end += 1
    new = replace_lines(module.text, fn.start, end, [])
    return make_case(
        "remove_function",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: new},
        (fn.name,),
        ("refactor", "chore", "fix", "feat", "perf"),
    )


def _rename_function(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)

    def fits(fn: Function) -> bool:
        if fn.name.startswith("__"):
            return False
        new = fn.name[1:] if fn.name.startswith("_") else "_" + fn.name
        uses = len(re.findall(rf"\b{re.escape(fn.name)}\b", module.text))
        return uses >= 2 and fresh(new, module.text) and fn.parent is None

    fn = pick(rng, functions(module), fits)
    if not isinstance(fn, Function):
        return None
    new_name = fn.name[1:] if fn.name.startswith("_") else "_" + fn.name
    new = re.sub(rf"(?<![\w.]){re.escape(fn.name)}\b", new_name, module.text)
    return make_case(
        "rename_function",
        module.path,
        fn.name,
        {module.path: module.text},
        {module.path: new},
        (fn.name, new_name),
        ("refactor", "chore", "style"),
    )


def _guard(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)

    def param(fn: Function) -> str | None:
        names = [a.arg for a in fn.node.args.posonlyargs + fn.node.args.args if a.arg not in ("self", "cls")]
        return names[0] if names else None

    fn = pick(rng, functions(module), lambda f: param(f) is not None and body_line(f) is not None)
    if not isinstance(fn, Function):
        return None
    name = param(fn)
    row = body_line(fn)
    assert row is not None and name is not None
    lines = module.text.split("\n")
    pad = indent(lines[row])
    guard = [f"{pad}if {name} is None:", f'{pad}    raise ValueError("{name} must not be None")']
    new = replace_lines(module.text, row, row, guard)
    return make_case(
        "guard",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: new},
        (fn.name,),
        ("fix", "feat", "refactor"),
    )


def _add_parameter(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)
    lines = module.text.split("\n")

    def header(fn: Function) -> int | None:
        row = fn.node.lineno - 1
        body = fn.node.body[0].lineno - 1
        line = lines[row]
        ends = re.search(r"\)(\s*->\s*[^:]+)?:\s*(#.*)?$", line)
        if body <= row or not ends or fn.node.args.kwarg or fn.node.args.vararg or "strict" in module.text:
            return None
        return row

    fn = pick(rng, functions(module), lambda f: header(f) is not None and not f.name.startswith("__"))
    if not isinstance(fn, Function):
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
    return make_case(
        "add_parameter",
        module.path,
        fn.qualified,
        {module.path: module.text},
        {module.path: "\n".join(lines)},
        (fn.name,),
        ("feat", "refactor", "fix"),
    )


def _comment(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)
    fn = pick(rng, functions(module), lambda f: body_line(f) is not None)
    if not isinstance(fn, Function):
        return None
    row = body_line(fn)
    assert row is not None
    lines = module.text.split("\n")
    pad = indent(lines[row])
    note = [f"{pad}# Callers rely on this running before any I/O: keep it first."]
    new = replace_lines(module.text, row, row, note)
    return make_case(
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


def _readme(rng: random.Random, pool: Pool) -> CommitCase | None:
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
    return make_case(
        "readme",
        "README.md",
        name,
        {"README.md": text, "setup.py": "from setuptools import setup\n\nsetup()\n"},
        {"README.md": text + section},
        ("README.md", "README", "readme", "troubleshooting"),
        ("docs",),
    )


def _add_test(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.test_module(rng)
    if module is None:
        return None
    tests = [n for n in module.tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    if not tests:
        return None
    fn = rng.choice(tests)
    source = "\n".join(module.text.split("\n")[fn.lineno - 1 - len(fn.decorator_list) : fn.end_lineno])
    new_name = f"{fn.name}_again"
    if not fresh(new_name, module.text):
        return None
    copy = source.replace(f"def {fn.name}(", f"def {new_name}(", 1)
    new = module.text.rstrip("\n") + "\n\n\n" + copy + "\n"
    return make_case(
        "add_test",
        module.path,
        new_name,
        {module.path: module.text},
        {module.path: new},
        (new_name, fn.name, module.path.rsplit("/", 1)[-1].removesuffix(".py")),
        ("test",),
    )


_REQ = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<spec>[<>=!~][^;]*)?(?P<marker>;.*)?$")


def _dependency_bump(rng: random.Random, pool: Pool) -> CommitCase | None:
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

    return make_case(
        "dependency_bump",
        "pyproject.toml",
        name,
        {"pyproject.toml": manifest(False)},
        {"pyproject.toml": manifest(True)},
        (name,),
        ("build", "chore", "fix"),
    )


def _move_module(rng: random.Random, pool: Pool) -> CommitCase | None:
    module = pool.module(rng)
    head, _, name = module.path.rpartition("/")
    if not head or name == "__init__.py":
        return None
    target = f"{head}/_internal/{name}"
    return make_case(
        "move_module",
        module.path,
        target,
        {module.path: module.text},
        {module.path: None, target: module.text},
        (name, name.removesuffix(".py"), "_internal"),
        ("refactor", "chore", "style"),
    )


def _two_files(rng: random.Random, pool: Pool) -> CommitCase | None:
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


class _OnePool(Pool):
    """The pool with one module to change (and its siblings to copy from)."""

    def __init__(self, pool: Pool, module: Module) -> None:  # noqa: D107 - no re-reading
        self.files, self.test_files, self.dists, self._cache = pool.files, pool.test_files, pool.dists, pool._cache
        self._module = module

    def module(self, rng: random.Random) -> Module:
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
