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

from lsp_server.explain.facts.edits import (
    BODY,
    COMMENTS,
    DOC_ADDED,
    DOC_CHANGED,
    DOC_DETAILS,
    DOC_REMOVED,
    FORMAT,
    RENAMED_USES,
    RETURN,
    SIGNATURE,
)
from lsp_server.explain.facts.facts import NOT_ANALYSED, ChangeFacts
from lsp_server.explain.facts.symbols import SymbolChange

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


def reported_symbols(facts: ChangeFacts) -> list[SymbolChange]:
    """The symbol changes a subject tells: not the tests of a change to code, not the call
    sites that changed only to follow a rename, not a class's fields."""
    symbols = [s for s in facts.symbols if facts.tests_only or not _is_test_path(s.path, facts)]
    if any(s.change == "renamed" for s in symbols):
        symbols = [s for s in symbols if s.details != (RENAMED_USES,)]
    return [s for s in symbols if not (s.kind == "field" and s.change == "changed")]


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
            if not d.old:  # any version before: a constraint is new
                return _fit(prefix, [f"require {d.name}{d.new}", f"constrain {d.name}"])
            if not d.new:
                return _fit(prefix, [f"allow any version of {d.name}", f"unpin {d.name}"])
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
    # Symbols of part of the files would make "add a, b and 9 more" of a change that did more.
    partial = any(f.summarized == NOT_ANALYSED for f in facts.files)
    symbols = [] if partial else reported_symbols(facts)
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
    changed = [s for s in symbols if s.change == "changed" and not (s.kind == "field")]
    if present and len(present) == 1 and present[0][0] == "change" and changed:
        detailed = _details_phrase(changed)
        if detailed is not None:
            phrases += [detailed + where, detailed]
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
    natures = {f.nature for f in facts.files}
    if verb == "update" and len(present_files) == 1 and natures <= {"docs", "format"}:
        verb = "reformat" if natures == {"format"} else "update comments in"
    if len(present_files) > 1:
        phrases.append(" and ".join(f"{v} {_join([names[p] for p in ps], 2)}" for v, ps in present_files[:2]))
    phrases += _files_phrase(
        verb if len(present_files) == 1 else "update",
        paths if len(present_files) == 1 else [f.path for f in facts.files],
        names,
    )
    return _fit(prefix, phrases)


# What a changed function's details say, in a subject: the whole phrase and the part that
# follows another phrase about the same function ("... and document it").
_CODE_PHRASES = {
    SIGNATURE: ("change the signature of {n}", "change its signature"),
    RETURN: ("change what {n} returns", "change what it returns"),
    BODY: ("change {n}", "change its body"),
}
_DOC_PHRASES = {
    DOC_ADDED: ("document {n}", "document it"),
    DOC_CHANGED: ("update the docstring of {n}", "update its docstring"),
    DOC_REMOVED: ("remove the docstring of {n}", "remove its docstring"),
    COMMENTS: ("update comments in {n}", "update its comments"),
    FORMAT: ("reformat {n}", "reformat it"),
}


def _details_phrase(changed: Sequence[SymbolChange]) -> str | None:
    """ "change what total returns and document it", from the details of changed functions;
    None when there are none to tell."""
    if len(changed) == 1:
        s = changed[0]
        details = set(s.details)
        if not details:
            return None
        code: str | None = None
        if BODY in details:
            code = _CODE_PHRASES[BODY][0] if SIGNATURE not in details else "change {n} and its signature"
        elif SIGNATURE in details:
            code = (
                _CODE_PHRASES[SIGNATURE][0]
                if RETURN not in details
                else "change the signature of {n} and what it returns"
            )
        elif RETURN in details:
            code = _CODE_PHRASES[RETURN][0]
        docs = [d for d in (DOC_ADDED, DOC_CHANGED, DOC_REMOVED, COMMENTS) if d in details]
        if code is None and not docs:
            return _DOC_PHRASES[FORMAT][0].format(n=s.name) if FORMAT in details else None
        if code is None:
            phrase = _DOC_PHRASES[docs[0]][0]
            if len(docs) > 1:
                phrase += " and " + _DOC_PHRASES[docs[1]][1]
            return phrase.format(n=s.name)
        if docs:
            return (code + " and " + _DOC_PHRASES[docs[0]][1]).format(n=s.name)
        return code.format(n=s.name)
    kinds = {frozenset(s.details) for s in changed}
    names = _join([s.name for s in changed], 3)
    if kinds == {frozenset({DOC_ADDED})}:
        return f"document {names}"
    if all(k and k <= DOC_DETAILS for k in kinds):
        return f"update the docs of {names}"
    if kinds == {frozenset({FORMAT})}:
        return f"reformat {names}"
    return None


