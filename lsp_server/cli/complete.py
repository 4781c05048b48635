"""`ninetyten complete FILE:LINE:COL`: the completion the server would offer there."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lsp_server.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    add_model_option,
    add_policy_option,
    configure_logging,
    load_config,
    load_policy_here,
)
from lsp_server.config import ServerConfig

# A terminal waits for the answer: the token limit and the stop rules end it, not an editor's
# time box, unless one is asked for (--time-limit-ms, or completion.time_limit_ms in --config).
TERMINAL_TIME_LIMIT_MS = 600_000


def register(commands: Any) -> None:
    complete = commands.add_parser(
        "complete",
        help="print the completion at FILE:LINE:COL",
        description="Print the completion the server would offer at a position (1-based LINE and COL, "
        "COL counted in characters). Handy for scripts and for checking a model.",
    )
    complete.add_argument("location", metavar="FILE:LINE:COL")
    complete.add_argument("--json", action="store_true", help="print one JSON object with the text and its usage")
    complete.add_argument("--max-tokens", type=int, metavar="N", help="most tokens to generate")
    complete.add_argument(
        "--time-limit-ms",
        type=int,
        metavar="MS",
        help="stop generating after this long (default: wait for the answer; an editor's time box is "
        "completion.time_limit_ms)",
    )
    complete.add_argument("--config", metavar="JSON", help="server settings as JSON")
    add_model_option(complete)
    add_policy_option(complete)


def parse_location(location: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL with 1-based LINE and COL."""
    parts = location.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"expected FILE:LINE:COL (1-based), got {location!r}")
    line, col = int(parts[1]), int(parts[2])
    if line < 1 or col < 1:
        raise ValueError("LINE and COL start at 1")
    return Path(parts[0]), line, col


def run(args: argparse.Namespace) -> int:
    from local_models import ModelError
    from lsp_server.completion.complete import Completer
    from lsp_server.completion.prompt import CompletionInput
    from lsp_server.engine.core import Engine
    from lsp_server.lsp.convert import split_lines

    configure_logging(args.verbose)
    try:
        path, line, col = parse_location(args.location)
    except ValueError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"ninetyten: cannot read {path}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    lines = split_lines(text)
    if line > len(lines):
        print(f"ninetyten: {path} has {len(lines)} lines; line {line} is past the end", file=sys.stderr)
        return EXIT_USAGE
    terminal = ServerConfig().merged({"completion": {"time_limit_ms": TERMINAL_TIME_LIMIT_MS}})
    config = load_config(args.config, base=terminal)
    if args.max_tokens:
        config = config.merged({"completion": {"max_tokens": args.max_tokens}})
    if args.time_limit_ms:
        config = config.merged({"completion": {"time_limit_ms": args.time_limit_ms}})
    from lsp_server.ledger import Ledger
    from lsp_server.ledger.outlets import attach

    loaded = load_policy_here(args)
    if loaded is None:
        return EXIT_FAILURE
    engine = Engine(config, explicit_model=args.model, policy=loaded, ledger=Ledger(), progress=True)
    attach(engine.sink, workspace=Path.cwd(), ship=False)
    try:
        inp = CompletionInput(
            path=path.name, text="\n".join(lines), line=line - 1, character=min(col - 1, len(lines[line - 1]))
        )
        result = Completer(engine).complete_blocking(inp)
    except ModelError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        engine.close()
    if args.json:
        print(json.dumps({"text": result.text, **result.summary()}, indent=2))
    else:
        if result.text:
            print(result.text)
        summary = result.summary()
        print(
            f"[{summary['tier']} · {summary['model']} · {summary['prompt_tokens']} prompt + "
            f"{summary['completion_tokens']} completion tokens · {summary['latency_ms']} ms]",
            file=sys.stderr,
        )
    return 0
