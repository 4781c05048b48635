"""`ninetyten hook install|uninstall|run`: the git prepare-commit-msg hook."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lsp_server.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    add_policy_option,
)


def register(commands: Any) -> None:
    hook = commands.add_parser("hook", help="install or run the git prepare-commit-msg hook")
    hook_commands = hook.add_subparsers(dest="hook_command", metavar="ACTION")
    install = hook_commands.add_parser("install", help="install the prepare-commit-msg hook into this repository")
    install.add_argument("--force", action="store_true", help="replace a hook ninetyten did not install")
    install.add_argument("--repo", metavar="DIR", default=".")
    uninstall = hook_commands.add_parser("uninstall", help="remove the hook (restoring a replaced one)")
    uninstall.add_argument("--repo", metavar="DIR", default=".")
    run_hook = hook_commands.add_parser("run", help="what git runs (never blocks a commit)")
    run_hook.add_argument("name", choices=["prepare-commit-msg"])
    run_hook.add_argument("message_file", nargs="?")
    run_hook.add_argument("commit_source", nargs="?")
    run_hook.add_argument("sha", nargs="?")
    run_hook.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="time budget (default 20, or NINETYTEN_HOOK_TIMEOUT)"
    )
    add_policy_option(run_hook)


def run(args: argparse.Namespace) -> int:
    from lsp_server.explain.hooks import HookError, install, run_prepare_commit_msg, uninstall

    action = args.hook_command
    if action == "run":
        if not args.message_file:
            return 0
        # The pre-commit framework passes the source in its environment, git as an argument.
        source = args.commit_source or os.environ.get("PRE_COMMIT_COMMIT_MSG_SOURCE") or None
        return run_prepare_commit_msg(
            Path(args.message_file), source, Path.cwd(), budget_s=args.timeout, policy=args.policy
        )
    try:
        if action == "install":
            path = install(Path(args.repo), force=args.force)
            print(f"installed {path}")
        elif action == "uninstall":
            removed = uninstall(Path(args.repo))
            print(f"removed {removed}" if removed else "no ninetyten hook installed")
        else:
            print("usage: ninetyten hook install|uninstall|run", file=sys.stderr)
            return EXIT_USAGE
    except HookError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def options_first(argv: list[str]) -> list[str]:
    """`hook run NAME [options] FILE ...`: pre-commit puts a hook's `args:` before the file
    name, git puts nothing after it; argparse wants the options before the positionals."""
    if argv[:2] != ["hook", "run"]:
        return argv
    options: list[str] = []
    positionals: list[str] = []
    rest = iter(argv[2:])
    for token in rest:
        if token in ("--timeout", "--policy"):
            options += [token, next(rest, "")]
        elif token.startswith(("--timeout=", "--policy=")):
            options.append(token)
        else:
            positionals.append(token)
    return ["hook", "run", *options, *positionals]
