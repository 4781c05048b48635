"""Router and completion metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from lsp_server.eval.metrics import (
    apgr,
    auroc,
    cpt,
    edit_similarity,
    escalation_curve,
    exact_match,
    levenshtein,
    normalise,
    oracle_confidence,
    percentile,
)

# Four requests: the local tier passes 0 and 1, the strong tier passes all four.
WEAK = [1.0, 1.0, 0.0, 0.0]
STRONG = [1.0, 1.0, 1.0, 1.0]


def test_perfect_router_recovers_the_gap_first():
    # Least confident first: the two failures (2, 3), then the passes.
    curve = escalation_curve([0.9, 0.8, 0.1, 0.2], WEAK, STRONG)
    assert [p.quality for p in curve.points] == [0.5, 0.75, 1.0, 1.0, 1.0]
    assert [p.pgr for p in curve.points] == [0.0, 0.5, 1.0, 1.0, 1.0]
    # Trapezoids of width 1/4: (0+.5)/2 + (.5+1)/2 + 1 + 1, over 4.
    assert apgr(curve) == pytest.approx((0.25 + 0.75 + 1 + 1) / 4)  # 0.75
    assert cpt(curve, 0.5) == pytest.approx(0.25)
    assert cpt(curve, 0.8) == pytest.approx(0.25 + 0.25 * 0.6)  # interpolated inside the 2nd step


def test_inverse_router_escalates_the_passes_first():
    curve = escalation_curve([0.1, 0.2, 0.9, 0.8], WEAK, STRONG)
    assert [p.pgr for p in curve.points] == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert apgr(curve) == pytest.approx((0 + 0 + 0.25 + 0.75) / 4)  # 0.25
    assert cpt(curve, 0.5) == pytest.approx(0.75)
    assert cpt(curve, 0.8) == pytest.approx(0.75 + 0.25 * 0.6)


def test_a_constant_score_is_the_random_router():
    # Ties are escalated in random order: the expected curve is the diagonal.
    curve = escalation_curve([0.5] * 4, WEAK, STRONG)
    assert [p.pgr for p in curve.points] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 0.5) == pytest.approx(0.5)
    assert cpt(curve, 0.8) == pytest.approx(0.8)


def test_oracle_uses_the_outcomes_and_handles_a_strong_tier_that_loses():
    weak = [1.0, 0.0, 1.0, 0.0]
    strong = [0.0, 1.0, 1.0, 0.0]  # escalating request 0 would lose a pass
    curve = escalation_curve(oracle_confidence(weak, strong), weak, strong)
    # Gain first (request 1), then the neutral ones, the loss last.
    assert [p.quality for p in curve.points] == [0.5, 0.75, 0.75, 0.75, 0.5]
    assert curve.gap == 0.0
    assert apgr(curve) is None and cpt(curve, 0.5) is None  # no gap to recover


def test_escalation_curve_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        escalation_curve([0.1], [1.0, 0.0], [1.0, 1.0])


def test_auroc_against_hand_counted_pairs():
    # Predicting failure: positives are failures, score = -confidence.
    assert auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    # Pairs (pos, neg): (2,1) win, (2,3) lose, (0,1) lose, (0,3) lose -> 1/4.
    assert auroc([2, 1, 0, 3], [True, False, True, False]) == pytest.approx(0.25)
    # A tie counts half: (1,1) half, (1,0) win -> 1.5 / 2.
    assert auroc([1, 1, 0], [True, False, False]) == pytest.approx(0.75)
    assert auroc([1, 2], [True, True]) is None


def test_edit_similarity_and_exact_match():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert edit_similarity("return x", "return x  \n\n") == 1.0  # trailing space/blank lines do not count
    assert edit_similarity(None, "x") == 0.0
    assert edit_similarity("", "") == 1.0
    assert exact_match("a = 1\n    b = 2  ", "a = 1\n    b = 2")
    assert not exact_match("a = 1", "a = 2")
    assert not exact_match("  a = 1", "a = 1")  # leading indentation changes Python
    assert normalise("x\r\ny  \n\n") == "x\ny"


def test_percentile_interpolates_like_numpy():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([], 50) is None
    assert math.isclose(percentile([7.0], 95) or 0, 7.0)
