"""Commit messages grounded in the change's facts, end to end: the real `prepare-commit-msg`
hook in real git repositories, `ninetyten explain --json`, and `ninetyten eval commit`.

Two models. The embedded Gemma 3 270M is what users get: on the change it once called
"chore: checks the diff between two files" (a docstring added, a return value doubled) the
message must name what changed and nothing else. The tiny endless model writes "xxxx..."
whatever it is asked, so every subject it is given is vague: what comes out is the factual
subject, exact and predictable, which shows that the hook reads the staged files' whole texts.

git reads no user or system configuration; every repository, home and ledger is under
pytest's tmp dirs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from lsp_server.explain.diff import parse_diff, range_diff
from lsp_server.explain.facts import GitTexts, anchored, extract_facts, ungrounded_names
from lsp_server.explain.facts.claims import states_a_change
from tests.conftest_engine import engine_env
from tests.e2e.test_git_hooks import Listener
from tests.trusted_policy import trust_policy

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

SUBJECT = re.compile(r"^(feat|fix|docs|style|refactor|perf|test|build|ci|chore|revert)(\([^)]+\))?!?: .+")
CALC = "def total(items):\n    return sum(items)\n"
CALC_AFTER = 'def total(items):\n    """Sum of the items, doubled."""\n    return 2 * sum(items)\n'


def base_env(tmp_path: Path, home: Path, model: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "NINETYTEN_"))}
    (tmp_path / "cfg").mkdir(exist_ok=True)
    env.update(
        {
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_EDITOR": "true",
            "NINETYTEN_HOME": str(home),
            "NINETYTEN_HOOK_TIMEOUT": "240",
            "LC_ALL": "C",
            **engine_env(),
        }
    )
    if model is not None:
        env["NINETYTEN_MODEL"] = str(model)
    return env


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"git {args}: {proc.stderr}"
    return proc.stdout


def ninetyten(repo: Path, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def new_repo(path: Path, env: dict[str, str], files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, env, "init", "-q")
    git(path, env, "config", "user.name", "T")
    git(path, env, "config", "user.email", "t@example.com")
    write(path, files)
    git(path, env, "add", "-A")
    git(path, env, "commit", "-q", "-m", "initial commit")  # -m: before the hook, and the hook leaves -m alone
    return path


def write(repo: Path, files: dict[str, str | None]) -> None:
    for rel, text in files.items():
        if text is None:
            (repo / rel).unlink()
            continue
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


def commit_with_hook(repo: Path, env: dict[str, str], files: dict[str, str | None]) -> str:
    """Stage `files` and run a plain `git commit`: the hook writes the message. Its subject."""
    write(repo, files)
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q")
    return git(repo, env, "log", "-1", "--format=%B").strip()


def head_facts(repo: Path):  # type: ignore[no-untyped-def]
    return extract_facts(parse_diff(range_diff(repo, "HEAD")), GitTexts.between(repo, "HEAD~1", "HEAD"))


@pytest.mark.gemma
def test_the_hook_grounds_the_issue_example_on_the_embedded_model(gemma_model_path, ninetyten_test_home, tmp_path):
    env = base_env(tmp_path, ninetyten_test_home, None)  # no NINETYTEN_MODEL: the embedded default
    repo = new_repo(tmp_path / "repo", env, {"calc.py": CALC})
    installed = ninetyten(repo, env, "hook", "install")
    assert installed.returncode == 0, installed.stderr

    message = commit_with_hook(repo, env, {"calc.py": CALC_AFTER})
    subject = message.split("\n")[0]
    facts = head_facts(repo)
    assert SUBJECT.match(subject) and len(subject) <= 72, message
    assert ungrounded_names(subject, facts) == [], message  # names only what the diff has
    assert anchored(subject, facts) and states_a_change(subject), message  # says what changed, by name
    assert "total" in subject, message
    assert "checks the diff" not in message
    with closing(sqlite3.connect(Path(ninetyten_test_home) / "ledger.sqlite3")) as db:
        tiers = [row[0] for row in db.execute("SELECT tier FROM attempts WHERE task = 'commit_message'")]
    assert "local" in tiers  # the model was asked: the subject is its own or what the check put in its place


def test_the_hook_writes_the_factual_subject_when_the_model_says_nothing(endless_model_path, tmp_path):
    env = base_env(tmp_path, tmp_path / "home", endless_model_path)
    repo = new_repo(
        tmp_path / "repo",
        env,
        {
            "calc.py": CALC,
            "README.md": "# calc\n",
            "m.py": "def load(p):\n    return open(p).read()\n\n\ndef main():\n    return load('x')\n",
            "pyproject.toml": '[project]\nname = "calc"\ndependencies = [\n    "httpx>=0.27,<1",\n    "rich>=13",\n]\n',
        },
    )
    assert ninetyten(repo, env, "hook", "install").returncode == 0

    # The model's "xxxx..." names nothing of any change: each subject is the one the facts make.
    assert (
        commit_with_hook(repo, env, {"calc.py": CALC_AFTER})
        == "fix: change what total returns and document it in calc.py"
    )
    assert (
        commit_with_hook(
            repo, env, {"m.py": "def _load(p):\n    return open(p).read()\n\n\ndef main():\n    return _load('x')\n"}
        )
        == "refactor: rename load to _load in m.py"
    )
    assert (
        commit_with_hook(
            repo,
            env,
            {
                "pyproject.toml": '[project]\nname = "calc"\ndependencies = [\n'
                '    "httpx>=0.28,<1",\n    "rich>=13",\n]\n'
            },
        )
        == "build(deps): bump httpx from >=0.27,<1 to >=0.28,<1"
    )
    assert commit_with_hook(repo, env, {"README.md": "# calc\n\nAdds things up.\n"}) == "docs: update README.md"
    # Five functions changed: the subject cannot name them all, so the body lists the facts.
    message = commit_with_hook(repo, env, {f"ops{i}.py": f"def op{i}(x):\n    return x + {i}\n" for i in range(5)})
    subject, _, body = message.partition("\n\n")
    assert subject == "feat: add op0, op1 and 3 more", message
    assert "- ops0.py: function op0 added" in body.splitlines(), message


def test_a_model_that_never_answers_still_leaves_the_facts_message(endless_model_path, tmp_path):
    """The policy sends commit messages to an in-house server that accepts and never answers:
    when the budget runs out, the commit gets the facts' message, and git drops the note."""
    listener = Listener()
    try:
        env = {**base_env(tmp_path, tmp_path / "home", endless_model_path), "NINETYTEN_HOOK_TIMEOUT": "3"}
        repo = new_repo(tmp_path / "repo", env, {"calc.py": CALC})
        policy = repo / ".ninetyten" / "policy.toml"
        write(
            repo,
            {
                ".ninetyten/policy.toml": (
                    '[tiers.local]\nbackend = "llama_cpp"\nmodel = "default"\n\n'
                    f'[tiers.in_house]\nbackend = "openai"\nmodel = "team-model"\nbase_url = "http://127.0.0.1:{listener.port}/v1"\n'
                    'keeps_data_home = true\ntimeout_s = 60\nmax_retries = 0\n\n[[rules]]\nname = "messages in-house"\n'
                    'task = ["commit_message"]\nroute = "in_house"\n'
                )
            },
        )
        git(repo, env, "add", "-A")
        git(repo, env, "commit", "-q", "-m", "team policy")
        trust_policy(policy, tmp_path / "home")
        assert ninetyten(repo, env, "hook", "install").returncode == 0
        message = commit_with_hook(repo, env, {"calc.py": CALC_AFTER})
        assert listener.accepted  # the model was asked, and never answered
        assert message == "fix: change what total returns and document it in calc.py"
    finally:
        listener.close()


