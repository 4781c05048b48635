"""A cloned repository cannot take your keys or your code.

The workspace's `.ninetyten/policy.toml` (tests/hostile_repo.py) points every tier at a
loopback recorder and names, as the key, a variable that holds a canary value. Through the
real language server (completion and its escalation, explain, explain this change, refactor,
ask), `ninetyten explain`, and the real git hook under real git, the recorder receives nothing
and the canary appears in no request, log, ledger row or notification. Then the user approves
the file and the same requests do go out, with the canary as the key: the tests can fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_code_actions import execute
from tests.e2e.test_routing_server import _as_dict, request
from tests.hostile_repo import CANARY, CANARY_ENV, canary_in_home, write_hostile_policy
from tests.loopback_provider import LoopbackProvider
from tests.lsp_session import inline, lsp_session, open_document, served_notifications

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef total(values):\n    return \n"
SELECTION = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 16}}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(CANARY_ENV, CANARY)
    monkeypatch.delenv("NINETYTEN_POLICY", raising=False)
    with LoopbackProvider(reply="It adds two numbers.") as provider:
        yield provider


@pytest.fixture
def repo(tmp_path: Path, recorder: LoopbackProvider, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cloned repository with the hostile policy committed and a change staged."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user policy of the machine's
    path = tmp_path / "repo"
    path.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "d@e.f"],
        ["config", "user.name", "D"],
        ["config", "commit.gpgsign", "false"],
    ):
        git(path, *args)
    write_hostile_policy(path, recorder.url)
    (path / "calc.py").write_text(SOURCE)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    (path / "calc.py").write_text(SOURCE.replace("return \n", "return sum(values)\n"))
    git(path, "add", "calc.py")
    return path


def canary_in(*texts: Any) -> bool:
    return any(CANARY in (t if isinstance(t, str) else json.dumps(t, default=str)) for t in texts)


async def drive(client: Any, repo: Path) -> dict[str, Any]:
    """Every request of an editor session that can reach a remote tier."""
    uri = open_document(client, repo / "calc.py", (repo / "calc.py").read_text())
    answers: dict[str, Any] = {}
    completion = await inline(client, uri, 5, len("    return sum(values)"))
    answers["completion"] = [item.insert_text for item in completion.items] if completion else []
    answers["explain"] = _as_dict(await request(client, "ninetyten/explain", uri, range=SELECTION))
    answers["refactor"] = _as_dict(
        await request(client, "ninetyten/refactor", uri, range=SELECTION, instruction="rename add to plus")
    )
    answers["ask"] = _as_dict(await request(client, "ninetyten/ask", uri, range=SELECTION, question="overflow?"))
    answers["change"] = await execute(client, "ninetyten.explainChange", {"staged": True})
    return answers


async def test_the_language_server_sends_nothing_until_the_policy_is_approved(
    recorder, repo, endless_model_path, tmp_path
):
    home = tmp_path / "home"
    log = tmp_path / "server.log"
    options = {"completion": {"max_tokens": 4, "cache_size": 0, "time_limit_ms": 30000}, "assist": {"max_tokens": 8}}
    async with lsp_session(
        model=endless_model_path, home=home, root=repo, options=options, extra_args=["-v", "--log-file", str(log)]
    ) as client:
        state = _as_dict(await client.protocol.send_request_async("ninetyten/policyTrust", {}))
        assert state["trust"] == "untrusted" and state["needsApproval"] is True
        wanted = {item["key"] for item in state["ignored"]}
        assert {
            "tiers.frontier",
            "tiers.in_house",
            "tiers.local.model",
            "rules[0]",
            "rules[1]",
            "sensitivity.allowlist",
            "escalation.completion_min_mean_logprob",
        } <= wanted
        untrusted = await drive(client, repo)
        await asyncio.sleep(0.3)
        assert recorder.requests == []
        assert all(answer.get("tier") in ("local", None) for key, answer in untrusted.items() if key != "completion")
        notices = [m.message for m in client.messages if "not trusted" in m.message]
        assert len(notices) == 1, client.messages  # said once, in the editor
        assert "tiers.in_house" in notices[0] and "ninetyten policy trust" in notices[0]
        before = {
            "answers": untrusted,
            "messages": [m.message for m in client.messages],
            "log messages": [m.message for m in client.log_messages],
            "served": served_notifications(client),
            "trust state": state,
        }
        assert not canary_in(before)

        # The user approves exactly the file they were shown: the same requests now go out.
        approved = await execute(client, "ninetyten.trustPolicy", {"sha256": state["sha256"]})
        assert approved["trust"] == "approved" and approved["needsApproval"] is False
        trusted = await drive(client, repo)
        assert trusted["explain"]["tier"] == "frontier" and trusted["ask"]["tier"] == "frontier"
        assert trusted["completion"] == ["It adds two numbers."]  # every completion escalates
        assert {r.headers.get("x-api-key") for r in recorder.requests} == {CANARY}
        assert len([m for m in client.messages if "not trusted" in m.message]) == 1

        # Withdrawn, it is ignored again.
        count = len(recorder.requests)
        assert (await execute(client, "ninetyten.untrustPolicy"))["trust"] == "untrusted"
        assert (await drive(client, repo))["explain"]["tier"] == "local"
        assert len(recorder.requests) == count
    assert not canary_in(log.read_text(errors="replace"))
    assert canary_in_home(home) == []


async def test_an_approved_policy_edited_later_is_untrusted_again(recorder, repo, endless_model_path, tmp_path):
    """Hot reload keeps working: an approved file that changes falls back to untrusted."""
    home = tmp_path / "home"
    policy = repo / ".ninetyten" / "policy.toml"
    async with lsp_session(
        model=endless_model_path, home=home, root=repo, options={"assist": {"max_tokens": 8}}
    ) as client:
        uri = open_document(client, repo / "calc.py", SOURCE)
        state = _as_dict(await client.protocol.send_request_async("ninetyten/policyTrust", {}))
        assert (await execute(client, "ninetyten.trustPolicy", {"sha256": "0" * 64}))["error"]  # not what was shown
        await execute(client, "ninetyten.trustPolicy", {"sha256": state["sha256"]})
        assert _as_dict(await request(client, "ninetyten/explain", uri, range=SELECTION))["tier"] == "frontier"
        count = len(recorder.requests)
        policy.write_text(policy.read_text() + "\n# one more line\n")  # as a `git pull` would
        for _ in range(200):
            now = _as_dict(await client.protocol.send_request_async("ninetyten/policyTrust", {}))
            if now["sha256"] != state["sha256"]:
                break
            await asyncio.sleep(0.05)
        assert now["trust"] == "untrusted" and now["needsApproval"] is True
        assert _as_dict(await request(client, "ninetyten/explain", uri, range=SELECTION))["tier"] == "local"
        assert len(recorder.requests) == count
        notices = [m.message for m in client.messages if "not trusted" in m.message]
        assert len(notices) == 2  # once for each content of the file


def run_cli(
    repo: Path, home: Path, model: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NINETYTEN_HOME": str(home), "NINETYTEN_MODEL": str(model), "NINETYTEN_HOOK_TIMEOUT": "120"}
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        input=stdin,
    )


def test_ninetyten_explain_and_route_send_nothing_until_approved(recorder, repo, endless_model_path, tmp_path):
    home = tmp_path / "home"
    untrusted = run_cli(repo, home, endless_model_path, "explain", "--commit-message", "--json")
    assert untrusted.returncode == 0, untrusted.stderr
    assert json.loads(untrusted.stdout)["usage"]["tiers"] == ["local"]
    assert "not trusted" in untrusted.stderr and "ninetyten policy trust" in untrusted.stderr
    route = run_cli(repo, home, endless_model_path, "route", "--task", "refactor", "--json")
    assert json.loads(route.stdout)["tier"] == "local"
    # doctor and policy show say what is ignored; the policy shown is the one in force.
    doctor = run_cli(repo, home, endless_model_path, "doctor")
    assert "NOT TRUSTED" in doctor.stdout and "ignored: tiers.frontier" in doctor.stdout, doctor.stdout
    shown = run_cli(repo, home, endless_model_path, "policy", "show")
    assert set(json.loads(shown.stdout)["tiers"]) == {"local"} and "ignored: tiers.frontier" in shown.stderr
    assert recorder.requests == []
    assert not canary_in(
        untrusted.stdout,
        untrusted.stderr,
        route.stdout,
        route.stderr,
        doctor.stdout,
        doctor.stderr,
        shown.stdout,
        shown.stderr,
    )

    # Without a terminal and without --yes nothing is approved; with --yes it is.
    shown = run_cli(repo, home, endless_model_path, "policy", "trust")
    assert shown.returncode == 1 and "tiers.frontier" in shown.stdout and "--yes" in shown.stderr
    assert run_cli(repo, home, endless_model_path, "explain", "--json").returncode == 0 and recorder.requests == []
    approved = run_cli(repo, home, endless_model_path, "policy", "trust", "--yes")
    assert approved.returncode == 0 and "trusted:" in approved.stdout, approved.stderr
    trusted = run_cli(repo, home, endless_model_path, "explain", "--json")
    assert json.loads(trusted.stdout)["usage"]["tiers"] == ["frontier"], trusted.stderr
    assert recorder.requests and {r.headers.get("x-api-key") for r in recorder.requests} == {CANARY}
    assert canary_in_home(home) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_git_hook_uses_only_approved_policies(recorder, repo, endless_model_path, tmp_path):
    home = tmp_path / "home"
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(home),
        "NINETYTEN_MODEL": str(endless_model_path),
        "NINETYTEN_HOOK_TIMEOUT": "120",
        "GIT_EDITOR": "true",
    }
    installed = subprocess.run(
        [sys.executable, "-m", "lsp_server", "hook", "install"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert installed.returncode == 0, installed.stderr
    committed = git(repo, "commit", "-q", env=env)  # the hook writes the message; it never asks anything
    subject = git(repo, "log", "-1", "--format=%s").stdout.strip()
    assert subject and subject != "init" and recorder.requests == []
    assert not canary_in(committed.stdout, committed.stderr, subject)

    assert run_cli(repo, home, endless_model_path, "policy", "trust", "--yes").returncode == 0
    (repo / "calc.py").write_text(SOURCE.replace("return \n", "return sum(values) or 0\n"))
    git(repo, "add", "calc.py")
    git(repo, "commit", "-q", env=env)
    assert any("commit message" in json.dumps(r.body) for r in recorder.requests), recorder.requests
    assert canary_in_home(home) == []
