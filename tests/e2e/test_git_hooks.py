"""The prepare-commit-msg hook in real git repositories: `ninetyten hook install`, real
`git commit` / `git merge` runs with the hook writing (or leaving alone) the message, a
hook that fails or runs out of time without blocking the commit, routing policies, and the
pre-commit framework running the hook defined in `.pre-commit-hooks.yaml`.

Every repository, hook, ledger and policy lives under pytest's tmp dirs; git reads no user
or system config. The model is a tiny GGUF (`endless_model_path`: greedy output is "x"
forever, so the message is a repaired `chore: xxx...` subject) — what is checked is that
the hook really wrote a conventional-commit subject, not what it says.

Every git process (and so the hook and llama.cpp under it) is pinned to one CPU. llama.cpp
spins its worker threads while they wait for each other; on a small machine that is busy
with something else, a run that takes half a second on one thread took over 20 s on two
(measured on a 2-core box during a parallel test run). The hook does not depend on the
thread count; pinning makes these tests' timing independent of whatever else is running.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from lsp_server.explain.hooks import MARKER
from tests.conftest_engine import engine_env
from tests.prerequisites import missing
from tests.trusted_policy import trust_policy

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # where `ninetyten` and `pre-commit` are installed
SUBJECT = re.compile(r"^(feat|fix|docs|style|refactor|perf|test|build|ci|chore|revert)(\([^)]+\))?!?: .+")
# Generous: the positive tests are about what the hook writes, not about how fast.
GENEROUS_BUDGET_S = "120"


# -- environment -------------------------------------------------------------------


def _one_cpu() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


@pytest.fixture
def env(tmp_path: Path, endless_model_path: Path) -> dict[str, str]:
    """A clean environment: no user/system git config, no user policy, the tiny model."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_", "NINETYTEN_", "PRE_COMMIT"))}
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    return {
        **base,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_EDITOR": "true",  # accept the prepared message as it is
        "GIT_TERMINAL_PROMPT": "0",
        "NINETYTEN_HOME": str(tmp_path / "ninetyten-home"),
        "NINETYTEN_MODEL": str(endless_model_path),
        "NINETYTEN_HOOK_TIMEOUT": GENEROUS_BUDGET_S,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
        "PATH": os.pathsep.join([str(VENV_BIN), base.get("PATH", os.defpath)]),
        "LC_ALL": "C",
        **engine_env(),
    }


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], *, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False, preexec_fn=_one_cpu
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def git(
    repo: Path, env: dict[str, str], *args: str, check: bool = True, **extra: str
) -> subprocess.CompletedProcess[str]:
    return run(["git", *args], repo, {**env, **extra}, check=check)


def ninetyten(cwd: Path, env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "lsp_server", *args], cwd, env, check=check)


def new_repo(path: Path, env: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, env, "init", "-q")
    git(path, env, "symbolic-ref", "HEAD", "refs/heads/main")
    for key, value in (
        ("user.name", "Test Author"),
        ("user.email", "test@example.com"),
        ("commit.gpgsign", "false"),
        ("core.autocrlf", "false"),
    ):
        git(path, env, "config", key, value)
    return path


def write(repo: Path, rel: str, text: str) -> None:
    target = repo / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def stage(repo: Path, env: dict[str, str], rel: str, text: str) -> None:
    write(repo, rel, text)
    git(repo, env, "add", "--", rel)


def message(repo: Path, env: dict[str, str], rev: str = "HEAD") -> str:
    return git(repo, env, "log", "-1", "--format=%B", rev).stdout.strip()


def subject(repo: Path, env: dict[str, str]) -> str:
    return git(repo, env, "log", "-1", "--format=%s").stdout.strip()


def commit_count(repo: Path, env: dict[str, str]) -> int:
    return int(git(repo, env, "rev-list", "--count", "HEAD").stdout)


def assert_conventional(text: str) -> None:
    assert SUBJECT.match(text), f"not a conventional-commit subject: {text!r}"
    assert len(text) <= 72, f"subject longer than 72 characters: {text!r}"


