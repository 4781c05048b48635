"""`python -m lsp_server.llama_build plan|install|check|ensure` (see install.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lsp_server.llama_build.cpu import read_cpu_info
from lsp_server.llama_build.flags import BuildConfigError, plan_build
from lsp_server.llama_build.install import EXIT_FAILED, EXIT_OK, Installer
from lsp_server.llama_build.state import (
    SetupError,
    State,
    default_state_path,
    default_wheel_dir,
    llama_requirement,
    sticky_env,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lsp_server.llama_build",
        description="Build llama-cpp-python for this machine and prove it with a self-test.",
    )
    parser.add_argument("action", choices=("plan", "install", "check", "ensure"))
    parser.add_argument("--dry-run", action="store_true", help="print what would be built or installed; change nothing")
    parser.add_argument("--retry", action="store_true", help="forget which levels crashed here before")
    parser.add_argument("--wheel-dir", type=Path, default=None, help="where built wheels are kept (per build key)")
    parser.add_argument("--state", type=Path, default=None, help="the record of what is installed (in the venv)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        state_path = args.state or default_state_path()
        plan = plan_build(read_cpu_info(), sticky_env(os.environ, State.load(state_path)), llama_requirement())
        installer = Installer(
            plan, wheel_dir=args.wheel_dir or default_wheel_dir(), state_path=state_path, dry_run=args.dry_run
        )
        if args.retry:
            installer.forget_crashes()
        if args.action == "plan":
            installer.describe()
            return EXIT_OK
        if args.action == "install":
            installer.ensure_installed()
            return EXIT_OK
        if args.action == "check":
            return installer.check()
        return installer.ensure()
    except (BuildConfigError, SetupError) as error:
        print(f"llama.cpp build: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
