"""The commit-message eval's cases and scoring, without a model: commits built from the
installed packages are real changes (they parse, git sees what the case says it did), and the
scores tell a grounded subject from an ungrounded, vague or refuted one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lsp_server.eval.commit_cases import KINDS, build_cases
from lsp_server.eval.commit_eval import case_facts, score, stage_case, summarise
from lsp_server.explain.facts import factual_subject


@pytest.fixture(scope="module")
def cases():  # type: ignore[no-untyped-def]
    return build_cases(len(KINDS), seed=0)


def test_cases_are_seeded_one_of_each_kind_and_valid(cases) -> None:  # type: ignore[no-untyped-def]
    assert [c.kind for c in cases] == list(KINDS)
    assert [c.id for c in build_cases(len(KINDS), seed=0)] == [c.id for c in cases]
    assert [c.id for c in build_cases(len(KINDS), seed=1)] != [c.id for c in cases]
    for case in cases:
        assert case.after != {p: case.before.get(p) for p in case.after}, case.id
        for path, text in case.after.items():
            if text is not None and path.endswith(".py"):
                ast.parse(text)


def test_the_facts_of_every_case_name_what_it_changed(cases, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The factual subject is the floor the grounded pipeline stands on: for every kind of
    # commit it names what the case changed, with a type that fits.
    for i, case in enumerate(cases):
        repo = tmp_path / f"r{i}"
        stage_case(case, repo)
        facts = case_facts(repo)
        outcome = score(case, facts, "facts", factual_subject(facts))
        assert outcome.grounded and outcome.mentions_target and outcome.type_fits, (case.id, outcome.subject)
        assert outcome.well_formed and not outcome.refuted, outcome.subject


def test_scores_tell_grounded_from_ungrounded_vague_and_refuted(cases, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    case = next(c for c in cases if c.kind == "docstring_return")
    stage_case(case, tmp_path / "r")
    facts = case_facts(tmp_path / "r")
    name = case.targets[0]
    good = score(case, facts, "after", f"fix: double what {name} returns")
    assert good.grounded and good.mentions_target and good.type_fits and not good.refuted
    foreign = score(case, facts, "before", f"fix: double what {name} returns in not_here.py")
    assert foreign.ungrounded == ["not_here.py"] and not foreign.grounded and not foreign.names_only_diff
    vague = score(case, facts, "before", "chore: checks the diff between two files")
    assert vague.names_only_diff and not vague.names_change and not vague.grounded and not vague.type_fits
    refuted = score(case, facts, "before", f"feat: add {name}")
    assert refuted.refuted and refuted.grounded  # it names the right thing, wrongly
    rows = {s.variant: s for s in summarise([good, foreign, vague])}
    assert rows["after"].grounded == 1.0 and rows["before"].grounded == 0.0 and rows["before"].cases == 2