def ledger(env: dict[str, str]) -> list[dict[str, object]]:
    """Attempts recorded by the hook's engine (no content is stored there)."""
    path = Path(env["NINETYTEN_HOME"]) / "ledger.sqlite3"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT task, tier, outcome, error_kind FROM attempts ORDER BY id")]


def message_calls(env: dict[str, str]) -> list[dict[str, object]]:
    return [row for row in ledger(env) if row["task"] == "commit_message"]


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> Path:
    """A repository with one commit (made with -m, before any hook) and the hook installed."""
    path = new_repo(tmp_path / "repo", env)
    stage(path, env, "app.py", "def total(items):\n    return sum(items)\n")
    git(path, env, "commit", "-q", "-m", "initial commit")
    result = ninetyten(path, env, "hook", "install")
    assert result.returncode == 0, result.stderr
    return path


def editor_script(tmp_path: Path, seen: Path) -> str:
    """An editor that keeps a copy of what git showed it and types a message only when the
    file has none (lines starting with # or ; are comments here)."""
    script = tmp_path / "editor.sh"
    script.write_text(
        f"#!/bin/sh\ncp \"$1\" '{seen}'\ngrep -q '^[^#;]' \"$1\" || printf 'manual message\\n' >> \"$1\"\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return str(script)


class Listener:
    """A TCP port on 127.0.0.1 that accepts connections, counts them and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- install / uninstall -------------------------------------------------------------


def test_install_writes_an_executable_hook_and_is_idempotent(tmp_path, env):
    path = new_repo(tmp_path / "r", env)
    first = ninetyten(path, env, "hook", "install")
    assert first.returncode == 0, first.stderr
    hook = path / ".git" / "hooks" / "prepare-commit-msg"
    assert "installed" in first.stdout and hook.name in first.stdout
    text = hook.read_text()
    assert text.startswith("#!/bin/sh\n") and MARKER in text
    assert "-m lsp_server hook run prepare-commit-msg \"$@\"" in text and sys.executable in text
    assert os.access(hook, os.X_OK)

    again = ninetyten(path, env, "hook", "install")
    assert again.returncode == 0, again.stderr
    assert hook.read_text() == text
    assert not hook.with_name("prepare-commit-msg.orig").exists()  # ours is not "foreign"


def test_foreign_hook_is_refused_then_replaced_with_force_and_restored(tmp_path, env):
    path = new_repo(tmp_path / "r", env)
    hook = path / ".git" / "hooks" / "prepare-commit-msg"
    foreign = "#!/bin/sh\n# the team's own hook\nexit 0\n"
    hook.write_text(foreign)
    hook.chmod(0o755)

    refused = ninetyten(path, env, "hook", "install")
    assert refused.returncode == 1
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert hook.read_text() == foreign

    forced = ninetyten(path, env, "hook", "install", "--force")
    assert forced.returncode == 0, forced.stderr
    assert MARKER in hook.read_text()
    backup = hook.with_name("prepare-commit-msg.orig")
    assert backup.read_text() == foreign

    removed = ninetyten(path, env, "hook", "uninstall")
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert hook.read_text() == foreign and os.access(hook, os.X_OK)
    assert not backup.exists()

    nothing = ninetyten(path, env, "hook", "uninstall")
    assert nothing.returncode == 0 and "no ninetyten hook" in nothing.stdout
    assert hook.read_text() == foreign


def test_relative_core_hooks_path_from_a_subdirectory_is_where_git_runs_the_hook(tmp_path, env):
    path = new_repo(tmp_path / "r", env)
    git(path, env, "config", "core.hooksPath", ".githooks")
    sub = path / "src" / "deep"
    sub.mkdir(parents=True)
    result = ninetyten(sub, env, "hook", "install")  # default --repo is "."
    assert result.returncode == 0, result.stderr
    assert MARKER in (path / ".githooks" / "prepare-commit-msg").read_text()
    assert not (sub / ".githooks").exists()
    assert not (path / ".git" / "hooks" / "prepare-commit-msg").exists()

    # git really runs it from there.
    stage(path, env, "src/deep/mod.py", "VALUE = 1\n")
    git(path, env, "commit", "-q")
    assert_conventional(subject(path, env))


def test_absolute_core_hooks_path_with_repo_option(tmp_path, env):
    path = new_repo(tmp_path / "r", env)
    shared = tmp_path / "team hooks"  # a space in the path, and the directory does not exist yet
    git(path, env, "config", "core.hooksPath", str(shared))
    result = ninetyten(tmp_path, env, "hook", "install", "--repo", str(path))
    assert result.returncode == 0, result.stderr
    assert MARKER in (shared / "prepare-commit-msg").read_text()
    assert not (path / ".git" / "hooks" / "prepare-commit-msg").exists()
    assert ninetyten(tmp_path, env, "hook", "uninstall", "--repo", str(path)).returncode == 0
    assert not (shared / "prepare-commit-msg").exists()


def test_install_outside_a_repository_is_a_clean_error(tmp_path, env):
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    result = ninetyten(plain, {**env, "GIT_CEILING_DIRECTORIES": str(tmp_path)}, "hook", "install")
    assert result.returncode == 1
    assert result.stderr.startswith("ninetyten:") and "Traceback" not in result.stderr


# -- the hook writes a message -------------------------------------------------------


@pytest.mark.parametrize("how", ["staged", "all", "pathspec", "verbose"])
def test_commit_without_a_message_gets_a_conventional_subject(repo, env, how):
    """`git commit` with no message: the hook writes the subject. `-a` and `git commit PATH`
    commit through a temporary index (GIT_INDEX_FILE); `-v` puts the diff below a scissors line."""
    if how == "staged":
        stage(repo, env, "util.py", "def double(x):\n    return 2 * x\n")
        args = ["commit"]
    elif how == "all":
        write(repo, "app.py", "def total(items):\n    return sum(items, 0)\n")  # modified, not staged
        args = ["commit", "-a"]
    elif how == "pathspec":
        write(repo, "app.py", "def total(items):\n    return sum(items, 0)\n")
        args = ["commit", "app.py"]
    else:
        stage(repo, env, "util.py", "def double(x):\n    return 2 * x\n")
        args = ["commit", "-v"]
    before = commit_count(repo, env)
    git(repo, env, *args)
    assert commit_count(repo, env) == before + 1
    assert_conventional(subject(repo, env))
    assert "ninetyten" not in message(repo, env)
    calls = message_calls(env)
    assert calls and {row["tier"] for row in calls} == {"local"}


def test_template_with_only_comments_gets_a_message_and_a_real_template_is_kept(repo, env, tmp_path):
    stage(repo, env, "util.py", "def double(x):\n    return 2 * x\n")
    comments_only = tmp_path / "msg-comments"
    comments_only.write_text("# Write why, not what.\n\n# Please enter the commit message.\n")
    result = ninetyten(repo, env, "hook", "run", "prepare-commit-msg", str(comments_only), "template")
    assert result.returncode == 0, result.stderr
    written = comments_only.read_text()
    assert_conventional(written.splitlines()[0])
    assert written.endswith("# Write why, not what.\n\n# Please enter the commit message.\n")

    template = tmp_path / "msg-template"
    template.write_text("feat(app): \n\n# Write why, not what.\n")
    result = ninetyten(repo, env, "hook", "run", "prepare-commit-msg", str(template), "template")
    assert result.returncode == 0, result.stderr
    assert template.read_text() == "feat(app): \n\n# Write why, not what.\n"


def test_files_in_the_repository_do_not_shadow_ninetyten(repo, env, tmp_path):
    """git runs the hook from the top of the work tree; a repository that has its own
    `lsp_server` package (or a `json.py`) must not be imported in place of ninetyten's."""
    sentinel = tmp_path / "repository code ran"
    code = f"open({str(sentinel)!r}, 'w').close()\n"
    write(repo, "lsp_server/__init__.py", code)
    write(repo, "lsp_server/__main__.py", code)
    write(repo, "json.py", code)
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q")
    assert not sentinel.exists()
    assert_conventional(subject(repo, env))


# -- messages git already has are left alone ----------------------------------------


def _branch_with_a_commit(repo: Path, env: dict[str, str]) -> None:
    git(repo, env, "checkout", "-q", "-b", "other")
    stage(repo, env, "other.py", "OTHER = True\n")
    git(repo, env, "commit", "-q", "-m", "work on the other branch")
    git(repo, env, "checkout", "-q", "main")
    stage(repo, env, "main.py", "MAIN = True\n")
    git(repo, env, "commit", "-q", "-m", "work on main")


def _message_option(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "-q", "-m", "my words")
    return "my words"


def _empty_message_option(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "-q", "--allow-empty-message", "-m", "")
    return ""


def _file_option(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    (tmp_path / "msg.txt").write_text("words from a file\n\nwith a body\n")
    git(repo, env, "commit", "-q", "-F", str(tmp_path / "msg.txt"))
    return "words from a file\n\nwith a body"


def _amend_no_edit(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "--amend", "--no-edit", "-q")
    assert "util.py" in git(repo, env, "show", "--name-only", "--format=", "HEAD").stdout
    return "initial commit"


def _amend_with_editor(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "--amend", "-q")
    return "initial commit"


def _reuse_message(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "-q", "-C", "HEAD")
    return "initial commit"


def _merge_with_message(repo, env, tmp_path):
    _branch_with_a_commit(repo, env)
    git(repo, env, "merge", "-q", "--no-ff", "other", "-m", "bring in the other branch")
    return "bring in the other branch"


def _merge_with_gits_message(repo, env, tmp_path):
    _branch_with_a_commit(repo, env)
    git(repo, env, "merge", "-q", "--no-ff", "--edit", "other")  # editor: `true`
    return "Merge branch 'other'"


def _conflicted_merge_then_commit(repo, env, tmp_path):
    git(repo, env, "checkout", "-q", "-b", "other")
    stage(repo, env, "app.py", "def total(items):\n    return sum(items, start=0)\n")
    git(repo, env, "commit", "-q", "-m", "other total")
    git(repo, env, "checkout", "-q", "main")
    stage(repo, env, "app.py", "def total(items):\n    return sum(list(items))\n")
    git(repo, env, "commit", "-q", "-m", "main total")
    assert git(repo, env, "merge", "-q", "other", check=False).returncode != 0  # conflict
    stage(repo, env, "app.py", "def total(items):\n    return sum(list(items), start=0)\n")
    git(repo, env, "commit", "-q")  # MERGE_MSG: source "merge"
    return "Merge branch 'other'\n\n# Conflicts:\n#\tapp.py"


def _squash_merge_then_commit(repo, env, tmp_path):
    _branch_with_a_commit(repo, env)
    git(repo, env, "merge", "-q", "--squash", "other")
    git(repo, env, "commit", "-q")  # SQUASH_MSG: source "squash"
    assert message(repo, env).startswith("Squashed commit of the following:")


def _fixup(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "-q", "--fixup", "HEAD")
    return "fixup! initial commit"


def _squash_option(repo, env, tmp_path):
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "-q", "--squash", "HEAD")
    return "squash! initial commit"


KEEPERS = {
    "-m": _message_option,
    "-m ''": _empty_message_option,  # asked for on purpose: no message is the message
    "-F": _file_option,
    "amend --no-edit": _amend_no_edit,
    "amend with editor": _amend_with_editor,
    "-C HEAD": _reuse_message,
    "merge -m": _merge_with_message,
    "merge --edit": _merge_with_gits_message,
    "conflicted merge": _conflicted_merge_then_commit,
    "merge --squash": _squash_merge_then_commit,
    "--fixup": _fixup,
    "--squash": _squash_option,
}


@pytest.mark.parametrize("case", list(KEEPERS))
def test_messages_git_already_has_are_kept(repo, env, tmp_path, case):
    expected = KEEPERS[case](repo, env, tmp_path)
    if expected is not None:
        got = message(repo, env)
        # git keeps the "# Conflicts:" lines of a conflicted merge only with some cleanup modes.
        assert got == expected or (case == "conflicted merge" and got == "Merge branch 'other'"), got
    assert message_calls(env) == []  # the hook did not even ask the model


# -- a failing or slow hook never blocks the commit ----------------------------------


def _corrupt_model(tmp_path: Path) -> str:
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"not really a model" * 10)
    return str(bad)


