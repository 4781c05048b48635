"""`ninetyten explain` on real git repositories, with the routing policy in force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_routing_server import KEY, KEY_ENV, write_policy
from tests.loopback_provider import LoopbackProvider


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    git(path, "config", "commit.gpgsign", "false")
    (path / "calc.py").write_text("def divide(a, b):\n    return a / b\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    return path


def explain(
    repo: Path,
    *args: str,
    model: Path,
    stdin: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 300,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(repo.parent / "home"),
        "NINETYTEN_MODEL": str(model),
        "XDG_CONFIG_HOME": str(repo.parent / "config"),
        **(extra_env or {}),
    }
    env.pop("NINETYTEN_POLICY", None)
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "lsp_server", "explain", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=timeout,
    )


def test_nothing_staged_is_exit_zero_with_a_note(repo, endless_model_path):
    result = explain(repo, model=endless_model_path)
    assert result.returncode == 0 and result.stdout == ""
    assert "nothing to explain" in result.stderr and "git add" in result.stderr


def test_staged_change_json(repo, endless_model_path):
    (repo / "calc.py").write_text(
        "def divide(a, b):\n    if b == 0:\n        raise ValueError('b')\n    return a / b\n"
    )
    (repo / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    git(repo, "add", ".")
    result = explain(repo, "--commit-message", "--json", model=endless_model_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"explanation", "commit_message", "decision", "usage"}
    assert data["decision"]["tier"] == "local" and "reasons" in data["decision"]
    assert data["usage"]["completion_tokens"] > 0
    subject = data["commit_message"].split("\n")[0]
    assert len(subject) <= 72 and subject.split(":")[0] in ("chore", "feat", "fix")
    assert "package-lock.json (lock file" in data["explanation"]  # summarized by name, not sent


def test_revision_range_and_stdin(repo, endless_model_path):
    git(repo, "checkout", "-qb", "feature")
    (repo / "calc.py").write_text("def divide(a, b):\n    return a // b\n")
    git(repo, "commit", "-qam", "floor division")
    ranged = explain(repo, "main..HEAD", "--json", model=endless_model_path)
    assert ranged.returncode == 0, ranged.stderr
    assert json.loads(ranged.stdout)["usage"]["chunks"] == 1
    diff = git(repo, "diff", "main..HEAD")
    piped = explain(repo, "-", model=endless_model_path, stdin=diff)
    assert piped.returncode == 0 and piped.stdout.strip()
    bad = explain(repo, "nosuchbranch..HEAD", model=endless_model_path)
    assert bad.returncode == 1 and "nosuchbranch" in bad.stderr


def test_a_secret_in_the_staged_diff_keeps_it_local(repo, endless_model_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with LoopbackProvider(reply="It changes things.") as frontier:
        write_policy(repo, frontier.url, trusted_in=repo.parent / "home")  # explain goes to the frontier
        (repo / "calc.py").write_text(
            "def divide(a, b):\n    return a / b\n\nTOKEN = 'ghp_Q7dK2mX9vL4pR8sT1wY6zB3nC5fH0jA2eG7u'\n"
        )
        git(repo, "add", "calc.py")
        secret = explain(repo, "--json", model=endless_model_path)
        data = json.loads(secret.stdout)
        assert data["decision"]["sensitivity"] == "sensitive" and data["usage"]["tiers"] == ["local"]
        assert frontier.requests == []
        # A clean change under the same policy does go to the frontier.
        (repo / "calc.py").write_text("def divide(a, b):\n    return a / b  # plain division\n")
        git(repo, "add", "calc.py")
        clean = json.loads(explain(repo, "--json", model=endless_model_path).stdout)
        assert clean["usage"]["tiers"] == ["frontier"]
        assert clean["explanation"] == (
            "It changes things.\n\nChanged (from the diff):\n- calc.py: function divide changed: comments changed"
        )
        assert len(frontier.requests) == 1


# Runs a command and writes its peak RSS (KiB) to a file: RUSAGE_CHILDREN of this small parent
# covers that command alone, where the test process's own would include every earlier child.
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


@pytest.mark.timeout(900)  # dozens of model calls: minutes on a busy machine
def test_a_20000_line_diff_is_explained_in_chunks_with_bounded_memory(repo, endless_model_path):
    for index in range(40):
        body = "".join(f"value_{index}_{line} = {line} * 2\n" for line in range(500))
        (repo / f"module_{index:02d}.py").write_text(body)
    git(repo, "add", ".")
    assert int(git(repo, "diff", "--cached", "--numstat").split()[0]) == 500
    peak = repo.parent / "peak-rss"
    result = explain(
        repo,
        "--json",
        model=endless_model_path,
        timeout=800,
        extra_env={"NINETYTEN_HOME": str(repo.parent / "home20k")},
        prefix=[sys.executable, "-c", PEAK_RSS, str(peak)],
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["usage"]["chunks"] > 5  # map ...
    assert data["usage"]["calls"] > data["usage"]["chunks"]  # ... and reduce (in rounds)
    peak_mb = int(peak.read_text()) / 1024
    assert peak_mb < 600, f"peak RSS {peak_mb:.0f} MB"
