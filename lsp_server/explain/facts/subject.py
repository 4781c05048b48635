"""Commit subjects from facts, and a check that a model's subject names only what the diff has.

`factual_subject(facts)` writes a conventional-commit subject from the facts alone: it is
never wrong, only plain ("feat: add gather_context and ContextBundle in retrieval.py").
`ungrounded_names(subject, facts)` lists the files and symbols a subject names that the diff
does not contain; `grounded_subject(model_subject, facts)` keeps the model's subject when it
names nothing foreign (fixing a type the facts rule out) and otherwise replaces it with the
factual one, so the result is never worse than the facts alone.

What counts as a name: `backticked` text, paths and file names (`a/b.py`, `README.md`),
calls (`parse()`), dotted names (`Index.build`), and identifiers that cannot be plain words:
snake_case, camelCase, PascalCase with two humps or more, SCREAMING_CASE. Plain words are
not names ("parser", "Router"): a subject may describe without naming.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lsp_server.explain.facts.facts import ChangeFacts

SUBJECT_MAX = 72
CONVENTIONAL = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)\s]{1,40})\))?(?P<bang>!)?:\s*(?P<rest>.*)$")
# Scopes that name an area, not a file or symbol.
GENERIC_SCOPES = frozenset(
    {
        "deps",
        "deps-dev",
        "dev-deps",
        "ci",
        "docs",
        "build",
        "tests",
        "test",
        "release",
        "config",
        "core",
        "api",
        "cli",
        "ui",
        "lint",
        "types",
        "security",
        "perf",
        "style",
        "repo",
    }
)

_BACKTICK = re.compile(r"`([^`]+)`")
_PATHLIKE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+|[\w-]+(?:\.[\w-]+)*\.[A-Za-z][\w]{0,7})(?![\w/])")
_CALL = re.compile(r"\b([A-Za-z_][\w.]*)\(\)")
_DOTTED = re.compile(r"\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\b")
_IDENT = re.compile(r"\b([A-Za-z_$][\w$]*)\b")
# Extensions that make `name.ext` a file rather than `Class.member`.
_FILE_EXT = re.compile(
    r"\.(?:py|pyi|pyx|md|rst|txt|adoc|js|jsx|mjs|cjs|ts|tsx|mts|cts|json|jsonc|toml|ya?ml|ini|cfg|conf|lock|go|mod|sum"
    r"|rs|java|kt|kts|scala|c|h|cc|cpp|cxx|hh|hpp|hxx|cs|rb|php|swift|m|mm|lua|sh|bash|zsh|ps1|pl|sql|html|htm|css|scss"
    r"|sass|less|vue|svelte|xml|svg|png|jpe?g|gif|ico|pdf|csv|tsv|env|example|sample|tmpl|j2|jinja|proto|graphql|gql"
    r"|gradle|properties|dockerfile|mk|cmake|bzl|tf|tfvars|nix|el|vim|ex|exs|erl|hs|ml|dart|zig|r|jl|ipynb|whl|gz|zip)$",
    re.I,
)


def _is_code_name(word: str) -> bool:
    if "_" in word.strip("_") or word.startswith("__"):
        return any(c.isalpha() for c in word)
    if re.search(r"[a-z][A-Z]", word):  # camelCase, PascalCase with a second hump
        return True
    return False


def _known_path(name: str, facts: ChangeFacts) -> bool:
    vocab = facts.vocabulary
    if name in vocab:
        return True
    lowered = name.lower()
    base = posixpath.basename(name.rstrip("/"))
    for f in facts.files:
        for path in (f.path, f.old_path):
            if not path:
                continue
            low = path.lower()
            if low == lowered or low.endswith("/" + lowered) or posixpath.basename(low) == base.lower():
                return True
            if lowered.rstrip("/") and ("/" + low).find("/" + lowered.rstrip("/") + "/") >= 0:
                return True  # a directory of a changed file
    return False


def named_things(subject: str) -> list[str]:
    """The files and symbols a subject line names (see the module docstring)."""
    found: list[str] = []
    rest = subject
    for m in _BACKTICK.finditer(subject):
        found.append(m.group(1).strip().rstrip("()"))
    rest = _BACKTICK.sub(" ", rest)
    for m in _PATHLIKE.finditer(rest):
        token = m.group(1)
        if _looks_like_path(token):
            found.append(token)
    rest = _PATHLIKE.sub(lambda m: " " if _looks_like_path(m.group(1)) else m.group(0), rest)
    for m in _CALL.finditer(rest):
        found.append(m.group(1))
    rest = _CALL.sub(" ", rest)
    for m in _DOTTED.finditer(rest):
        found.append(m.group(1))
    rest = _DOTTED.sub(" ", rest)
    for m in _IDENT.finditer(rest):
        if _is_code_name(m.group(1)):
            found.append(m.group(1))
    return list(dict.fromkeys(found))


def _looks_like_path(token: str) -> bool:
    return "/" in token or bool(_FILE_EXT.search(token))


def _known_symbol(name: str, facts: ChangeFacts) -> bool:
    vocab = facts.vocabulary
    if name in vocab:
        return True
    parts = [p for p in re.split(r"\.|::|#", name) if p]
    return bool(parts) and all(p in vocab for p in parts)


def ungrounded_names(subject: str, facts: ChangeFacts) -> list[str]:
    """The names in `subject` (a commit subject, conventional or not) that the diff lacks."""
    m = CONVENTIONAL.match(subject.strip())
    text = subject
    missing: list[str] = []
    if m:
        text = m["rest"]
        scope = m["scope"]
        if (
            scope
            and scope.lower() not in GENERIC_SCOPES
            and not _known_path(scope, facts)
            and not _known_symbol(scope, facts)
            and scope.lower() not in {w.lower() for w in facts.vocabulary}
        ):
            missing.append(scope)
    for name in named_things(text):
        if _looks_like_path(name):
            if not _known_path(name, facts):
                missing.append(name)
        elif not _known_symbol(name, facts):
            missing.append(name)
    return list(dict.fromkeys(missing))


# --------------------------------------------------------------------------- the factual subject


def _display_paths(facts: ChangeFacts) -> dict[str, str]:
    """Basenames where they are unambiguous in this change, paths otherwise."""
    bases: dict[str, int] = {}
    for f in facts.files:
        base = posixpath.basename(f.path)
        bases[base] = bases.get(base, 0) + 1
    return {
        f.path: posixpath.basename(f.path) if bases[posixpath.basename(f.path)] == 1 else f.path for f in facts.files
    }


def _join(items: Sequence[str], limit: int = 3) -> str:
    items = list(dict.fromkeys(items))
    if len(items) > limit:
        return ", ".join(items[: limit - 1]) + f" and {len(items) - limit + 1} more"
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _fit(prefix: str, phrases: Sequence[str]) -> str:
    """The longest of `phrases` (best first) that fits the subject length, else the last one cut."""
    for phrase in phrases:
        if len(prefix) + len(phrase) <= SUBJECT_MAX:
            return prefix + phrase
    last = phrases[-1]
    room = SUBJECT_MAX - len(prefix)
    return prefix + (last if len(last) <= room else last[:room].rsplit(" ", 1)[0])


def _files_phrase(verb: str, paths: Sequence[str], names: dict[str, str]) -> list[str]:
    shown = [names.get(p, p) for p in paths]
    return [f"{verb} {_join(shown, 3)}", f"{verb} {_join(shown, 2)}", f"{verb} {len(shown)} files"]


def factual_subject(facts: ChangeFacts) -> str:
    """A conventional-commit subject that states only facts."""
    kind = facts.commit_type
    prefix = f"{kind}({facts.scope}): " if facts.scope else f"{kind}: "
    names = _display_paths(facts)
    if not facts.files:
        return prefix + "empty change"
    if facts.dependencies_only and facts.dependencies:
        deps = facts.dependencies
        bumps = facts.dependency_bumps
        if len(deps) == 1 and bumps:
            d = bumps[0]
            return _fit(
                prefix, [f"bump {d.name} from {d.old} to {d.new}", f"bump {d.name} to {d.new}", f"bump {d.name}"]
            )
        dep_verbs = {"bumped": "bump", "added": "add", "removed": "remove"}
        groups: dict[str, list[str]] = {}
        for dep in deps:
            groups.setdefault(dep_verbs[dep.change], []).append(dep.name)
        phrase = " and ".join(f"{verb} {_join(items, 2)}" for verb, items in groups.items())
        return _fit(prefix, [phrase, f"update {len(deps)} dependencies"])
    phrases: list[str] = []
    symbols = [s for s in facts.symbols if facts.tests_only or not _is_test_path(s.path, facts)]
    by_change: dict[str, list[str]] = {}
    for s in symbols:
        if s.kind == "field" and s.change == "changed":
            continue
        label = f"{s.old_name} to {s.name}" if s.change == "renamed" and s.old_name else s.name
        by_change.setdefault(s.change, []).append(label)
    files_with = list(dict.fromkeys(s.path for s in symbols))
    where = ""
    if len(files_with) == 1:
        where = f" in {names.get(files_with[0], files_with[0])}"
    verbs = (("added", "add"), ("renamed", "rename"), ("removed", "remove"), ("changed", "change"))
    present = [(verb, by_change[c]) for c, verb in verbs if by_change.get(c)]
    if present:
        first_verb, first_items = present[0]
        for limit in (3, 2, 1):
            parts = [f"{verb} {_join(items, limit)}" for verb, items in present[:2]]
            phrases.append(" and ".join(parts) + where)
            phrases.append(f"{first_verb} {_join(first_items, limit)}" + where)
        phrases.append(f"{first_verb} {_join(first_items, 1)}")
        return _fit(prefix, phrases)
    by_status: dict[str, list[str]] = {}
    for f in facts.files:
        by_status.setdefault(f.status, []).append(f.path)
    order = (
        ("added", "add"),
        ("deleted", "remove"),
        ("renamed", "move"),
        ("copied", "copy"),
        ("modified", "update"),
        ("mode_changed", "change mode of"),
    )
    present_files = [(verb, by_status[s]) for s, verb in order if by_status.get(s)]
    if len(present_files) == 1 and present_files[0][0] == "move" and len(present_files[0][1]) == 1:
        f = next(f for f in facts.files if f.status == "renamed")
        return _fit(prefix, [f"move {f.old_path} to {f.path}", f"move {names[f.path]}"])
    verb, paths = present_files[0]
    if len(present_files) > 1:
        phrases.append(" and ".join(f"{v} {_join([names[p] for p in ps], 2)}" for v, ps in present_files[:2]))
    phrases += _files_phrase(
        verb if len(present_files) == 1 else "update",
        paths if len(present_files) == 1 else [f.path for f in facts.files],
        names,
    )
    return _fit(prefix, phrases)


def _is_test_path(path: str, facts: ChangeFacts) -> bool:
    return any(f.path == path and f.category == "test" for f in facts.files)


@dataclass(frozen=True)
class SubjectCheck:
    subject: str  # what to use
    replaced: bool  # the model's subject named something the diff lacks, or was empty
    ungrounded: tuple[str, ...]  # what it named that the diff lacks
    type_fixed: bool = False


def grounded_subject(model_subject: str, facts: ChangeFacts) -> SubjectCheck:
    """The model's subject if it names only what the diff has (with its type corrected when the
    facts rule it out), otherwise the factual subject."""
    subject = model_subject.strip().split("\n", 1)[0].strip()
    if not subject:
        return SubjectCheck(factual_subject(facts), True, ())
    missing = ungrounded_names(subject, facts)
    if missing:
        return SubjectCheck(factual_subject(facts), True, tuple(missing))
    m = CONVENTIONAL.match(subject)
    if m and m["type"] not in facts.allowed_types:
        scope = f"({m['scope']})" if m["scope"] else ""
        fixed = f"{facts.commit_type}{scope}{m['bang'] or ''}: {m['rest']}"
        return SubjectCheck(fixed[:SUBJECT_MAX].rstrip(), False, (), True)
    return SubjectCheck(subject, False, ())