def _is_test_path(path: str, facts: ChangeFacts) -> bool:
    return any(f.path == path and f.category == "test" for f in facts.files)


# ------------------------------------------------------------------------- anchoring and claims

# Words too common in code and in commit subjects to tie a subject to this change.
_GENERIC_WORDS = frozenset(
    {
        "add",
        "adds",
        "added",
        "all",
        "and",
        "api",
        "app",
        "base",
        "change",
        "changes",
        "check",
        "checks",
        "class",
        "code",
        "commit",
        "common",
        "config",
        "core",
        "data",
        "def",
        "default",
        "diff",
        "doc",
        "docs",
        "file",
        "files",
        "fix",
        "for",
        "from",
        "function",
        "get",
        "helper",
        "helpers",
        "impl",
        "index",
        "init",
        "item",
        "lib",
        "line",
        "lines",
        "list",
        "main",
        "make",
        "method",
        "misc",
        "mod",
        "module",
        "new",
        "none",
        "not",
        "object",
        "old",
        "run",
        "self",
        "set",
        "setup",
        "src",
        "test",
        "tests",
        "the",
        "this",
        "tool",
        "tools",
        "type",
        "types",
        "update",
        "util",
        "utils",
        "value",
        "values",
        "with",
    }
)
_SUBWORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _subwords(name: str) -> list[str]:
    return [w.lower() for w in _SUBWORD.findall(name)]


def anchors(facts: ChangeFacts) -> frozenset[str]:
    """Lower-case words that tie a subject to this change: the changed files' names, the
    changed symbols' names and the dependencies', with the parts of compound names
    ("gather_context" -> gather, context), common words left out."""
    words: set[str] = set()

    def take(name: str) -> None:
        for word in (name.lower(), *_subwords(name)):
            if len(word) >= 3 and word not in _GENERIC_WORDS:
                words.add(word)

    for f in facts.files:
        for path in (f.path, f.old_path):
            if not path:
                continue
            # Not the directories: "adds files to the strict list" is not about `_strict/`.
            name = path.split("/")[-1]
            take(name)
            take(name.split(".")[0])
    for sym in facts.symbols:
        for part in re.split(r"\.|::|#", sym.name) + ([sym.old_name] if sym.old_name else []):
            take(part)
    for dep in facts.dependencies:
        take(dep.name)
    return frozenset(words)


def _symbol_names(facts: ChangeFacts) -> set[str]:
    names: set[str] = set()
    for sym in facts.symbols:
        names.update(p for p in re.split(r"\.|::|#", sym.name) if p)
        if sym.old_name:
            names.update(p for p in re.split(r"\.|::|#", sym.old_name) if p)
    for dep in facts.dependencies:
        names.add(dep.name)
    return names


def _same_stem(a: str, b: str) -> bool:
    """ "divide" and "division", "parse" and "parser": a common start long enough for both."""
    if a == b:
        return True
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n >= max(4, min(len(a), len(b)) - 2)


def anchored(subject: str, facts: ChangeFacts) -> bool:
    """Whether a subject names something this change touched: a changed file, directory,
    symbol or dependency (compound names match by their parts), or a code name that occurs on
    the diff's added or removed lines (not only around them). A subject that names nothing of
    the change ("checks the diff between two files") says nothing the reader can check."""
    m = CONVENTIONAL.match(subject.strip())
    text = m["rest"] if m else subject
    scope = m["scope"] if m else None
    for name in named_things(text):
        if _looks_like_path(name):
            if _known_path(name, facts):
                return True
        elif all(part in facts.touched or part in _symbol_names(facts) for part in re.split(r"\.|::|#", name) if part):
            return True
    pool = anchors(facts)
    if not pool:
        return True  # nothing to tie to (an empty change): no claim to check
    if scope and _known_path(scope, facts):
        return True  # a scope may name the directory of a changed file
    words = [w.lower() for w in _IDENT.findall(text)] + ([scope.lower()] if scope else [])
    words += [part for w in _IDENT.findall(text) for part in _subwords(w)]
    return any(len(w) >= 3 and w not in _GENERIC_WORDS and any(_same_stem(w, a) for a in pool) for w in words)


