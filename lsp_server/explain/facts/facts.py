"""Deterministic facts about a change, extracted from a parsed diff before any model writes.

`extract_facts(changes, texts)` takes the project's own `FileChange` records (from
`diff_parse`) and, optionally, the whole old and new texts of each file (`sources.GitTexts`):

* files added, deleted, renamed, modified, with their category (test, docs, CI, build,
  config, dependency manifest, lock file, source);
* symbols added, removed, renamed or changed (tree-sitter, see `symbols.py`);
* dependency bumps from manifests (see `dependencies.py`);
* whether the change is tests-only, docs-only, config-only or dependencies-only, and the
  conventional-commit type those facts call for;
* every name the diff contains (paths, symbols, identifiers on its lines), against which a
  model's subject line is checked (`subject.py`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from lsp_server.context.languages import language_for_path
from lsp_server.context.outline import outline
from lsp_server.context.tokens import IDENTIFIER
from lsp_server.explain.diff.model import FileChange, Status
from lsp_server.explain.facts.categories import Category, category
from lsp_server.explain.facts.dependencies import DependencyChange, dependency_changes
from lsp_server.explain.facts.sources import TextSource
from lsp_server.explain.facts.symbols import SymbolChange, compare_hunks, compare_outlines


@dataclass(frozen=True)
class FileFact:
    path: str
    old_path: str | None  # renamed or copied: where it came from
    status: Status
    category: Category
    added: int
    removed: int
    binary: bool = False
    summarized: str | None = None  # why its text was not read (lock file, generated, too large)


@dataclass(frozen=True)
class ChangeFacts:
    files: tuple[FileFact, ...]
    symbols: tuple[SymbolChange, ...]
    dependencies: tuple[DependencyChange, ...]
    other_manifest_lines: int  # changed manifest lines that are not dependency specifications
    vocabulary: frozenset[str] = field(repr=False)  # every name the diff contains

    def _all(self, *categories: Category) -> bool:
        return bool(self.files) and all(f.category in categories for f in self.files)

    @property
    def tests_only(self) -> bool:
        return self._all("test")

    @property
    def docs_only(self) -> bool:
        return self._all("docs")

    @property
    def ci_only(self) -> bool:
        return self._all("ci")

    @property
    def config_only(self) -> bool:
        return self._all("config")

    @property
    def build_only(self) -> bool:
        return self._all("build")

    @property
    def dependencies_only(self) -> bool:
        """Only manifests and lock files changed, and in manifests only dependency lines."""
        return (
            self._all("dependencies", "lockfile")
            and self.other_manifest_lines == 0
            and (bool(self.dependencies) or self._all("lockfile"))
        )

    @property
    def dependency_bumps(self) -> tuple[DependencyChange, ...]:
        return tuple(d for d in self.dependencies if d.change == "bumped")

    def symbols_by(self, change: str) -> list[SymbolChange]:
        return [s for s in self.symbols if s.change == change]

    @property
    def commit_type(self) -> str:
        return commit_types(self)[0]

    @property
    def allowed_types(self) -> tuple[str, ...]:
        return commit_types(self)

    @property
    def scope(self) -> str | None:
        return "deps" if self.dependencies_only else None

    def lines(self) -> list[str]:
        """The facts as short lines, for a prompt."""
        out = []
        for f in self.files:
            where = f" (from {f.old_path})" if f.old_path and f.old_path != f.path else ""
            extra = f", {f.summarized}" if f.summarized else ""
            out.append(f"file {f.status}: {f.path}{where} [{f.category}, +{f.added} -{f.removed}{extra}]")
        for s in self.symbols:
            was = f" (was {s.old_name})" if s.old_name else ""
            out.append(f"{s.kind} {s.change}: {s.name}{was} in {s.path}")
        for d in self.dependencies:
            if d.change == "bumped":
                out.append(f"dependency bumped: {d.name} {d.old} -> {d.new} in {d.path}")
            else:
                out.append(f"dependency {d.change}: {d.name} {d.new or d.old} in {d.path}")
        flags = [
            name
            for name, on in (
                ("tests only", self.tests_only),
                ("docs only", self.docs_only),
                ("config only", self.config_only),
                ("dependencies only", self.dependencies_only),
            )
            if on
        ]
        if flags:
            out.append("change is " + ", ".join(flags))
        out.append(f"commit type: {self.commit_type}")
        return out


def commit_types(facts: ChangeFacts) -> tuple[str, ...]:
    """The conventional-commit types the facts allow, the one they call for first."""
    if not facts.files:
        return ("chore",)
    if facts.tests_only:
        return ("test",)
    if facts.docs_only:
        return ("docs",)
    if facts.ci_only:
        return ("ci",)
    if facts.dependencies_only:
        return ("build", "chore", "fix")
    if facts.build_only:
        return ("build", "chore", "ci")
    if facts._all("config", "ci", "build", "dependencies", "lockfile"):
        return ("chore", "build", "ci", "fix", "feat")
    code = [f for f in facts.files if f.category == "source"]
    if not code:
        return ("chore", "docs", "test", "build", "ci", "style", "fix", "feat", "refactor")
    kinds = {s.change for s in facts.symbols if s.kind != "field" or s.change != "changed"}
    new_code = any(f.status == "added" for f in code) or "added" in kinds
    everything = ("feat", "fix", "refactor", "perf", "style", "chore", "docs", "test", "build")
    if new_code:
        return ("feat", *[t for t in everything if t != "feat"])
    if (
        kinds
        and kinds <= {"renamed", "removed"}
        or (not kinds and all(f.status in ("renamed", "deleted") for f in code))
    ):
        return ("refactor", *[t for t in everything if t != "refactor"])
    return ("fix", *[t for t in everything if t != "fix"])


def _vocabulary(
    facts_files: list[FileFact], symbols: list[SymbolChange], deps: list[DependencyChange], texts: list[str]
) -> frozenset[str]:
    words: set[str] = set()
    for f in facts_files:
        for path in (f.path, f.old_path):
            if not path:
                continue
            words.add(path)
            base = posixpath.basename(path)
            words.add(base)
            words.add(base.split(".")[0])
            words.update(part for part in path.split("/") if part)
    for s in symbols:
        words.update((s.name, s.short_name, *s.name.split(".")))
        if s.old_name:
            words.update((s.old_name, *s.old_name.split(".")))
    for d in deps:
        words.add(d.name)
    for text in texts:
        words.update(IDENTIFIER.findall(text))
    return frozenset(words)


def _hunk_lines(change: FileChange) -> tuple[list[str], list[str]]:
    removed: list[str] = []
    added: list[str] = []
    for hunk in change.hunks:
        for line in hunk.lines():
            if line.startswith("-"):
                removed.append(line[1:].rstrip("\n"))
            elif line.startswith("+"):
                added.append(line[1:].rstrip("\n"))
    return removed, added


def file_symbols(change: FileChange, texts: TextSource | None) -> list[SymbolChange]:
    """Symbol changes in one file: whole texts when there are any, else the hunks."""
    path = change.path
    language = language_for_path(path)
    if language is None or change.binary or change.summarized_only:
        return []  # lock files, generated, vendored or huge files are named, not analysed
    old_text = new_text = None
    if texts is not None:
        old_text = texts.old(change.old_path) if change.old_path is not None and change.status != "added" else None
        new_text = texts.new(change.new_path) if change.new_path is not None and change.status != "deleted" else None
    have_old = old_text is not None or change.status == "added"
    have_new = new_text is not None or change.status == "deleted"
    if have_old and have_new:
        old = outline(old_text, language) if old_text is not None else None
        new = outline(new_text, language) if new_text is not None else None
        return compare_outlines(path, old, new)
    return compare_hunks(path, language, change.hunks)


def extract_facts(changes: Iterable[FileChange], texts: TextSource | None = None) -> ChangeFacts:
    files: list[FileFact] = []
    symbols: list[SymbolChange] = []
    deps: list[DependencyChange] = []
    other_manifest = 0
    diff_texts: list[str] = []
    for change in changes:
        cat = category(change.path)
        files.append(
            FileFact(
                change.path,
                change.old_path if change.status in ("renamed", "copied") else None,
                change.status,
                cat,
                change.added,
                change.removed,
                change.binary,
                change.summary_reason,
            )
        )
        for hunk in change.hunks:
            diff_texts.append(hunk.text)
            diff_texts.append(hunk.section)
        if cat == "dependencies" and not change.summarized_only:
            removed, added = _hunk_lines(change)
            found, other = dependency_changes(change.path, removed, added)
            deps.extend(found)
            other_manifest += other
        symbols.extend(file_symbols(change, texts))
    return ChangeFacts(
        tuple(files), tuple(symbols), tuple(deps), other_manifest, _vocabulary(files, symbols, deps, diff_texts)
    )
