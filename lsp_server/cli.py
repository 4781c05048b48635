"""The `ninetyten` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Sequence

from pydantic import ValidationError

from . import __version__
from .config import ServerConfig, describe_validation_error

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH|ID",
        help="a .gguf file or a catalog id (beats NINETYTEN_MODEL; default: the embedded Gemma 3 270M)",
    )


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

    serve = commands.add_parser("serve", help="run the language server (stdio by default)",
                                description="Run the language server. Editors start this over stdio.")
    serve.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen for one LSP client on a TCP address instead")
    serve.add_argument("--log-file", metavar="FILE", help="append the server log to FILE")
    serve.add_argument("--config", metavar="JSON", help="server settings as JSON, e.g. '{\"n_ctx\": 8192}'")
    _add_model_option(serve)

    complete = commands.add_parser(
        "complete",
        help="print the completion at FILE:LINE:COL",
        description="Print the completion the server would offer at a position (1-based LINE and COL, "
        "COL counted in characters). Handy for scripts and for checking a model.",
    )
    complete.add_argument("location", metavar="FILE:LINE:COL")
    complete.add_argument("--json", action="store_true", help="print one JSON object with the text and its usage")
    complete.add_argument("--max-tokens", type=int, metavar="N", help="most tokens to generate")
    complete.add_argument("--config", metavar="JSON", help="server settings as JSON")
    _add_model_option(complete)

    models = commands.add_parser("models", help="list, locate and verify model files",
                                 description="Known models, where their files are, and whether they are intact.")
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_commands.add_parser("list", help="the model catalog and which files are present")
    path = models_commands.add_parser("path", help="print the path of the model that would be loaded")
    path.add_argument("model", nargs="?", metavar="PATH|ID", help="default: what `serve` would load")
    verify = models_commands.add_parser("verify", help="check a model file's GGUF header and SHA-256")
    verify.add_argument("model", nargs="?", metavar="PATH|ID", help="default: what `serve` would load")

    commands.add_parser("doctor", help="check the installation: llama.cpp, CPU features, model, config")
    return parser


def _configure_logging(verbosity: int, log_file: str | None = None) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    # pygls logs every message at INFO; keep that for -vv.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, handlers=handlers, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _load_config(raw: str | None) -> ServerConfig:
    if not raw:
        return ServerConfig()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SystemExit(f"ninetyten: --config is not valid JSON: {error}") from None
    try:
        return ServerConfig().merged(data)
    except ValidationError as error:
        raise SystemExit(f"ninetyten: invalid --config: {describe_validation_error(error)}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import create_server

    _configure_logging(max(args.verbose, 1), args.log_file)
    server = create_server(_load_config(args.config), explicit_model=args.model)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            print(f"ninetyten: --tcp wants HOST:PORT, got {args.tcp!r}", file=sys.stderr)
            return EXIT_USAGE
        server.start_tcp(host, int(port))
    else:
        server.start_io()
    return 0


def parse_location(location: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL with 1-based LINE and COL."""
    parts = location.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"expected FILE:LINE:COL (1-based), got {location!r}")
    line, col = int(parts[1]), int(parts[2])
    if line < 1 or col < 1:
        raise ValueError("LINE and COL start at 1")
    return Path(parts[0]), line, col


def cmd_complete(args: argparse.Namespace) -> int:
    from local_models import ModelError

    from .engine import Engine
    from .positions import split_lines
    from .tasks.completion_prompt import CompletionInput

    _configure_logging(args.verbose)
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
    config = _load_config(args.config)
    if args.max_tokens:
        config = config.merged({"completion": {"max_tokens": args.max_tokens}})
    engine = Engine(config, explicit_model=args.model, progress=True)
    try:
        inp = CompletionInput(path=path.name, text="\n".join(lines), line=line - 1, character=min(col - 1, len(lines[line - 1])))
        result = engine.complete_blocking(inp)
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


def cmd_models(args: argparse.Namespace) -> int:
    from local_models import ModelError, load_catalog, models_dir, resolve_model, verify_model

    action = args.models_command or "list"
    if action == "list":
        from rich.console import Console
        from rich.table import Table

        rows = []
        for model_id, entry in load_catalog().items():
            present = next((name for name in entry.preferred_files() if (models_dir() / name).is_file()), None)
            source = entry.hf_repo or entry.source or ""
            rows.append((model_id, entry.name, entry.params, entry.fim.value, str(entry.context_length),
                         present or "-", source))
        header = ("id", "name", "params", "FIM", "context", "present", "source")
        if not sys.stdout.isatty():  # scripts get one tab-separated line per model
            print("\t".join(header))
            for row in rows:
                print("\t".join(row))
            return 0
        table = Table(title=f"Known models (files are looked for in {models_dir()})")
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return 0
    try:
        resolved = resolve_model(args.model, None, progress=True)
    except ModelError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if action == "path":
        print(resolved.path)
        return 0
    expected = resolved.entry.expected_sha256(resolved.path.name) if resolved.entry else None
    try:
        result = verify_model(resolved.path, expected, progress=True)
    except ModelError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    checked = "SHA-256 matches the catalog" if result.sha256_checked else "no known SHA-256 to compare against"
    print(f"{resolved.path}: GGUF v{result.gguf_version}, {result.tensor_count} tensors, "
          f"{result.size / 1e6:.1f} MB; {checked}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import llama_cpp

    from local_models import ModelError, models_dir, ninetyten_home, resolve_model

    ok = True
    print(f"ninetyten      {__version__}")
    print(f"python         {platform.python_version()} ({sys.executable})")
    print(f"platform       {platform.platform()}")
    print(f"llama.cpp      llama-cpp-python {llama_cpp.__version__}")
    system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    features = [item.strip() for item in system_info.split("|") if "= 1" in item]
    print(f"cpu features   {', '.join(f.split('=')[0].strip() for f in features) or system_info}")
    print(f"cores          {os.cpu_count()}")
    print(f"home           {ninetyten_home()}  (NINETYTEN_HOME={os.environ.get('NINETYTEN_HOME', 'unset')})")
    print(f"models dir     {models_dir()}")
    print(f"NINETYTEN_MODEL {os.environ.get('NINETYTEN_MODEL', 'unset')}")
    try:
        resolved = resolve_model(None, None, progress=True)
        size = resolved.path.stat().st_size / 1e6
        print(f"model          {resolved.path} ({size:.1f} MB, from {resolved.origin})")
    except ModelError as error:
        ok = False
        print(f"model          PROBLEM: {error}")
    print("status         " + ("ok" if ok else "problems found (see above)"))
    return 0 if ok else EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {"serve": cmd_serve, "complete": cmd_complete, "models": cmd_models, "doctor": cmd_doctor}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
