"""What a commit subject claims about a change, checked against its facts: does it name
something the change touched (`anchored`), does it state a change at all
(`states_a_change`), and does it claim what the facts refute (`contradictions`)."""

from __future__ import annotations

import posixpath
import re

from lsp_server.explain.facts.facts import ChangeFacts
from lsp_server.explain.facts.names import (
    CONVENTIONAL,
    IDENT,
    is_code_name,
    known_path,
    looks_like_path,
    named_things,
)

# Words too common in code and in commit subjects to tie a subject to this change.
_GENERIC_WORDS = frozenset(
    """
    add adds added all and api app base change changes check checks class code commit common config core data def
    default diff doc docs file files fix for from function get helper helpers impl index init item lib line lines
    list main make method misc mod module new none not object old run self set setup src test tests the this tool
    tools type types update util utils value values with
    """.split()
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
        if looks_like_path(name):
            if known_path(name, facts):
                return True
        elif all(part in facts.touched or part in _symbol_names(facts) for part in re.split(r"\.|::|#", name) if part):
            return True
    pool = anchors(facts)
    if not pool:
        return True  # nothing to tie to (an empty change): no claim to check
    if scope and known_path(scope, facts):
        return True  # a scope may name the directory of a changed file
    words = [w.lower() for w in IDENT.findall(text)] + ([scope.lower()] if scope else [])
    words += [part for w in IDENT.findall(text) for part in _subwords(w)]
    return any(len(w) >= 3 and w not in _GENERIC_WORDS and any(_same_stem(w, a) for a in pool) for w in words)


# What a subject's first word is when it states a change ("add", "fixes", "renamed"), rather
# than describing what the code does ("returns the width", "is a method that", "shows the
# changes"): a small base model continuing "It ..." writes the latter.
CHANGE_VERBS = frozenset(
    """
    accept add adjust allow avoid bump cache change clarify clean convert copy correct cover deduplicate default
    defer delete deprecate disable document double downgrade drop enable ensure expand explain expose extend
    extract fix format guard handle harden hide ignore implement improve include increase inline introduce keep
    limit log make merge migrate move normalize optimize pass pin port prefer prevent raise reduce refactor
    reformat reject remove rename reorder replace require reset restore restrict revert reword rewrite set simplify
    skip sort speed split stop store support switch test tidy trim tweak update upgrade use validate warn wrap
    """.split()
)
_LEADING_ADVERBS = frozenset(
    """
    now also properly correctly always only just finally explicitly further no longer
    """.split()
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
    """
    add adds added adding introduce introduces introduced create creates created implement implements implemented
    """.split()
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
    """
    a an the new missing optional unused old dead deprecated obsolete legacy function method class module file
    helper constant called named
    """.split()
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
                and (named or token.startswith("`") or is_code_name(word))
                and not all(part in facts.touched for part in IDENT.findall(word))
            ):
                found.append(f"{verb} {word}")  # a name no added or removed line has
            verb = None
    return found
