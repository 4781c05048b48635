"""What every command shares: exit codes, the --model, --chat-model and --policy options, logging, and the
loaders of settings and policy (one place, so every command reads them the same way)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from lsp_server.config import ServerConfig, describe_validation_error
from lsp_server.routing.policy import LoadedPolicy

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH|ID",
        help="a .gguf file or a catalog id (beats NINETYTEN_MODEL; default: the embedded Gemma 3 270M)",
    )


def add_chat_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chat-model",
        metavar="PATH|ID",
        help="a second local model for explain, refactor and ask, e.g. an instruct model (beats "
        "NINETYTEN_CHAT_MODEL; default: the settings, `ninetyten models use`, the policy, else the --model one)",
    )


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="routing policy file (beats NINETYTEN_POLICY, .ninetyten/policy.toml and the user config)",
    )


def configure_logging(verbosity: int, log_file: str | None = None) -> None:
    from lsp_server.cli.logs import configure

    configure(verbosity, log_file)


def load_config(raw: str | None, *, base: ServerConfig | None = None) -> ServerConfig:
    """--config laid over `base` (a command's own defaults; else the server's)."""
    base = base or ServerConfig()
    if not raw:
        return base
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SystemExit(f"ninetyten: --config is not valid JSON: {error}") from None
    try:
        return base.merged(data)
    except ValidationError as error:
        raise SystemExit(f"ninetyten: invalid --config: {describe_validation_error(error)}") from None


def load_policy_here(
    args: argparse.Namespace, workspace: Path | None = None, *, quiet: bool = False
) -> LoadedPolicy | None:
    """The policy that applies here, or None after printing why it cannot be used.

    A repository policy that is partly ignored (not approved) is said so on stderr, once."""
    from lsp_server.routing.policy import PolicyError
    from lsp_server.routing.policy_lookup import load_policy

    try:
        loaded = load_policy(args.policy, workspace or Path.cwd())
    except PolicyError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return None
    if loaded.needs_approval and not quiet:
        from lsp_server.routing.policy_trust import untrusted_notice

        print(f"ninetyten: {untrusted_notice(loaded)}", file=sys.stderr)
    return loaded
