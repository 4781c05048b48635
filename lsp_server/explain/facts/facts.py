"""Deterministic facts about a change, extracted from a parsed diff before any model writes.

`extract_facts(changes, texts)` takes the project's own `FileChange` records (from
`diff_parse`) and, optionally, the whole old and new texts of each file (`sources.GitTexts`);
`FactsBuilder` does the same one file at a time, for a diff that streams past:

* files added, deleted, renamed, modified, with their category (test, docs, CI, build,
  config, dependency manifest, lock file, source);
* symbols added, removed, renamed or changed (tree-sitter, see `symbols.py`), and for a
  changed function which parts changed (see `edits.py`);
* whether a modified source file changed in its code, only its comments and docstrings, or
  only its layout;
* dependency bumps from manifests (see `dependencies.py`);
* whether the change is tests-only, docs-only, config-only or dependencies-only, and the
  conventional-commit type those facts call for;
* every name the diff contains (paths, symbols, identifiers on its lines), against which a
  model's subject line is checked (`subject.py`).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from tree_sitter import Tree

from lsp_server.context.identifiers import IDENTIFIER
from lsp_server.context.languages import language_for_path
from lsp_server.context.outline import FileOutline, outline, parse
from lsp_server.explain.diff.model import FileChange, Status
from lsp_server.explain.facts.categories import Category, category
from lsp_server.explain.facts.dependencies import DependencyChange, dependency_changes, dependency_list_lines
from lsp_server.explain.facts.edits import RENAMED_USES, EditNature, file_nature
from lsp_server.explain.facts.sources import TextSource
from lsp_server.explain.facts.symbols import SymbolChange, compare_hunks, compare_outlines

log = logging.getLogger(__name__)

# Symbols are looked for in the first this-many changed lines of a change (tree-sitter on the
# whole texts costs about 3 s for 20,000 lines of definitions on a small machine); the
# files after them are named only.
MAX_ANALYSED_LINES = 50_000
NOT_ANALYSED = "not analysed: a large change"


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
    nature: EditNature | None = None  # a modified source file: code, docs (comments) or format only; None: unknown


@dataclass(frozen=True)
class ChangeFacts:
    files: tuple[FileFact, ...]
    symbols: tuple[SymbolChange, ...]
    dependencies: tuple[DependencyChange, ...]
    other_manifest_lines: int  # changed manifest lines that are not dependency specifications
    vocabulary: frozenset[str] = field(repr=False)  # every name the diff contains
    touched: frozenset[str] = field(default=frozenset(), repr=False)  # identifiers on its added and removed lines

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
            only = {"docs": ", comments and docstrings only", "format": ", formatting only"}.get(f.nature or "", "")
            out.append(f"file {f.status}: {f.path}{where} [{f.category}, +{f.added} -{f.removed}{extra}{only}]")
        for s in self.symbols:
            was = f" (was {s.old_name})" if s.old_name else ""
            details = f" ({', '.join(s.details)})" if s.details else ""
            out.append(f"{s.kind} {s.change}: {s.name}{was} in {s.path}{details}")
        for d in self.dependencies:
            out.append(f"dependency {d.change}: {d.name} {d.label} in {d.path}")
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
    others = {f.category for f in facts.files if f.category != "source"}
    if all(f.status == "modified" and f.nature in ("docs", "format") for f in code) and others <= {"docs"}:
        # Only comments, docstrings or layout changed in the code.
        if all(f.nature == "format" for f in code) and not others:
            return ("style", "chore", "refactor")
        return ("docs", "style", "chore", "refactor")
    kinds = {
        s.change for s in facts.symbols if (s.kind != "field" or s.change != "changed") and s.details != (RENAMED_USES,)
    }
    new_code = any(f.status == "added" for f in code) or "added" in kinds
    everything = (
        "feat",
        "fix",
        "refactor",
        "perf",
        "style",
        "chore",
        *(["docs"] if others & {"docs"} else []),
        *(["test"] if others & {"test"} else []),
        *(["build"] if others & {"build", "dependencies", "lockfile"} else []),
    )
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


def _in_lists(change: FileChange) -> tuple[list[bool], list[bool]]:
    """For the removed and added lines (in `_hunk_lines` order), whether each sits in a list
    of requirements."""
    removed: list[bool] = []
    added: list[bool] = []
    for hunk in change.hunks:
        lines = [line.rstrip("\n") for line in hunk.lines()]
        # git names the line above the hunk in its header ("@@ ... @@ dependencies = ["): context too.
        flags = dependency_list_lines([" " + hunk.section, *lines])[1:]
        for line, inside in zip(lines, flags):
            if line.startswith("-"):
                removed.append(inside)
            elif line.startswith("+"):
                added.append(inside)
    return removed, added


def _file_texts(change: FileChange, texts: TextSource | None) -> tuple[str | None, str | None, bool]:
    """The old and new text of a file, and whether both sides are known (a missing side of an
    added or deleted file is known to be nothing)."""
    old_text = new_text = None
    if texts is not None:
        old_text = texts.old(change.old_path) if change.old_path is not None and change.status != "added" else None
        new_text = texts.new(change.new_path) if change.new_path is not None and change.status != "deleted" else None
    have_old = old_text is not None or change.status == "added"
    have_new = new_text is not None or change.status == "deleted"
    return old_text, new_text, have_old and have_new


def _parsed(text: str | None, language: str) -> tuple[FileOutline | None, Tree | None]:
    """One side's outline and its tree: parsed once, for the outline and the edit nature both."""
    if text is None:
        return None, None
    data = text.encode("utf-8", "surrogatepass")
    tree = parse(data, language)
    return outline(data, language, tree=tree), tree


