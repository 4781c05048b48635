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
import random

from lsp_server.eval.commit_kinds import MAKERS
from lsp_server.eval.commit_material import CaseError, CommitCase, Pool

__all__ = ["KINDS", "CaseError", "CommitCase", "build_cases"]

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


def build_cases(limit: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[CommitCase]:
    """`limit` cases, one of each kind in turn; a kind that cannot be built here is dropped."""
    pool = Pool()
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