# What a subject's first word is when it states a change ("add", "fixes", "renamed"), rather
# than describing what the code does ("returns the width", "is a method that", "shows the
# changes"): a small base model continuing "It ..." writes the latter.
CHANGE_VERBS = frozenset(
    {
        "accept",
        "add",
        "adjust",
        "allow",
        "avoid",
        "bump",
        "cache",
        "change",
        "clarify",
        "clean",
        "convert",
        "copy",
        "correct",
        "cover",
        "deduplicate",
        "default",
        "defer",
        "delete",
        "deprecate",
        "disable",
        "document",
        "double",
        "downgrade",
        "drop",
        "enable",
        "ensure",
        "expand",
        "explain",
        "expose",
        "extend",
        "extract",
        "fix",
        "format",
        "guard",
        "handle",
        "harden",
        "hide",
        "ignore",
        "implement",
        "improve",
        "include",
        "increase",
        "inline",
        "introduce",
        "keep",
        "limit",
        "log",
        "make",
        "merge",
        "migrate",
        "move",
        "normalize",
        "optimize",
        "pass",
        "pin",
        "port",
        "prefer",
        "prevent",
        "raise",
        "reduce",
        "refactor",
        "reformat",
        "reject",
        "remove",
        "rename",
        "reorder",
        "replace",
        "require",
        "reset",
        "restore",
        "restrict",
        "revert",
        "reword",
        "rewrite",
        "set",
        "simplify",
        "skip",
        "sort",
        "speed",
        "split",
        "stop",
        "store",
        "support",
        "switch",
        "test",
        "tidy",
        "trim",
        "tweak",
        "update",
        "upgrade",
        "use",
        "validate",
        "warn",
        "wrap",
    }
)
_LEADING_ADVERBS = frozenset(
    {
        "now",
        "also",
        "properly",
        "correctly",
        "always",
        "only",
        "just",
        "finally",
        "explicitly",
        "further",
        "no",
        "longer",
    }
)


def _lemmas(word: str) -> set[str]:
    w = word.lower()
    out = {w}
    if w.endswith("ies"):
        out.add(w[:-3] + "y")
    if w.endswith("es"):
        out.add(w[:-2])
    if w.endswith("s"):
        out.add(w[:-1])
    if w.endswith("ed"):
        out.update({w[:-2], w[:-1]})
        if len(w) > 4 and w[-3] == w[-4]:
            out.add(w[:-3])  # stopped -> stop
    if w.endswith("ing"):
        out.update({w[:-3], w[:-3] + "e"})
        if len(w) > 5 and w[-4] == w[-5]:
            out.add(w[:-4])
    return out


def states_a_change(subject: str) -> bool:
    """Whether the subject's first word is a verb of change (any inflection)."""
    m = CONVENTIONAL.match(subject.strip())
    words = re.findall(r"[A-Za-z]+", m["rest"] if m else subject)
    while words and words[0].lower() in _LEADING_ADVERBS:
        words.pop(0)
    return bool(words) and bool(_lemmas(words[0]) & CHANGE_VERBS)


_ADD_VERBS = frozenset(
    {
        "add",
        "adds",
        "added",
        "adding",
        "introduce",
        "introduces",
        "introduced",
        "create",
        "creates",
        "created",
        "implement",
        "implements",
        "implemented",
    }
)
_REMOVE_VERBS = frozenset(
    {"remove", "removes", "removed", "removing", "delete", "deletes", "deleted", "drop", "drops", "dropped"}
)
_RENAME_VERBS = frozenset({"rename", "renames", "renamed", "renaming"})
_VERB_CLASS = {
    **{v: "added" for v in _ADD_VERBS},
    **{v: "removed" for v in _REMOVE_VERBS},
    **{v: "renamed" for v in _RENAME_VERBS},
}
# Words between a verb and its object: "add the new `total` function".
_FILLERS = frozenset(
    {
        "a",
        "an",
        "the",
        "new",
        "missing",
        "optional",
        "unused",
        "old",
        "dead",
        "deprecated",
        "obsolete",
        "legacy",
        "function",
        "method",
        "class",
        "module",
        "file",
        "helper",
        "constant",
        "called",
        "named",
    }
)
_CLAUSE_BREAK = re.compile(r"[,;:]| and | but | then ")


