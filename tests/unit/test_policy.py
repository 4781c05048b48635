"""The policy file: the shipped example loads; every error names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.routing.policy import POLICY_ENV, Policy, PolicyError, load_policy_file, parse_policy
from lsp_server.routing.policy_lookup import find_policy, load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"


def test_example_policy_loads_exactly_as_written():
    policy = load_policy_file(EXAMPLE)
    assert policy.version == 1 and policy.offline is False
    assert policy.tiers["local"].backend == "llama_cpp" and policy.tiers["local"].model == "default"
    assert policy.tiers["in_house"].keeps_data_home is True
    assert policy.tiers["frontier"].api_key_env == "ANTHROPIC_API_KEY"
    assert policy.tiers["frontier"].price.output_per_mtok == 10.0
    assert policy.sensitivity.on_sensitive == "keep_home"
    assert [rule.name for rule in policy.rules] == [
        "completions stay local",
        "high-risk refactors go to the frontier",
        "explanations start local",
    ]
    assert policy.rules[2].escalate_to == "frontier"
    assert policy.escalation.completion_min_mean_logprob == -0.5
    assert policy.budget.daily_usd == 5.0


def test_builtin_default_is_everything_local():
    policy = Policy()
    assert set(policy.tiers) == {"local"} and policy.default_route == "local"


def test_digest_changes_with_content():
    a = parse_policy(EXAMPLE.read_text())
    b = parse_policy(EXAMPLE.read_text().replace("daily_usd = 5.0", "daily_usd = 6.0"))
    assert a.digest != b.digest and len(a.digest) == 12


BROKEN = """version = 1

[tiers.local]
backend = "llama_cpp"
model = "default"

[[rules]]
name = "fine"
route = "local"

[[rules]]
name = "bad route"
route = "moon"

[budget]
soft_fraction = 3
"""


def test_validation_errors_name_file_line_and_key(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    problems = {key: line for line, key, _ in info.value.problems}
    assert problems["rules.1.route"] == 13
    assert problems["budget.soft_fraction"] == 16
    assert f"{path}:13: rules.1.route" in str(info.value)


def test_toml_syntax_error_has_line(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('version = 1\n[tiers.local\nbackend = "llama_cpp"\n')
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    assert info.value.first_line == 2
    assert "not valid TOML" in str(info.value)


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('[tiers.frontier]\nbackend = "anthropic"\nmodel = "m"\n', "tiers.frontier"),  # no base_url
        ('[tiers.frontier]\nbackend = "openai"\nmodel = "m"\nbase_url = "ftp://x"\n', "tiers.frontier"),
        ('[sensitivity]\non_sensitive = "shrug"\n', "sensitivity.on_sensitive"),
        ('[sensitivity]\nallowlist = ["(unclosed"]\n', "sensitivity.allowlist"),
        ('[escalation]\nverify = ["vibes"]\n', "escalation.verify.0"),
        ("surprise = true\n", "tiers.local.surprise"),  # follows [tiers.local]
    ],
)
def test_invalid_values_are_rejected(snippet, key):
    text = 'version = 1\n[tiers.local]\nbackend = "llama_cpp"\nmodel = "default"\n' + snippet
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert any(problem_key.startswith(key) for _, problem_key, _ in info.value.problems), info.value.problems


def test_local_tier_is_required():
    with pytest.raises(PolicyError, match="tiers.local is required"):
        parse_policy('version = 1\n[tiers.frontier]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://x"\n')


def test_where_the_policy_comes_from(tmp_path, monkeypatch):
    monkeypatch.delenv(POLICY_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    workspace = tmp_path / "ws"
    (workspace / ".ninetyten").mkdir(parents=True)
    assert find_policy(None, workspace) == ("builtin", None)
    user = tmp_path / "config" / "ninetyten" / "policy.toml"
    user.parent.mkdir(parents=True)
    user.write_text(EXAMPLE.read_text())
    assert find_policy(None, workspace) == ("user", user)
    team = workspace / ".ninetyten" / "policy.toml"
    team.write_text(EXAMPLE.read_text())
    assert find_policy(None, workspace) == ("workspace", team)
    env_file = tmp_path / "env.toml"
    env_file.write_text(EXAMPLE.read_text())
    monkeypatch.setenv(POLICY_ENV, str(env_file))
    assert find_policy(None, workspace) == ("env", env_file)
    flag = tmp_path / "flag.toml"
    assert find_policy(flag, workspace) == ("flag", flag)
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(flag, workspace)
    assert load_policy(None, workspace).source == "env"


FRONTIER_POLICY = """version = 1
[tiers.local]
backend = "llama_cpp"
model = "default"
[tiers.frontier]
backend = "anthropic"
base_url = "http://127.0.0.1:9"
model = "claude-test"
timeout_s = 20
"""


async def test_a_reload_closes_the_old_clients_only_after_calls_on_them_could_have_ended():
    import asyncio

    from lsp_server.routing.policy import LoadedPolicy
    from lsp_server.routing.runtime import MIN_GRACE_S, PolicyState

    old = PolicyState.build(LoadedPolicy(parse_policy(FRONTIER_POLICY), "user", None))
    client = old.remote["frontier"]._client
    # A call that took this snapshot just before the reload still has its whole time box.
    assert old.longest_call_s() >= 20 + old.remote["frontier"].retry.deadline_s >= MIN_GRACE_S
    old.close_soon(grace_s=0.2)
    await asyncio.sleep(0.05)
    assert not client.is_closed  # still usable by the request that took it
    await asyncio.sleep(0.3)
    assert client.is_closed  # and not left open for good