@pytest.mark.parametrize("model", ["missing", "corrupt", "truncated"])
def test_a_failing_model_does_not_block_the_commit(repo, env, tmp_path, endless_model_path, model):
    if model == "missing":
        model_path = str(tmp_path / "no-such-model.gguf")
    elif model == "corrupt":
        model_path = _corrupt_model(tmp_path)
    else:
        truncated = tmp_path / "truncated.gguf"
        truncated.write_bytes(endless_model_path.read_bytes()[:100_000])
        model_path = str(truncated)
    seen = tmp_path / "seen-message"
    stage(repo, env, "util.py", "def double(x):\n    return 2 * x\n")
    result = git(repo, env, "commit", GIT_EDITOR=editor_script(tmp_path, seen), NINETYTEN_MODEL=model_path)
    assert message(repo, env) == "manual message"
    shown = seen.read_text()
    assert shown.startswith("# ninetyten: could not write a message ("), shown
    assert not any(line.strip() and not line.startswith("#") for line in shown.splitlines()), shown
    assert "Traceback" not in result.stderr

    # The hook itself (not only the `|| true` in the script) exits 0.
    stage(repo, env, "util.py", "def double(x):\n    return x + x\n")
    msg = tmp_path / "direct-msg"
    msg.write_text("")
    direct = ninetyten(repo, {**env, "NINETYTEN_MODEL": model_path}, "hook", "run", "prepare-commit-msg", str(msg))
    assert direct.returncode == 0 and "Traceback" not in direct.stderr
    assert msg.read_text().startswith("# ninetyten: could not write a message")


