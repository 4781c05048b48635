"""`ninetyten route` and `ninetyten policy`: decisions printed without calling anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"
SECRET_LINE = 'token = "ghp_Q7dK2mX9vL4pR8sT1wY6zB3nC5fH0jA2eG7u"\n'


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NINETYTEN_HOME": str(cwd / "home"), "XDG_CONFIG_HOME": str(cwd / "config")}
    env.pop("NINETYTEN_POLICY", None)
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        env=env,
        timeout=60,
    )


def test_route_json_has_the_documented_fields(tmp_path):
    source = tmp_path / "auth" / "login.py"
    source.parent.mkdir()
    source.write_text("def login(user):\n    return True\n")
    result = run(
        "route",
        "--task",
        "refactor",
        "--policy",
        str(EXAMPLE),
        "--json",
        str(source.relative_to(tmp_path)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    for key in ("tier", "backend", "model", "escalate_to", "sensitivity", "risk", "reasons"):
        assert key in decision
    assert decision["tier"] == "frontier" and decision["risk"] == "high"
    assert isinstance(decision["reasons"], list) and all(isinstance(r, str) for r in decision["reasons"])


def test_route_reads_stdin_and_never_prints_content(tmp_path):
    result = run(
        "route",
        "--task",
        "explain",
        "--path",
        "src/app.py",
        "--policy",
        str(EXAMPLE),
        "--json",
        "-",
        cwd=tmp_path,
        stdin=SECRET_LINE,
    )
    decision = json.loads(result.stdout)
    assert decision["sensitivity"] == "sensitive" and decision["escalate_to"] is None
    assert "ghp_" not in result.stdout + result.stderr
    plain = run("route", "--task", "explain", "--policy", str(EXAMPLE), "-", cwd=tmp_path, stdin=SECRET_LINE)
    assert "tier        local" in plain.stdout and "ghp_" not in plain.stdout


def test_route_uses_the_workspace_policy(tmp_path):
    (tmp_path / ".ninetyten").mkdir()
    (tmp_path / ".ninetyten" / "policy.toml").write_text(
        EXAMPLE.read_text().replace("offline = false", "offline = true")
    )
    result = run("route", "--task", "refactor", "--path", "infra/main.tf", "--json", cwd=tmp_path)
    decision = json.loads(result.stdout)
    assert decision["tier"] == "local" and any("offline" in r for r in decision["reasons"])


def test_broken_policy_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[tiers.local]\nbackend = "llama_cpp"\nmodel = "default"\n[budget]\ndaily_usd = -1\n')
    result = run("route", "--task", "completion", "--policy", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:6: budget.daily_usd" in result.stderr
    check = run("policy", "check", "--policy", str(bad), cwd=tmp_path)
    assert check.returncode == 1
    good = run("policy", "check", "--policy", str(EXAMPLE), cwd=tmp_path)
    assert good.returncode == 0 and "ok:" in good.stdout