def test_explain_json_carries_the_facts_and_the_check(endless_model_path, tmp_path):
    env = base_env(tmp_path, tmp_path / "home", endless_model_path)
    repo = new_repo(tmp_path / "repo", env, {"calc.py": CALC})
    write(repo, {"calc.py": CALC_AFTER})
    git(repo, env, "add", "-A")

    result = ninetyten(repo, env, "explain", "--commit-message", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "function changed: total in calc.py (return value changed, docstring added)" in data["facts"]
    check = data["subject_check"]
    assert check["replaced"] and check["reason"] == "vague" and check["model_subject"].startswith("chore: xxx")
    assert data["commit_message"] == "fix: change what total returns and document it in calc.py"
    assert data["explanation"].endswith(
        "Changed (from the diff):\n- calc.py: function total changed: return value changed, docstring added"
    )

    # A committed change (a range): the whole texts come from the two commits.
    git(repo, env, "commit", "-q", "-m", "double the total")
    ranged = json.loads(ninetyten(repo, env, "explain", "HEAD", "--commit-message", "--json").stdout)
    assert ranged["commit_message"] == "fix: change what total returns and document it in calc.py"
    # A piped diff has only its hunks: the function is still named, its details are unknown.
    diff = git(repo, env, "show", "--format=", "HEAD")
    piped = subprocess.run(
        [sys.executable, "-m", "lsp_server", "explain", "-", "--commit-message", "--json"],
        input=diff,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["commit_message"] == "fix: change total in calc.py"


def test_eval_commit_scores_both_pipelines_in_one_run(endless_model_path, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "NINETYTEN_HOME": str(tmp_path / "home")}
    env.pop("NINETYTEN_MODEL", None)
    env.pop("NINETYTEN_POLICY", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lsp_server",
            "eval",
            "commit",
            "--limit",
            "3",
            "--json",
            "--model",
            str(endless_model_path),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["command"] == "commit" and report["cases"] == 3 and report["model"] == endless_model_path.name
    assert report["kinds"] == {"docstring_return": 1, "add_function": 1, "remove_function": 1}
    rows = {s["variant"]: s for s in report["summaries"]}
    assert set(rows) == {"before", "model", "after", "facts"}
    # "xxxx" names nothing: ungrounded before, replaced after by subjects that name what changed.
    assert rows["before"]["grounded"] == 0.0 and rows["before"]["mentions_target"] == 0.0
    assert rows["after"]["grounded"] == 1.0 and rows["after"]["mentions_target"] == 1.0
    assert report["model_subject_kept"] == 0.0 and report["reasons"] == {"vague": 3}
    assert rows["before"]["latency_p50_ms"] > 0 and rows["after"]["latency_p50_ms"] > 0
    lines = [json.loads(line) for line in (out / "commit_cases.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and {line["variant"] for line in lines} == {"before", "model", "after", "facts"}
    assert json.loads((out / "commit.json").read_text())["cases"] == 3
    after = [line for line in lines if line["variant"] == "after"]
    assert all(
        line["subject"]
        == next(f["subject"] for f in lines if f["variant"] == "facts" and f["case_id"] == line["case_id"])
        for line in after
    )
