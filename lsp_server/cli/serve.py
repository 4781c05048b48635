"""`ninetyten serve`: the language server over stdio, or over loopback TCP with a token."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from lsp_server.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    add_chat_model_option,
    add_model_option,
    add_policy_option,
    configure_logging,
    load_config,
)


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the language server (stdio by default)",
        description="Run the language server. Editors start this over stdio.",
    )
    serve.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    serve.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="listen for one LSP client on a loopback TCP address instead (needs --token-file)",
    )
    serve.add_argument(
        "--token-file",
        metavar="FILE",
        help="with --tcp: a file only you can read (mode 600) holding the token that the client "
        "sends as initializationOptions.authToken",
    )
    serve.add_argument("--log-file", metavar="FILE", help="append the server log to FILE")
    # Also after the command (`ninetyten serve -vv`), as editors' settings usually append flags.
    serve.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="log more; repeat for debug")
    serve.add_argument("--config", metavar="JSON", help="server settings as JSON, e.g. '{\"n_ctx\": 8192}'")
    add_model_option(serve)
    add_chat_model_option(serve)
    add_policy_option(serve)


def run(args: argparse.Namespace) -> int:
    from lsp_server.lsp.app import create_server

    tcp: tuple[str, int, str] | None = None
    if args.tcp:
        try:
            tcp = _tcp_listen_settings(args.tcp, args.token_file)
        except CliError as error:
            print(f"ninetyten: {error}", file=sys.stderr)
            return error.code
    elif args.token_file:
        print("ninetyten: --token-file applies only with --tcp", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(max(args.verbose, 1), args.log_file)
    server = create_server(
        load_config(args.config),
        explicit_model=args.model,
        policy_path=args.policy,
        explicit_chat_model=args.chat_model,
    )
    if tcp is not None:
        server.start_tcp(*tcp)
    else:
        stdin, stdout = _private_stdio()
        server.start_io(stdin, stdout)
    return 0


def _tcp_listen_settings(address: str, token_file: str | None) -> tuple[str, int, str]:
    """(host, port, token) for `serve --tcp`: a loopback address, and a token from a private file."""
    from lsp_server.loopback import is_loopback_host
    from lsp_server.lsp.tcp_auth import TokenFileError, read_token_file

    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--tcp wants HOST:PORT, got {address!r}")
    if not is_loopback_host(host):
        raise CliError(
            f"--tcp listens only on this machine (127.0.0.1, ::1 or localhost), not on {host!r}; "
            "to use the server from another machine, forward the port over ssh "
            f"(ssh -L {port}:127.0.0.1:{port} HOST)"
        )
    if not token_file:
        raise CliError(
            "--tcp needs --token-file FILE: a file only you can read, holding the token a client "
            "must send as initializationOptions.authToken"
        )
    try:
        token = read_token_file(Path(token_file).expanduser())
    except TokenFileError as error:
        raise CliError(str(error), EXIT_FAILURE) from None
    # `localhost` could resolve to anything in /etc/hosts: bind the address itself.
    return ("127.0.0.1" if host.lower() == "localhost" else host), int(port), token


def _private_stdio() -> tuple[BinaryIO, BinaryIO]:
    """The LSP channel on its own file descriptor.

    llama.cpp (and llama-cpp-python, which silences it by pointing fds 1 and 2 at
    /dev/null for a moment) writes to the process's stdout; a message written in that
    moment would vanish or be corrupted. The channel gets a private copy of fd 1, and
    fd 1 itself becomes stderr, where stray output belongs.
    """
    channel = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return sys.stdin.buffer, os.fdopen(channel, "wb")  # buffered: large messages are written whole
