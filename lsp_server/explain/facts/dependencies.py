"""Dependency changes read from a manifest's diff lines: which package went from which
version constraint to which (pyproject/requirements, package.json, Cargo.toml, go.mod, Gemfile).

A removed line and an added line naming the same package make a bump; an added or removed
one alone is an added or removed dependency. Lines that are not dependency specifications
(a tool setting in pyproject.toml, a script in package.json) are counted, so that a change
that also edits them is not called a dependency bump only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# name[extra] <op> version [, <op> version ...] -- PEP 508 as it appears in pyproject and requirements
_PEP508 = re.compile(
    r"""^\s*["']?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*"""
    r"""(?P<spec>(?:===|==|~=|!=|<=|>=|<|>)\s*[^"',;#\s]+(?:\s*,\s*(?:===|==|~=|!=|<=|>=|<|>)\s*[^"',;#\s]+)*)"""
    r"""\s*(?:;[^"']*)?["']?\s*,?\s*(?:#.*)?$"""
)
# A name with no version: a requirements file's whole line, or a quoted item of a dependency list.
_BARE_REQUIREMENT = re.compile(r"""^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:;[^#]*)?(?:#.*)?$""")
_BARE_QUOTED = re.compile(
    r"""^\s*["'](?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:;[^"']*)?["']\s*,?\s*(?:#.*)?$"""
)
# Where a pyproject.toml / setup.cfg list holds requirements (`dependencies = [`, a group of
# `[project.optional-dependencies]`, `install_requires =`).
_TABLE = re.compile(r"^\s*\[(?P<table>[^\]]+)\]\s*$")
_KEY = re.compile(r"^\s*(?P<key>[\w.-]+)\s*=")
_DEPENDENCY_KEYS = frozenset(
    {"dependencies", "requires", "install_requires", "setup_requires", "tests_require", "build-requires"}
)
_DEPENDENCY_TABLES = frozenset({"project.optional-dependencies", "dependency-groups", "options.extras_require"})
_JSON_DEP = re.compile(
    r'^\s*"(?P<name>@?[A-Za-z0-9][\w.@/-]*)"\s*:\s*"(?P<spec>[~^<>=*]*\s*v?\d[^"]*|\*|latest)"\s*,?\s*$'
)
_JSON_NOT_DEPS = frozenset({"version", "name", "main", "types", "module", "description", "license"})
_CARGO_DEP = re.compile(
    r"""^\s*(?P<name>[A-Za-z0-9][\w-]*)\s*=\s*(?:"(?P<spec>[^"]+)"|\{[^}]*?version\s*=\s*"(?P<spec2>[^"]+)"[^}]*\})"""
    r"""\s*(?:#.*)?$"""
)
_GO_DEP = re.compile(r"^\s*(?:require\s+)?(?P<name>[\w.-]+\.[\w.-]+/[\w./-]+)\s+(?P<spec>v\d[\w.+-]*)(?:\s*//.*)?$")
_GEM_DEP = re.compile(r"""^\s*gem\s+["'](?P<name>[\w.-]+)["']\s*,\s*["'](?P<spec>[^"']+)["']""")

_CARGO_NOT_DEPS = frozenset({"version", "edition", "name", "rust-version", "license", "description", "authors"})


@dataclass(frozen=True)
class DependencyChange:
    path: str  # the manifest
    name: str
    old: str | None  # version constraint before (None: added; "": any version)
    new: str | None  # after (None: removed)

    @property
    def old_label(self) -> str:
        return self.old or "any version"

    @property
    def new_label(self) -> str:
        return self.new or "any version"

    @property
    def change(self) -> Literal["bumped", "added", "removed"]:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "bumped"

    @property
    def label(self) -> str:
        """The versions as a fact states them: `old -> new` for a bump, else the one there is."""
        if self.change == "bumped":
            return f"{self.old_label} -> {self.new_label}"
        return self.new_label if self.new is not None else self.old_label


def _requirements_file(name: str) -> bool:
    return name.startswith(("requirements", "constraints")) and name.endswith((".txt", ".in"))


def dependency_list_lines(lines: list[str]) -> list[bool]:
    """For each line of a hunk (its marker first), whether it sits in a list of requirements,
    from the keys and tables the hunk shows above it (none shown: no)."""
    out = []
    inside = False
    requirements_table = False
    for line in lines:
        body = line[1:]
        table = _TABLE.match(body)
        key = _KEY.match(body)
        if table:
            requirements_table = table["table"].strip().lower() in _DEPENDENCY_TABLES
            inside = False
        elif key:
            inside = key["key"].lower() in _DEPENDENCY_KEYS or requirements_table
        out.append(inside)
    return out


def parse_line(manifest: str, line: str, *, in_list: bool = False) -> tuple[str, str] | None:
    """(package, version constraint) if the line specifies a dependency; the constraint is ""
    for a bare name (a requirements file's line, or a quoted item of a requirements list)."""
    name = manifest.rsplit("/", 1)[-1]
    if name.endswith(".json"):
        m = _JSON_DEP.match(line)
        if m and m["name"] not in _JSON_NOT_DEPS:
            return m["name"], m["spec"].strip()
        return None
    if name == "Cargo.toml":
        m = _CARGO_DEP.match(line)
        if m and m["name"] not in _CARGO_NOT_DEPS:
            return m["name"], (m["spec"] or m["spec2"]).strip()
        return None
    if name in ("go.mod", "go.work"):
        m = _GO_DEP.match(line)
        return (m["name"], m["spec"]) if m else None
    if name == "Gemfile" or name.endswith(".gemspec"):
        m = _GEM_DEP.match(line)
        return (m["name"], m["spec"]) if m else None
    m = _PEP508.match(line)
    if m and m["name"].lower() not in ("requires-python", "python_requires", "version"):
        return m["name"], re.sub(r"\s+", "", m["spec"])
    bare = _BARE_REQUIREMENT.match(line) if _requirements_file(name) else _BARE_QUOTED.match(line) if in_list else None
    if bare and not line.lstrip().startswith(("#", "-")):
        return bare["name"], ""
    return None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_changes(
    manifest: str, removed: list[str], added: list[str], *, in_list: tuple[list[bool], list[bool]] | None = None
) -> tuple[list[DependencyChange], int]:
    """The dependency changes in one manifest's removed and added lines, and how many changed
    lines were something else (blank lines and comments aside). `in_list` says, line by line,
    which sit in a list of requirements (where a quoted bare name is one)."""
    old: dict[str, tuple[str, str]] = {}
    new: dict[str, tuple[str, str]] = {}
    other = 0
    flags = in_list or ([False] * len(removed), [False] * len(added))
    for lines, into, listed in ((removed, old, flags[0]), (added, new, flags[1])):
        for line, in_requirements in zip(lines, listed):
            parsed = parse_line(manifest, line, in_list=in_requirements)
            if parsed is None:
                stripped = line.strip()
                if (
                    stripped
                    and not stripped.startswith(("#", "//"))
                    and stripped not in ("{", "}", "[", "]", "),", ")")
                ):
                    other += 1
                continue
            into[_normal(parsed[0])] = parsed
    out: list[DependencyChange] = []
    for key in dict.fromkeys([*old, *new]):
        before, after = old.get(key), new.get(key)
        if before is not None and after is not None and before[1] == after[1]:
            continue  # the same constraint re-written (moved, re-quoted)
        name = (after or before)[0]  # type: ignore[index]
        out.append(DependencyChange(manifest, name, before[1] if before else None, after[1] if after else None))
    return out, other