def contradictions(subject: str, facts: ChangeFacts) -> list[str]:
    """Claims the facts refute: "add X" when X already existed (or was removed), "remove X"
    when X was added, "rename X" when nothing was renamed, and "add a function called Y" (or
    "add `Y`", "add parse_y") when no Y was added. Only a verb's object is judged, against the
    nearest add/remove/rename verb before it in its clause."""
    m = CONVENTIONAL.match(subject.strip())
    text = m["rest"] if m else subject
    changes_of: dict[str, set[str]] = {}
    for sym in facts.symbols:
        for name in {sym.name, sym.short_name}:
            changes_of.setdefault(name, set()).add(sym.change)
        if sym.old_name:
            changes_of.setdefault(sym.old_name, set()).add("renamed")
            changes_of.setdefault(sym.old_name.rsplit(".", 1)[-1], set()).add("renamed")
    for f in facts.files:
        status = {"added": "added", "deleted": "removed", "renamed": "renamed"}.get(f.status, "changed")
        for path in (f.path, f.old_path):
            if path:
                changes_of.setdefault(posixpath.basename(path), set()).add(status)
                changes_of.setdefault(path, set()).add(status)
    found: list[str] = []
    for clause in _CLAUSE_BREAK.split(text):
        verb: str | None = None
        named = False  # "a function called X": X is a name, whatever it looks like
        for token in re.findall(r"`[^`]+`|[\w./:#-]+(?:\(\))?", clause):
            word = token.strip("`").rstrip("()").rstrip(".")
            if word.lower() in _VERB_CLASS:
                verb, named = _VERB_CLASS[word.lower()], False
                continue
            if verb is None or word.lower() in _FILLERS:
                named = named or word.lower() in ("called", "named")
                continue
            # Only the verb's object is judged: "add tests for total" claims nothing about total.
            if word in changes_of:
                if verb not in changes_of[word] and not (verb == "added" and "renamed" in changes_of[word]):
                    found.append(f"{verb} {word}")
            elif (
                verb in ("added", "removed")
                and (named or token.startswith("`") or _is_code_name(word))
                and not all(part in facts.touched for part in _IDENT.findall(word))
            ):
                found.append(f"{verb} {word}")  # a name no added or removed line has
            verb = None
    return found


@dataclass(frozen=True)
class SubjectCheck:
    subject: str  # what to use
    replaced: bool  # the model's subject was empty, named something the diff lacks, named nothing of it, or was refuted
    ungrounded: tuple[str, ...]  # what it named that the diff lacks
    type_fixed: bool = False
    reason: str = "ok"  # ok, empty, ungrounded, contradicted, vague (names nothing changed), no_change_stated
    model_subject: str = ""  # what the model wrote
    contradicted: tuple[str, ...] = ()  # claims the facts refute ("add total" when total existed)


def grounded_subject(model_subject: str, facts: ChangeFacts) -> SubjectCheck:
    """The model's subject if it names only what the diff has, names something of the change,
    claims nothing the facts refute and starts with a verb of change (with its type corrected
    when the facts rule it out); otherwise the factual subject, so the result is never worse
    than the facts."""
    subject = model_subject.strip().split("\n", 1)[0].strip()
    if not subject:
        return SubjectCheck(factual_subject(facts), True, (), reason="empty")
    missing = ungrounded_names(subject, facts)
    if missing:
        return SubjectCheck(factual_subject(facts), True, tuple(missing), reason="ungrounded", model_subject=subject)
    refuted = contradictions(subject, facts)
    if refuted:
        return SubjectCheck(
            factual_subject(facts), True, (), reason="contradicted", model_subject=subject, contradicted=tuple(refuted)
        )
    if not anchored(subject, facts):
        return SubjectCheck(factual_subject(facts), True, (), reason="vague", model_subject=subject)
    if not states_a_change(subject):
        return SubjectCheck(factual_subject(facts), True, (), reason="no_change_stated", model_subject=subject)
    m = CONVENTIONAL.match(subject)
    if m and m["type"] not in facts.allowed_types:
        scope = f"({m['scope']})" if m["scope"] else ""
        fixed = f"{facts.commit_type}{scope}{m['bang'] or ''}: {m['rest']}"
        return SubjectCheck(fixed[:SUBJECT_MAX].rstrip(), False, (), True, model_subject=subject)
    return SubjectCheck(subject, False, (), model_subject=subject)
