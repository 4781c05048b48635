"""The `ninetyten` command: the parser, and each command group's module to run it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from lsp_server import __version__
from lsp_server.cli import complete, doctor, engine, explain, hook, ledger, models, policy, route, serve
from lsp_server.cli import eval as evaluation
from lsp_server.cli.common import EXIT_USAGE, configure_logging

# In the order `ninetyten --help` lists them; each module registers its parser and runs it.
GROUPS: tuple[ModuleType, ...] = (
    serve,
    complete,
    models,
    explain,
    hook,
    route,
    ledger,
    policy,
    doctor,
    engine,
    evaluation,
)
RUNNERS: dict[str, ModuleType] = {
    "serve": serve,
    "complete": complete,
    "models": models,
    "explain": explain,
    "hook": hook,
    "route": route,
    "report": ledger,
    "ledger": ledger,
    "policy": policy,
    "doctor": doctor,
    "engine": engine,
    "eval": evaluation,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ninetyten",
        description="A local-first AI coding assistant: a language server that serves code completions "
        "from a local llama.cpp model.",
        epilog="Run `ninetyten COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"ninetyten {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (to stderr); repeat for debug")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(hook.options_first(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # Every command logs through the content filter (the hook, too: git shows its stderr);
    # commands with their own log options configure again.
    configure_logging(getattr(args, "verbose", 0))
    run: Callable[[argparse.Namespace], int] = RUNNERS[args.command].run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