def test_a_broken_policy_is_reported_in_comments_only(repo, env, tmp_path):
    """The policy error spans several lines: every one of them must be a comment, or git
    would take the error text as the commit message."""
    write(repo, ".ninetyten/policy.toml", 'offline = "maybe"\n')
    seen = tmp_path / "seen-message"
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "-q", GIT_EDITOR=editor_script(tmp_path, seen))
    assert message(repo, env) == "manual message"
    shown = seen.read_text()
    assert "PolicyError" in shown and "offline" in shown
    assert not any(line.strip() and not line.startswith("#") for line in shown.splitlines()), shown


def test_notes_use_gits_comment_character(repo, env, tmp_path):
    git(repo, env, "config", "core.commentChar", ";")
    seen = tmp_path / "seen-message"
    stage(repo, env, "util.py", "X = 1\n")
    git(
        repo,
        env,
        "commit",
        "-q",
        GIT_EDITOR=editor_script(tmp_path, seen),
        NINETYTEN_MODEL=str(tmp_path / "missing.gguf"),
    )
    assert seen.read_text().startswith("; ninetyten: could not write a message (")
    assert message(repo, env) == "manual message"

    # And with a working model the message is written under the same rules.
    stage(repo, env, "util.py", "X = 2\n")
    git(repo, env, "commit", "-q")
    assert_conventional(subject(repo, env))


