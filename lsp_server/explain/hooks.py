"""The git `prepare-commit-msg` hook: a commit message that explains the staged change.

The hook never blocks a commit: whatever goes wrong (no model, no time, a broken
policy), it writes nothing or a `#` comment and exits 0. A model that has not answered when
the budget runs out is abandoned; the message is then written from the staged change's facts
alone (with a `#` comment saying so), if they are ready. Messages given with `-m`,
merges, squashes and amends are left alone.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "# installed by ninetyten: prepare-commit-msg"
HOOK_NAME = "prepare-commit-msg"
DEFAULT_BUDGET_S = 20.0
BUDGET_ENV = "NINETYTEN_HOOK_TIMEOUT"
# Sources for which git already has the message: -m/-F, merges, squashes, amend/-c/-C.
LEAVE_ALONE = {"message", "merge", "squash", "commit"}
# The hook waits this long past the budget for its worker; the model gets all of it but this
# margin, in which the facts' message is written when the model did not answer.
JOIN_GRACE_S = 2.0
FACTS_MARGIN_S = 0.5


class HookError(Exception):
    pass


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True, text=True)
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
    # git runs hooks from the top of the work tree and `python -m` would put that directory
    # first on sys.path: -P keeps the repository's own files (an `lsp_server/` package, a
    # `json.py`) from being imported instead of ninetyten and the standard library.
    python = shlex.quote(sys.executable)
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        "# Fills in a commit message that explains the staged change. Never blocks a commit.\n"
        f'{python} -P -m lsp_server hook run {HOOK_NAME} "$@" || true\n'
        "exit 0\n"
    )


def install(repo: Path, *, force: bool = False) -> Path:
    target = hooks_dir(repo) / HOOK_NAME
    if target.exists() and MARKER not in target.read_text(errors="replace"):
        if not force:
            raise HookError(
                f"{target} exists and was not installed by ninetyten; "
                f"use --force to replace it (it is kept as {target.name}.orig)"
            )
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


def _comment_prefix(repo: Path) -> str:
    """What starts a comment line in the message file (core.commentChar / commentString)."""
    for key in ("core.commentString", "core.commentChar"):
        try:
            value = _git(repo, "config", "--get", key)
        except (HookError, OSError):
            continue
        if value and value != "auto":
            return value
    return "#"  # also what `auto` picks when the file holds no message yet


def _scissors(comment: str) -> str:
    # `git commit -v` puts the diff below this line; git drops it and everything after.
    return f"{comment} {'-' * 24} >8 {'-' * 24}"


def _has_message(text: str, comment: str = "#") -> bool:
    scissors = _scissors(comment)
    for line in text.splitlines():
        if line.rstrip() == scissors:
            return False
        if line.strip() and not line.startswith(comment):
            return True
    return False


def _note(comment: str, text: str) -> str:
    """`text` as comment lines, every line of it: git must not keep any of it as the message."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()] or [""]
    return "".join(f"{comment} {line}\n" for line in lines)


def _budget(explicit: float | None) -> float:
    """--timeout, else NINETYTEN_HOOK_TIMEOUT, else the default; nonsense means the default."""
    raw = explicit if explicit is not None else os.environ.get(BUDGET_ENV, "").strip()
    if raw == "":
        return DEFAULT_BUDGET_S
    try:
        budget = float(raw)
    except ValueError:
        return DEFAULT_BUDGET_S
    return budget if math.isfinite(budget) and budget > 0 else DEFAULT_BUDGET_S


def run_prepare_commit_msg(
    message_file: Path, source: str | None, repo: Path, *, budget_s: float | None = None, policy: str | None = None
) -> int:
    """Write a message into `message_file` when git has none. Always returns 0."""
    if source in LEAVE_ALONE:
        return 0
    try:
        existing = message_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    comment = _comment_prefix(repo)
    if _has_message(existing, comment):
        return 0  # a template or a message from elsewhere: the user's words win
    budget = _budget(budget_s)
    deadline = time.monotonic() + budget
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["message"] = _generate(repo, deadline, policy)
        except BaseException as error:  # noqa: BLE001 - the hook must survive anything
            outcome["error"] = error

    # A daemon thread: when the budget runs out the commit goes on and the work is abandoned.
    thread = threading.Thread(target=work, name="ninetyten-hook", daemon=True)
    thread.start()
    thread.join(budget + JOIN_GRACE_S)
    written = outcome.get("message")
    message: str | None = None
    if isinstance(written, tuple):
        message, from_facts = str(written[0]), bool(written[1])
        if from_facts:  # say so, in a comment git drops
            note_text = (
                f"ninetyten: the model did not answer within {budget:g}s; this message was written "
                "from the diff's facts alone."
            )
            message += "\n\n" + _note(comment, note_text).rstrip("\n")
    error = outcome.get("error")
    if thread.is_alive() or isinstance(error, TimeoutError):
        note = _note(comment, f"ninetyten: no message within {budget:g}s; write your own.")
    elif error is not None:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        note = _note(comment, f"ninetyten: could not write a message ({detail})")
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


def _generate(repo: Path, deadline: float, policy: str | None) -> tuple[str, bool] | None:
    """(the message, whether the facts alone wrote it), or None when nothing is staged."""
    from lsp_server.config import ServerConfig
    from lsp_server.engine.core import Engine
    from lsp_server.explain.staged import generate_commit_message
    from lsp_server.ledger import Ledger
    from lsp_server.ledger.outlets import attach
    from lsp_server.routing.policy_lookup import load_policy

    engine = Engine(ServerConfig(), policy=load_policy(policy, repo), ledger=Ledger())
    attach(engine.sink, workspace=repo, ship=False)  # the language server or `ledger sync` ships its rows
    try:
        engine.start(chat_only=True)
        # What is left after the imports and the engine's set-up, up to the moment the hook stops
        # waiting for this thread (less a margin to write the facts' message in).
        left = deadline + JOIN_GRACE_S - FACTS_MARGIN_S - time.monotonic()
        result = generate_commit_message(repo, engine, timeout_s=max(left, FACTS_MARGIN_S))
        if result is None or result.commit_message is None:
            return None
        return result.commit_message, result.timed_out
    finally:
        engine.close()
