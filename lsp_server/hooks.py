"""The git `prepare-commit-msg` hook: a commit message that explains the staged change.

The hook never blocks a commit: whatever goes wrong (no model, no time, a broken
policy), it writes nothing or a `#` comment and exits 0. Messages given with `-m`,
merges, squashes and amends are left alone.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "# installed by ninetyten: prepare-commit-msg"
HOOK_NAME = "prepare-commit-msg"
DEFAULT_BUDGET_S = 20.0
BUDGET_ENV = "NINETYTEN_HOOK_TIMEOUT"
# Sources for which git already has the message: -m/-F, merges, squashes, amend/-c/-C.
LEAVE_ALONE = {"message", "merge", "squash", "commit"}


class HookError(Exception):
    pass


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise HookError(result.stderr.strip() or f"git {' '.join(args)} failed")
    return result.stdout.strip()


def hooks_dir(repo: Path) -> Path:
    """Where git looks for hooks (core.hooksPath or .git/hooks, worktrees included)."""
    path = Path(_git(repo, "rev-parse", "--git-path", "hooks"))
    return path if path.is_absolute() else (repo / path)


def hook_script() -> str:
    # The interpreter that installed the hook runs it, so the hook works without the
    # venv being activated; `|| true` keeps even a missing interpreter from blocking.
    python = shlex.quote(sys.executable)
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        "# Fills in a commit message that explains the staged change. Never blocks a commit.\n"
        f'{python} -m lsp_server hook run {HOOK_NAME} "$@" || true\n'
        "exit 0\n"
    )


def install(repo: Path, *, force: bool = False) -> Path:
    target = hooks_dir(repo) / HOOK_NAME
    if target.exists() and MARKER not in target.read_text(errors="replace"):
        if not force:
            raise HookError(f"{target} exists and was not installed by ninetyten; "
                            f"use --force to replace it (it is kept as {target.name}.orig)")
        target.replace(target.with_name(target.name + ".orig"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(hook_script())
    target.chmod(0o755)
    return target


def uninstall(repo: Path) -> Path | None:
    target = hooks_dir(repo) / HOOK_NAME
    if target.exists() and MARKER in target.read_text(errors="replace"):
        target.unlink()
        backup = target.with_name(target.name + ".orig")
        if backup.exists():
            backup.replace(target)
        return target
    return None


def _has_message(text: str) -> bool:
    return any(line.strip() and not line.startswith("#") for line in text.splitlines())


def run_prepare_commit_msg(message_file: Path, source: str | None, repo: Path, *,
                           budget_s: float | None = None, policy: str | None = None) -> int:
    """Write a message into `message_file` when git has none. Always returns 0."""
    if source in LEAVE_ALONE:
        return 0
    try:
        existing = message_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    if _has_message(existing):
        return 0  # a template or a message from elsewhere: the user's words win
    budget = budget_s if budget_s is not None else float(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_S))
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["message"] = _generate(repo, budget, policy)
        except BaseException as error:  # noqa: BLE001 - the hook must survive anything
            outcome["error"] = error

    # A daemon thread: when the budget runs out the commit goes on and the work is abandoned.
    thread = threading.Thread(target=work, name="ninetyten-hook", daemon=True)
    thread.start()
    thread.join(budget + 2.0)
    message = outcome.get("message")
    if thread.is_alive():
        note = f"# ninetyten: no message within {budget:.0f}s; write your own.\n"
    elif "error" in outcome:
        note = f"# ninetyten: could not write a message ({type(outcome['error']).__name__}: {outcome['error']})\n"
    elif not message:
        note = ""
    else:
        note = None
    try:
        if note is None:
            message_file.write_text(f"{message}\n{existing}", encoding="utf-8")
        elif note:
            message_file.write_text(note + existing, encoding="utf-8")
    except OSError:
        pass
    if thread.is_alive():
        # The model is still working on a non-daemon thread; do not make git wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _generate(repo: Path, budget_s: float, policy: str | None) -> str | None:
    from .config import ServerConfig
    from .engine import Engine
    from .explain import generate_commit_message
    from .ledger import Ledger
    from .routing.policy import load_policy

    engine = Engine(ServerConfig(), policy=load_policy(policy, repo), ledger=Ledger())
    try:
        engine.start()
        return generate_commit_message(repo, engine, timeout_s=budget_s)
    finally:
        engine.close()