def _big_file() -> str:
    return "".join(f"entry {i}: a generated line so that the staged diff is large\n" for i in range(3000))


def test_time_budget_from_the_environment_is_kept_by_git_commit(repo, env, tmp_path):
    """A 3000-line diff takes the tiny model several seconds; with a 0.5 s budget the commit
    goes on without waiting, and the message file says why there is no message."""
    budget = 0.5
    seen = tmp_path / "seen-message"
    stage(repo, env, "data.txt", _big_file())
    started = time.monotonic()
    git(repo, env, "commit", "-q", GIT_EDITOR=editor_script(tmp_path, seen), NINETYTEN_HOOK_TIMEOUT=str(budget))
    elapsed = time.monotonic() - started
    assert message(repo, env) == "manual message"
    assert seen.read_text().startswith(f"# ninetyten: no message within {budget:g}s"), seen.read_text()
    # Python start-up and loading the model come on top of the budget; the hook's own slack is 2 s.
    assert elapsed < budget + 8, f"git commit took {elapsed:.1f}s with a {budget}s budget"


def test_timeout_option_with_a_server_that_never_answers(repo, env, tmp_path, listener):
    """The policy sends the hook's calls to an in-house server that accepts the connection
    and never answers (its own timeout is 60 s): `--timeout 1` still ends the hook quickly,
    with the message the staged change's facts make (they were ready: the request was sent)."""
    write(
        repo,
        ".ninetyten/policy.toml",
        f"""\
[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.in_house]
backend = "openai"
model = "team-model"
base_url = "http://127.0.0.1:{listener.port}/v1"
keeps_data_home = true
timeout_s = 60
max_retries = 0

[[rules]]
name = "hook calls go in-house"
task = ["explain", "commit_message"]
route = "in_house"
""",
    )
    trust_policy(repo / ".ninetyten" / "policy.toml", Path(env["NINETYTEN_HOME"]))
    stage(repo, env, "util.py", "X = 1\n")
    msg = tmp_path / "msg"
    msg.write_text("# Please enter the commit message.\n")
    started = time.monotonic()
    result = ninetyten(repo, env, "hook", "run", "prepare-commit-msg", str(msg), "--timeout", "1")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert listener.accepted, "the hook never reached the in-house server"
    assert msg.read_text() == (
        "feat: add X in util.py\n\n# ninetyten: the model did not answer within 1s; this message "
        "was written from the diff's facts alone.\n# Please enter the commit message.\n"
    )
    assert elapsed < 1 + 8, f"hook took {elapsed:.1f}s with a 1s budget"


