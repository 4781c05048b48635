"""Commit subjects from facts, and the check of a model's subject against them.

`factual_subject(facts)` writes a conventional-commit subject from the facts alone: it is
never wrong, only plain ("feat: add gather_context and ContextBundle in retrieval.py").
`grounded_subject(model_subject, facts)` keeps the model's subject when it names nothing the
diff lacks (`names.py`), names something that changed, states a change and claims nothing the
facts refute (`claims.py`), fixing a type the facts rule out; otherwise it is replaced with the
factual one, so the result is never worse than the facts alone.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from lsp_server.explain.facts.claims import anchored, contradictions, states_a_change
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
from lsp_server.explain.facts.names import CONVENTIONAL, SUBJECT_MAX, ungrounded_names
from lsp_server.explain.facts.symbols import SymbolChange


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
        label = f"{s.old_name} to {s.name}" if s.change == "renamed" and s.old_name else s.name
        by_change.setdefault(s.change, []).append(label)
    files_with = list(dict.fromkeys(s.path for s in symbols))
    where = ""
    if len(files_with) == 1:
        where = f" in {names.get(files_with[0], files_with[0])}"
    verbs = (("added", "add"), ("renamed", "rename"), ("removed", "remove"), ("changed", "change"))
    present = [(verb, by_change[c]) for c, verb in verbs if by_change.get(c)]
    changed = [s for s in symbols if s.change == "changed"]  # changed fields are not reported
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