def _analyse(change: FileChange, texts: TextSource | None) -> tuple[list[SymbolChange], EditNature | None]:
    path = change.path
    language = language_for_path(path)
    if language is None or change.binary or change.summarized_only:
        return [], None  # lock files, generated, vendored or huge files are named, not analysed
    old_text, new_text, whole = _file_texts(change, texts)
    if whole:
        old, old_tree = _parsed(old_text, language)
        new, new_tree = _parsed(new_text, language)
        nature = None
        if change.status == "modified" and old_text is not None and new_text is not None:
            nature = file_nature(old_text, new_text, language, old_tree=old_tree, new_tree=new_tree)
        return compare_outlines(path, old, new), nature
    return compare_hunks(path, language, change.hunks), None


@dataclass(frozen=True)
class _FileRecord:
    fact: FileFact
    symbols: tuple[SymbolChange, ...]
    dependencies: tuple[DependencyChange, ...]
    other_manifest_lines: int
    words: frozenset[str]
    touched: frozenset[str]


class FactsBuilder:
    """Facts collected one file at a time: `add` each `FileChange` as it streams past (only
    the facts and the names are kept, not the hunks), then `facts()` for the whole change or
    `facts(paths)` for some of its files (one chunk's)."""

    def __init__(self, texts: TextSource | None = None, *, max_lines: int = MAX_ANALYSED_LINES) -> None:
        self.texts = texts
        self.max_lines = max_lines
        self.complete = False  # set by whoever fed it once every file of the change is in
        self._lines = 0
        self._records: dict[str, _FileRecord] = {}

    def add(self, change: FileChange) -> None:
        cat = category(change.path)
        diff_texts: list[str] = []
        for hunk in change.hunks:
            diff_texts.append(hunk.text)
            diff_texts.append(hunk.section)
        deps: list[DependencyChange] = []
        other = 0
        removed, added = _hunk_lines(change)
        if cat == "dependencies" and not change.summarized_only:
            deps, other = dependency_changes(change.path, removed, added, in_list=_in_lists(change))
        self._lines += change.added + change.removed
        reason = change.summary_reason
        symbols: list[SymbolChange] = []
        nature: EditNature | None = None
        if self._lines > self.max_lines and not change.summarized_only:
            reason = NOT_ANALYSED  # a huge change: its files are named, their symbols are not looked for
        else:
            try:
                symbols, nature = _analyse(change, self.texts)
            except Exception:  # noqa: BLE001 - facts are an aid: a file they cannot read is named, not analysed
                log.warning("could not analyse %s for the change's facts", change.path, exc_info=True)
        fact = FileFact(
            change.path,
            change.old_path if change.status in ("renamed", "copied") else None,
            change.status,
            cat,
            change.added,
            change.removed,
            change.binary,
            reason,
            nature if cat == "source" else None,
        )
        words = _vocabulary([fact], symbols, deps, diff_texts)
        touched = frozenset(word for line in removed + added for word in IDENTIFIER.findall(line))
        self._records[change.path] = _FileRecord(fact, tuple(symbols), tuple(deps), other, words, touched)

    def facts(self, paths: Iterable[str] | None = None) -> ChangeFacts:
        if paths is None:
            records = list(self._records.values())
        else:
            wanted = set(paths)
            records = [
                r
                for key, r in self._records.items()
                if key in wanted or (r.fact.old_path is not None and r.fact.old_path in wanted)
            ]
        words: set[str] = set()
        touched: set[str] = set()
        for record in records:
            words |= record.words
            touched |= record.touched
        return ChangeFacts(
            tuple(r.fact for r in records),
            tuple(s for r in records for s in r.symbols),
            tuple(d for r in records for d in r.dependencies),
            sum(r.other_manifest_lines for r in records),
            frozenset(words),
            frozenset(touched),
        )


def extract_facts(changes: Iterable[FileChange], texts: TextSource | None = None) -> ChangeFacts:
    builder = FactsBuilder(texts)
    for change in changes:
        builder.add(change)
    return builder.facts()