@pytest.mark.parametrize("value", ["soon", "-3", "nan", "inf", ""])
def test_a_nonsense_budget_in_the_environment_falls_back_to_the_default(repo, env, tmp_path, value):
    stage(repo, env, "util.py", "X = 1\n")
    msg = tmp_path / "msg"
    msg.write_text("")
    result = ninetyten(repo, {**env, "NINETYTEN_HOOK_TIMEOUT": value}, "hook", "run", "prepare-commit-msg", str(msg))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert_conventional(msg.read_text().splitlines()[0])


# -- routing policy ------------------------------------------------------------------


def _frontier_policy(port: int, *, offline: bool) -> str:
    return f"""\
offline = {"true" if offline else "false"}

[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.frontier]
backend = "openai"
model = "frontier-model"
base_url = "http://127.0.0.1:{port}/v1"
api_key_env = "NINETYTEN_TEST_FRONTIER_KEY"

[[rules]]
name = "messages to the frontier"
task = ["explain", "commit_message"]
route = "frontier"
"""


def test_offline_policy_writes_a_local_message_and_nothing_leaves(repo, env, listener):
    write(repo, ".ninetyten/policy.toml", _frontier_policy(listener.port, offline=True))
    trust_policy(repo / ".ninetyten" / "policy.toml", Path(env["NINETYTEN_HOME"]))
    stage(repo, env, "util.py", "X = 1\n")
    git(repo, env, "commit", "-q", NINETYTEN_TEST_FRONTIER_KEY="test-key")
    assert_conventional(subject(repo, env))
    assert listener.accepted == []
    calls = message_calls(env)
    assert calls and {row["tier"] for row in calls} == {"local"}


def test_unreachable_frontier_falls_back_to_a_local_message_quickly(repo, env):
    write(repo, ".ninetyten/policy.toml", _frontier_policy(unused_port(), offline=False))
    trust_policy(repo / ".ninetyten" / "policy.toml", Path(env["NINETYTEN_HOME"]))
    stage(repo, env, "util.py", "X = 1\n")
    started = time.monotonic()
    git(repo, env, "commit", "-q", NINETYTEN_TEST_FRONTIER_KEY="test-key", NINETYTEN_HOOK_TIMEOUT="20")
    elapsed = time.monotonic() - started
    assert_conventional(subject(repo, env))
    calls = message_calls(env)
    assert any(
        row["tier"] == "frontier" and row["outcome"] == "failed" and row["error_kind"] == "connection" for row in calls
    ), calls
    assert calls[-1]["tier"] == "local", calls
    assert elapsed < 15, f"git commit took {elapsed:.1f}s"


