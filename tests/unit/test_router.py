"""Routing decisions: gates first, then the first matching rule, then the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.routing.policy import load_policy_file, parse_policy
from lsp_server.routing.router import RouteRequest, check_egress, decide, scanner_for
from lsp_server.routing.signals import glob_match

EXAMPLE = load_policy_file(Path(__file__).resolve().parents[2] / "examples" / "policy.toml")
SECRET = (
    'aws_access_key_id = "AKIAZ7QRT2LXW4PN3KVD"\naws_secret_access_key = "q8Lr3+Vt0Zf9YcN2mW7xKp1sHjB4uE6dRaT5gQiO"\n'
)
CLEAN = "def add(a, b):\n    return a + b\n"


def policy_text(**overrides: str) -> str:
    text = (Path(__file__).resolve().parents[2] / "examples" / "policy.toml").read_text()
    for old, new in overrides.items():
        text = text.replace(old, new)
    return text


def test_completions_stay_local():
    decision = decide(EXAMPLE, RouteRequest(task="completion", text=CLEAN, path="app/main.py"))
    assert decision.tier == "local" and decision.escalate_to is None
    assert decision.rule == "completions stay local"
    assert any("completions stay local" in reason for reason in decision.reasons)


def test_high_risk_refactor_goes_to_frontier():
    decision = decide(EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/auth/login.py"))
    assert decision.tier == "frontier" and decision.backend == "anthropic"
    assert decision.model == "claude-sonnet-5-5" and decision.risk == "high"


def test_low_risk_refactor_falls_to_default():
    decision = decide(EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/util.py"))
    assert decision.tier == "local" and decision.rule is None


def test_auto_applied_result_is_high_risk():
    decision = decide(EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/util.py", auto_apply=True))
    assert decision.risk == "high" and decision.tier == "frontier"


def test_explain_starts_local_and_escalates():
    decision = decide(EXAMPLE, RouteRequest(task="explain", text=CLEAN, path="a.py"))
    assert (decision.tier, decision.escalate_to) == ("local", "frontier")


def test_secret_keeps_it_home_even_for_high_risk_refactor():
    decision = decide(EXAMPLE, RouteRequest(task="refactor", text=SECRET, path="src/auth/keys.py"))
    assert decision.sensitivity == "sensitive"
    assert decision.tier == "in_house"  # keeps_data_home = true: the nearest allowed tier
    assert decision.escalate_to is None
    assert "AKIA" not in decision.model_dump_json()  # the content never appears


def test_secret_blocks_explain_escalation():
    decision = decide(EXAMPLE, RouteRequest(task="explain", text=SECRET, path="a.py"))
    assert decision.tier == "local" and decision.escalate_to is None


def test_sensitive_path_glob():
    decision = decide(EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="deploy/.env", auto_apply=True))
    assert decision.sensitivity == "sensitive" and decision.tier != "frontier"


def test_offline_keeps_everything_local():
    policy = parse_policy(policy_text(**{"offline = false": "offline = true"}))
    decision = decide(policy, RouteRequest(task="refactor", text=CLEAN, path="src/auth/x.py"))
    assert decision.tier == "local" and decision.escalate_to is None
    assert any("offline" in reason for reason in decision.reasons)


def test_redact_mode_marks_redaction():
    policy = parse_policy(policy_text(**{'on_sensitive = "keep_home"': 'on_sensitive = "redact"'}))
    decision = decide(policy, RouteRequest(task="refactor", text=SECRET, path="src/auth/keys.py"))
    assert decision.tier == "frontier" and decision.redact is True


def test_block_mode_refuses_remote_route():
    policy = parse_policy(policy_text(**{'on_sensitive = "keep_home"': 'on_sensitive = "block"'}))
    decision = decide(policy, RouteRequest(task="refactor", text=SECRET, path="src/auth/keys.py"))
    assert decision.blocked is True
    local = decide(policy, RouteRequest(task="completion", text=SECRET, path="src/auth/keys.py"))
    assert local.blocked is False and local.tier == "local"


def test_budget_soft_limit_goes_local_first():
    decision = decide(EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/auth/x.py"), spend_today_usd=4.5)
    assert (decision.tier, decision.escalate_to) == ("local", "frontier")


def test_budget_cap_turns_paid_tiers_off():
    decision = decide(EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/auth/x.py"), spend_today_usd=5.0)
    assert decision.tier == "in_house"  # free, keeps data home
    explain = decide(EXAMPLE, RouteRequest(task="explain", text=CLEAN), spend_today_usd=5.0)
    assert explain.escalate_to is None


TEAM_ONLY = parse_policy(policy_text(**{"daily_usd = 5.0": "team_daily_usd = 100.0"}))
BOTH = parse_policy(policy_text(**{"daily_usd = 5.0": "daily_usd = 5.0\nteam_daily_usd = 100.0"}))
HIGH_RISK = RouteRequest(task="refactor", text=CLEAN, path="src/auth/x.py")


def test_team_soft_limit_goes_local_first_on_the_teams_spend():
    """Ten developers at $9 each: nobody's own spend is near anything, the team's is."""
    decision = decide(TEAM_ONLY, HIGH_RISK, spend_today_usd=9.0, team_spend_today_usd=85.0)
    assert (decision.tier, decision.escalate_to) == ("local", "frontier")
    assert any("USD 85.00 of 100.00 spent by the team today (over 80%)" in r for r in decision.reasons)
    below = decide(TEAM_ONLY, HIGH_RISK, spend_today_usd=9.0, team_spend_today_usd=79.0)
    assert (below.tier, below.escalate_to) == ("frontier", None)


def test_team_cap_turns_paid_tiers_off():
    decision = decide(TEAM_ONLY, HIGH_RISK, spend_today_usd=0.0, team_spend_today_usd=100.0)
    assert decision.tier == "in_house"
    assert any("spent by the team today, paid tiers are off" in r for r in decision.reasons)


def test_unknown_team_spend_counts_this_developers_spend_against_the_team_cap():
    """No team ledger, or out of reach: the local rules (budget.py) apply to routing too."""
    assert decide(TEAM_ONLY, HIGH_RISK, spend_today_usd=9.0).tier == "frontier"
    decision = decide(TEAM_ONLY, HIGH_RISK, spend_today_usd=81.0)
    assert (decision.tier, decision.escalate_to) == ("local", "frontier")
    assert any("against the team's cap" in r for r in decision.reasons)


def test_both_caps_apply_and_the_stricter_wins():
    personal_soft = decide(BOTH, HIGH_RISK, spend_today_usd=4.5, team_spend_today_usd=10.0)
    assert (personal_soft.tier, personal_soft.escalate_to) == ("local", "frontier")
    team_hard = decide(BOTH, HIGH_RISK, spend_today_usd=4.5, team_spend_today_usd=100.0)
    assert team_hard.tier == "in_house" and team_hard.escalate_to is None
    assert decide(BOTH, HIGH_RISK, spend_today_usd=1.0, team_spend_today_usd=10.0).tier == "frontier"


def test_context_window_gate():
    decision = decide(
        EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/auth/x.py", estimated_tokens=500_000)
    )
    assert decision.tier == "local"
    assert any("context window" in reason for reason in decision.reasons)


def test_unavailable_tier_falls_back():
    decision = decide(
        EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/auth/x.py"), unavailable={"frontier"}
    )
    assert decision.tier == "in_house"
    assert any("unreachable" in reason for reason in decision.reasons)


def test_unconfigured_frontier_stays_local():
    policy = parse_policy(
        'version = 1\n[tiers.local]\nbackend = "llama_cpp"\nmodel = "default"\n'
        '[[rules]]\nname = "r"\ntask = ["refactor"]\nroute = "frontier"\n'
    )
    decision = decide(policy, RouteRequest(task="refactor", text=CLEAN))
    assert decision.tier == "local"
    assert any("not configured" in reason for reason in decision.reasons)


def test_egress_check_on_escalation_payload():
    assert check_egress(EXAMPLE, CLEAN, "a.py", "frontier").allowed
    check = check_egress(EXAMPLE, CLEAN + SECRET, "a.py", "frontier")
    assert not check.allowed and check.report.sensitive
    assert check_egress(EXAMPLE, SECRET, "a.py", "in_house").allowed  # keeps data home


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        (".env", "**/.env", True),
        ("a/b/.env", "**/.env", True),
        ("a/b/.envrc", "**/.env", False),
        ("certs/server.pem", "**/*.pem", True),
        ("secrets/db/pass.txt", "secrets/**", True),
        ("app/secrets/x", "secrets/**", False),  # anchored at the workspace root
        ("/home/me/proj/secrets/x", "secrets/**", True),  # absolute: any tail may be the root
        ("src/auth/login.py", "**/auth/**", True),
        ("src/authz/login.py", "**/auth/**", False),
        ("infra/main.tf", "infra/**", True),
        ("Makefile", "*.py", False),
        ("pkg/mod.py", "*.py", True),
    ],
)
def test_glob_match(path, pattern, expected):
    assert glob_match(path, pattern) is expected


# -- paths: every file of a request, redaction, content derived from what stayed home ------


REDACTING = parse_policy(policy_text(**{'on_sensitive = "keep_home"': 'on_sensitive = "redact"'}))


def test_redact_mode_keeps_a_sensitive_path_home():
    """A file sensitive for where it is has no span to redact: sending it "redacted" sends it whole."""
    decision = decide(REDACTING, RouteRequest(task="refactor", text=CLEAN, path="secrets/db.py", auto_apply=True))
    assert decision.tier == "in_house" and decision.redact is False  # keeps data home
    assert any("nothing to redact" in reason for reason in decision.reasons)
    assert not check_egress(REDACTING, CLEAN, "secrets/db.py", "frontier").allowed
    assert check_egress(REDACTING, SECRET, "src/db.py", "frontier").redact  # a span: redaction works


def test_every_path_of_a_request_is_judged_and_the_strictest_decision_applies():
    clean_first = RouteRequest(task="refactor", text=CLEAN, path="src/auth/login.py", paths=("secrets/key.txt",))
    decision = decide(EXAMPLE, clean_first)
    assert decision.sensitivity == "sensitive" and decision.tier == "local", decision.reasons
    assert "path:secrets/**" in decision.sensitivity_rules
    assert decide(EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/auth/login.py")).tier == "frontier"
    # The old name of a rename counts as much as the new one.
    renamed = RouteRequest(task="explain", text=CLEAN, path="docs/key.txt", paths=("secrets/key.txt", "docs/key.txt"))
    assert decide(EXAMPLE, renamed).escalate_to is None
    assert not check_egress(EXAMPLE, CLEAN, "docs/key.txt", "frontier", paths=("secrets/key.txt",)).allowed
    # Escalation survives only where every file may escalate, and only as far as the nearest.
    both = decide(EXAMPLE, RouteRequest(task="explain", text=CLEAN, path="a.py", paths=("b.py",)))
    assert (both.tier, both.escalate_to) == ("local", "frontier")


def test_what_was_written_from_kept_home_content_stays_home():
    derived = RouteRequest(task="explain", text=CLEAN, derived_from_kept_home=True)
    decision = decide(EXAMPLE, derived)
    assert decision.tier == "local" and decision.escalate_to is None and decision.sensitivity == "sensitive"
    refactor = decide(
        EXAMPLE, RouteRequest(task="refactor", text=CLEAN, path="src/auth/x.py", derived_from_kept_home=True)
    )
    assert refactor.tier == "in_house"  # keeps data home
    check = check_egress(REDACTING, CLEAN, None, "frontier", derived_from_kept_home=True)
    assert not check.allowed and not check.redact
    assert check_egress(EXAMPLE, CLEAN, None, "in_house", derived_from_kept_home=True).allowed


def test_scanning_for_several_paths_is_scanning_for_each():
    """A chunk's text is read once per kind of file; the reports are those of `scan` per path."""
    from tests.e2e.test_routing_server import clean_files, seeded_files

    scanner = scanner_for(EXAMPLE)
    paths = ["src/app.py", "deploy/.env", "config/settings.yaml", "secrets/x.txt", "certs/server.pem", "README.md"]
    for text in [text for _, text, _ in seeded_files()[:8]] + [text for _, text in clean_files()]:
        reports = scanner.scan_paths(text, paths)
        assert {path: report.findings for path, report in reports.items()} == {
            path: scanner.scan(text, path).findings for path in paths
        }
