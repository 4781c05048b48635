"""The threshold sweep and recommendation of `ninetyten eval escalation`, on made-up outcomes."""

from __future__ import annotations

import pytest

from lsp_server.eval.escalation_eval import SIGNALS, policy_snippet, recommend, strong_tier_of, threshold_sweep
from lsp_server.eval.results import TaskOutcome
from lsp_server.routing.escalation import completion_confident
from lsp_server.routing.policy import Policy, TierConfig, parse_policy


def outcome(mean: float | None, passed: bool, text: str | None = "x = 1") -> TaskOutcome:
    return TaskOutcome(
        task_id="t",
        problem_id="p",
        kind="single",
        variant="pipeline",
        tier="local",
        completion=text,
        expected="x = 1",
        passed=passed,
        status="passed" if passed else "failed",
        exact_match=passed,
        edit_similarity=1.0,
        latency_ms=1.0,
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=0.0,
        stop_reason="stop_rule",
        mean_logprob=mean,
        min_logprob=mean,
    )


LOCAL = [
    outcome(-0.1, True),
    outcome(-0.5, True),
    outcome(-2.0, False),
    outcome(-3.0, False),
    outcome(None, False, text=None),
]  # an empty answer: the engine never escalates it
STRONG = [1.0] * 5


def test_the_sweep_matches_what_the_engine_would_escalate():
    sweep = threshold_sweep(LOCAL, STRONG)
    for point in sweep:
        engine_escalates = [
            o.completion is not None and not completion_confident(o.mean_logprob, point.threshold) for o in LOCAL
        ]
        assert point.escalation_rate == sum(engine_escalates) / 5
        assert point.threshold <= 0.0  # the policy schema allows nothing above 0
    rates = [p.escalation_rate for p in sweep]
    assert rates == sorted(rates) and rates[0] == 0.0 and rates[-1] == 0.8  # the empty answer stays local
    assert sweep[-1].pass_at_1 == 0.8


def test_recommendation_stays_under_the_target_rate():
    sweep = threshold_sweep(LOCAL, STRONG)
    chosen = recommend(sweep, 0.4)
    assert chosen is not None and chosen.escalation_rate == 0.4
    assert chosen.pass_at_1 == 0.8  # the two failures with the lowest mean log-prob went up
    assert -2.0 < chosen.threshold <= -0.5
    assert recommend(sweep, 0.3).escalation_rate == 0.2  # type: ignore[union-attr]


def test_policy_snippet_is_valid_policy():
    policy = parse_policy(policy_snippet(-1.25, "in_house"))
    assert policy.escalation.completion_min_mean_logprob == -1.25
    assert "escalate_to = \"in_house\"" in policy_snippet(-1.25, "in_house")


def test_signals_rank_the_empty_answer_as_the_engine_does():
    signals = {s.name: s for s in SIGNALS}
    empty = LOCAL[-1]
    assert signals["mean_logprob"].confidence(empty) == pytest.approx(float("inf"))
    assert signals["min_logprob"].confidence(empty) == float("-inf")


def test_strong_tier_defaults_to_the_frontier_then_in_house():
    remote = TierConfig(backend="openai", model="m", base_url="http://127.0.0.1:1/v1")
    local = TierConfig(backend="llama_cpp", model="default")
    assert strong_tier_of(Policy(), None) is None
    assert strong_tier_of(Policy(tiers={"local": local, "in_house": remote}), None) == "in_house"
    assert strong_tier_of(Policy(tiers={"local": local, "in_house": remote, "frontier": remote}), None) == "frontier"
    assert strong_tier_of(Policy(tiers={"local": local, "frontier": remote}), "none") is None