# -- the pre-commit framework ---------------------------------------------------------


@pytest.fixture
def precommit_repo(tmp_path: Path, env: dict[str, str]) -> Path:
    """A repository whose .pre-commit-config.yaml uses ninetyten's `.pre-commit-hooks.yaml`
    (from a local git repository holding a copy of it), installed for prepare-commit-msg."""
    if not (VENV_BIN / "ninetyten").exists():
        missing("the ninetyten command next to this interpreter", "make setup")
    if importlib.util.find_spec("pre_commit") is None:
        missing("the pre-commit framework", "pip install -e '.[dev]'")
    hook_repo = new_repo(tmp_path / "ninetyten-hooks", env)
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", hook_repo / ".pre-commit-hooks.yaml")
    git(hook_repo, env, "add", "-A")
    git(hook_repo, env, "commit", "-q", "-m", "hooks")
    rev = git(hook_repo, env, "rev-parse", "HEAD").stdout.strip()

    path = new_repo(tmp_path / "project", env)
    write(
        path,
        ".pre-commit-config.yaml",
        f"repos:\n- repo: {hook_repo}\n  rev: {rev}\n  hooks:\n  - id: ninetyten-commit-msg\n",
    )
    stage(path, env, "app.py", "def total(items):\n    return sum(items)\n")
    git(path, env, "add", "-A")
    git(path, env, "commit", "-q", "-m", "initial commit")  # no hook installed yet
    run([sys.executable, "-m", "pre_commit", "install", "--hook-type", "prepare-commit-msg"], path, env)
    assert "pre-commit" in (path / ".git" / "hooks" / "prepare-commit-msg").read_text()
    return path


def test_pre_commit_framework_writes_the_message_and_keeps_given_ones(precommit_repo, env):
    path = precommit_repo
    stage(path, env, "util.py", "def double(x):\n    return 2 * x\n")
    result = git(path, env, "commit")
    assert re.search(r"ninetyten commit message\.+Passed", result.stdout + result.stderr), result
    assert_conventional(subject(path, env))
    assert message_calls(env)

    calls = len(message_calls(env))
    stage(path, env, "util.py", "def double(x):\n    return x + x\n")
    git(path, env, "commit", "-q", "-m", "my words")
    assert message(path, env) == "my words"
    stage(path, env, "empty.py", "EMPTY = 1\n")  # the source comes from PRE_COMMIT_COMMIT_MSG_SOURCE
    git(path, env, "commit", "-q", "--allow-empty-message", "-m", "")
    assert message(path, env) == ""
    git(path, env, "commit", "-q", "--amend", "-m", "my words")
    stage(path, env, "more.py", "MORE = 1\n")
    git(path, env, "commit", "-q", "--amend", "--no-edit")
    assert message(path, env) == "my words"
    git(path, env, "checkout", "-q", "-b", "other")
    stage(path, env, "other.py", "OTHER = 1\n")
    git(path, env, "commit", "-q", "-m", "other work")
    git(path, env, "checkout", "-q", "main")
    git(path, env, "merge", "-q", "--no-ff", "--edit", "other")
    assert message(path, env) == "Merge branch 'other'"
    assert len(message_calls(env)) == calls  # none of those asked the model


def test_pre_commit_framework_failing_model_does_not_block(precommit_repo, env, tmp_path):
    seen = tmp_path / "seen-message"
    stage(precommit_repo, env, "util.py", "X = 1\n")
    git(
        precommit_repo,
        env,
        "commit",
        "-q",
        GIT_EDITOR=editor_script(tmp_path, seen),
        NINETYTEN_MODEL=str(tmp_path / "missing.gguf"),
    )
    assert message(precommit_repo, env) == "manual message"
    assert seen.read_text().startswith("# ninetyten: could not write a message (")


def test_pre_commit_framework_with_hook_args(precommit_repo, env):
    config = precommit_repo / ".pre-commit-config.yaml"
    config.write_text(config.read_text() + "    args: [--timeout, '60']\n")
    git(precommit_repo, env, "add", "-A")
    git(precommit_repo, env, "commit", "-q")
    assert_conventional(subject(precommit_repo, env))
