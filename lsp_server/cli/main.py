"""The `ninetyten` command."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, BinaryIO, Sequence

from pydantic import ValidationError

from lsp_server import __version__
from lsp_server.cli import ledger as ledger_cli
from lsp_server.cli import models as models_cli
from lsp_server.config import ServerConfig, describe_validation_error
from lsp_server.cli import eval as eval_cli

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH|ID",
        help="a .gguf file or a catalog id (beats NINETYTEN_MODEL; default: the embedded Gemma 3 270M)",
    )


def _add_policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="routing policy file (beats NINETYTEN_POLICY, .ninetyten/policy.toml and the user config)",
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
    serve.add_argument("--tcp", metavar="HOST:PORT",
                       help="listen for one LSP client on a loopback TCP address instead (needs --token-file)")
    serve.add_argument("--token-file", metavar="FILE",
                       help="with --tcp: a file only you can read (mode 600) holding the token that the client "
                       "sends as initializationOptions.authToken")
    serve.add_argument("--log-file", metavar="FILE", help="append the server log to FILE")
    # Also after the command (`ninetyten serve -vv`), as editors' settings usually append flags.
    serve.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="log more; repeat for debug")
    serve.add_argument("--config", metavar="JSON", help="server settings as JSON, e.g. '{\"n_ctx\": 8192}'")
    _add_model_option(serve)
    _add_policy_option(serve)

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
    _add_policy_option(complete)

    models_cli.register(commands)

    explain = commands.add_parser(
        "explain",
        help="explain a change: the staged diff, a revision range, or a diff on stdin",
        description="Explain what a change does, why it probably changed and what to review carefully. "
        "Every model call follows the routing policy. Large diffs are explained chunk by chunk and merged.",
    )
    explain.add_argument("source", nargs="?", metavar="REV_RANGE|-",
                         help="e.g. main..HEAD or HEAD~1; - reads a diff from stdin (default: the staged change)")
    explain.add_argument("--staged", action="store_true", help="explain the staged change (the default)")
    explain.add_argument("--commit-message", action="store_true",
                         help="also write a conventional-commit message (subject <= 72 characters, wrapped body)")
    explain.add_argument("--json", action="store_true",
                         help="print one object: explanation, commit_message, decision, usage")
    explain.add_argument("--repo", metavar="DIR", default=".", help="the git repository (default: here)")
    _add_model_option(explain)
    _add_policy_option(explain)

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
    run_hook.add_argument("--timeout", type=float, metavar="SECONDS", help="time budget (default 20, or "
                          "NINETYTEN_HOOK_TIMEOUT)")
    _add_policy_option(run_hook)

    route = commands.add_parser(
        "route",
        help="show where a request would go, and why (no model is called)",
        description="Print the routing decision for a request: tier, backend, model, escalation target, "
        "sensitivity, risk and the reasons. Nothing is sent anywhere; the content is never printed.",
    )
    route.add_argument("--task", required=True, choices=["completion", "explain", "refactor", "ask", "commit_message"])
    route.add_argument("--path", metavar="P", help="workspace-relative path the content belongs to (default: FILE)")
    route.add_argument("--auto-apply", action="store_true", help="the result would be applied without review")
    route.add_argument("--latency", choices=["interactive", "background"])
    route.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    route.add_argument("file", nargs="?", metavar="FILE|-", help="the content (default: none; - reads stdin)")
    _add_policy_option(route)

    ledger_cli.register(commands)

    policy = commands.add_parser(
        "policy", help="check, show, trust or untrust the policy that applies here",
        description="check: validate the policy that applies; show: print the policy in force as JSON (its trust "
        "state on stderr); trust: show what a repository's .ninetyten/policy.toml would be allowed to do and "
        "approve that file as it is now; untrust: withdraw the approval.")
    policy.add_argument("action", choices=["check", "show", "trust", "untrust"])
    policy.add_argument("path", nargs="?", metavar="PATH",
                        help="trust/untrust: a repository policy file or its repository (default: here)")
    policy.add_argument("--yes", action="store_true", help="trust: approve without asking")
    _add_policy_option(policy)

    commands.add_parser("doctor", help="check the installation: llama.cpp, CPU features, model, config")
    eval_cli.register(commands)
    return parser


def _configure_logging(verbosity: int, log_file: str | None = None) -> None:
    from lsp_server.logs import configure

    configure(verbosity, log_file)


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


def _load_policy(args: argparse.Namespace, workspace: Path | None = None, *, quiet: bool = False):  # type: ignore[no-untyped-def]
    """The policy that applies here, or None after printing why it cannot be used.

    A repository policy that is partly ignored (not approved) is said so on stderr, once."""
    from lsp_server.routing.policy import PolicyError, load_policy

    try:
        loaded = load_policy(args.policy, workspace or Path.cwd())
    except PolicyError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return None
    if loaded.needs_approval and not quiet:
        from lsp_server.routing.policy_trust import untrusted_notice

        print(f"ninetyten: {untrusted_notice(loaded)}", file=sys.stderr)
    return loaded


def cmd_serve(args: argparse.Namespace) -> int:
    from lsp_server.lsp.app import create_server

    tcp: tuple[str, int, str] | None = None
    if args.tcp:
        try:
            tcp = _tcp_listen_settings(args.tcp, args.token_file)
        except _CliError as error:
            print(f"ninetyten: {error}", file=sys.stderr)
            return error.code
    elif args.token_file:
        print("ninetyten: --token-file applies only with --tcp", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(max(args.verbose, 1), args.log_file)
    server = create_server(_load_config(args.config), explicit_model=args.model, policy_path=args.policy)
    if tcp is not None:
        server.start_tcp(*tcp)
    else:
        stdin, stdout = _private_stdio()
        server.start_io(stdin, stdout)
    return 0


class _CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _tcp_listen_settings(address: str, token_file: str | None) -> tuple[str, int, str]:
    """(host, port, token) for `serve --tcp`: a loopback address, and a token from a private file."""
    from lsp_server.loopback import is_loopback_host
    from lsp_server.lsp.tcp_auth import TokenFileError, read_token_file

    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _CliError(f"--tcp wants HOST:PORT, got {address!r}")
    if not is_loopback_host(host):
        raise _CliError(f"--tcp listens only on this machine (127.0.0.1, ::1 or localhost), not on {host!r}; "
                        "to use the server from another machine, forward the port over ssh "
                        f"(ssh -L {port}:127.0.0.1:{port} HOST)")
    if not token_file:
        raise _CliError("--tcp needs --token-file FILE: a file only you can read, holding the token a client "
                        "must send as initializationOptions.authToken")
    try:
        token = read_token_file(Path(token_file).expanduser())
    except TokenFileError as error:
        raise _CliError(str(error), EXIT_FAILURE) from None
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

    from lsp_server.engine.core import Engine
    from lsp_server.lsp.convert import split_lines
    from lsp_server.completion.complete import Completer
    from lsp_server.completion.prompt import CompletionInput

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
    from lsp_server.ledger import Ledger
    from lsp_server.ledger.outlets import attach

    loaded = _load_policy(args)
    if loaded is None:
        return EXIT_FAILURE
    engine = Engine(config, explicit_model=args.model, policy=loaded, ledger=Ledger(), progress=True)
    attach(engine.sink, workspace=Path.cwd(), ship=False)
    try:
        inp = CompletionInput(path=path.name, text="\n".join(lines), line=line - 1, character=min(col - 1, len(lines[line - 1])))
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


def cmd_doctor(args: argparse.Namespace) -> int:
    from local_models import ModelError, models_dir, ninetyten_home, resolve_model

    from lsp_server.llama_build.doctor import native_check

    ok = True
    print(f"ninetyten      {__version__}")
    print(f"python         {platform.python_version()} ({sys.executable})")
    print(f"platform       {platform.platform()}")
    print(f"cores          {os.cpu_count()}")
    print(f"home           {ninetyten_home()}  (NINETYTEN_HOME={os.environ.get('NINETYTEN_HOME', 'unset')})")
    print(f"models dir     {models_dir()}")
    print(f"NINETYTEN_MODEL {os.environ.get('NINETYTEN_MODEL', 'unset')}")
    try:
        resolved = resolve_model(None, None, progress=True)
        size = resolved.path.stat().st_size / 1e6
        print(f"model          {resolved.path} ({size:.1f} MB, from {resolved.origin})")
        model_path: Path | None = resolved.path
        embedded = resolved.source == "embedded"
    except ModelError as error:
        ok = False
        model_path, embedded = None, False
        print(f"model          PROBLEM: {error}")
    # llama.cpp runs in a child process first: a build that crashes here is reported, never
    # "ok", and doctor itself asks llama.cpp for its devices only after the build proved safe.
    lines, native_ok = native_check(model_path)
    print("\n".join(lines), flush=True)
    ok = ok and native_ok
    if embedded and native_ok:
        print("\n".join(models_cli.doctor_lines()))
    from lsp_server.routing.policy import PolicyError, load_policy
    from lsp_server.routing.policy_trust import trust_summary

    try:
        loaded = load_policy(None, Path.cwd())
        print(f"policy         {loaded.path or 'built-in default (everything local)'} "
              f"(from {loaded.source}, hash {loaded.digest})")
        for line in trust_summary(loaded):
            print(f"  {line}")
        for tier, config in loaded.policy.tiers.items():
            key = ""
            if config.api_key_env:
                # Say whether the key is there, never what it is.
                key = f", key {config.api_key_env} {'set' if os.environ.get(config.api_key_env) else 'NOT SET'}"
            print(f"  tier {tier:<9} {config.backend} {config.model}{key}")
            if config.api_key_env and config.base_url and _key_in_clear(config.base_url):
                ok = False
                print(f"  PROBLEM: {tier} would send its key over plain http to another machine; its requests "
                      "are refused (use https://, or a loopback address for a server on this machine)")
        if loaded.policy.offline:
            print("  offline: nothing leaves the machine")
    except PolicyError as error:
        ok = False
        print(f"policy         PROBLEM: {error}")
    print(f"ledger         {ninetyten_home() / 'ledger.sqlite3'}")
    print("status         " + ("ok" if ok else "problems found (see above)"))
    return 0 if ok else EXIT_FAILURE


def _key_in_clear(base_url: str) -> bool:
    import httpx

    from lsp_server.backends.http.errors import key_would_travel_in_clear

    try:
        return key_would_travel_in_clear(httpx.URL(base_url))
    except httpx.InvalidURL:
        return False


def cmd_route(args: argparse.Namespace) -> int:
    from lsp_server.routing.router import RouteRequest, decide

    loaded = _load_policy(args)
    if loaded is None:
        return EXIT_FAILURE
    text = ""
    if args.file == "-":
        text = sys.stdin.read()
    elif args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            print(f"ninetyten: cannot read {args.file}: {error}", file=sys.stderr)
            return EXIT_FAILURE
    path = args.path or (args.file if args.file and args.file != "-" else None)
    spend = 0.0
    if loaded.policy.budget.daily_usd is not None:
        from lsp_server.ledger import Ledger, utc_midnight

        spend = Ledger().spend_usd(utc_midnight())
    decision = decide(loaded.policy, RouteRequest(task=args.task, text=text, path=path, auto_apply=args.auto_apply,
                                                  latency=args.latency), spend_today_usd=spend)
    if args.json:
        print(decision.model_dump_json(indent=2))
        return 0
    print(f"tier        {decision.tier} ({decision.backend}, {decision.model})")
    print(f"escalate to {decision.escalate_to or '-'}")
    print(f"sensitivity {decision.sensitivity}" + (f" ({', '.join(decision.sensitivity_rules)})"
                                                    if decision.sensitivity_rules else ""))
    print(f"risk        {decision.risk}    latency {decision.latency}")
    if decision.blocked:
        print("BLOCKED     the policy refuses this request")
    trust = {"approved": ", approved", "untrusted": ", not trusted"}.get(loaded.trust, "")
    print(f"policy      {decision.policy_hash} ({loaded.path or 'built-in default'}{trust})")
    for item in loaded.ignored if loaded.trust == "untrusted" else ():
        print(f"  ignored until approved: {item.key}")
    for reason in decision.reasons:
        print(f"  - {reason}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    import asyncio

    import contextlib
    import itertools

    from lsp_server.explain.diff import DiffError, git_diff_stream, iter_parse_diff
    from lsp_server.engine.core import Engine
    from lsp_server.explain.pipeline import explain_changes
    from lsp_server.ledger import Ledger
    from lsp_server.ledger.outlets import attach

    _configure_logging(args.verbose)
    repo = Path(args.repo)
    if args.source == "-":
        source: Any = contextlib.nullcontext(sys.stdin.buffer)
        what = "the diff on stdin"
    elif args.source and not args.staged:
        source = git_diff_stream(repo, rev_range=args.source)
        what = args.source
    else:
        source = git_diff_stream(repo, staged=True)
        what = "the staged change"
    loaded = _load_policy(args, repo.resolve())
    if loaded is None:
        return EXIT_FAILURE
    # The diff streams through parsing, chunking and the model: memory stays bounded.
    try:
        with source as stream:
            changes = iter_parse_diff(stream)
            first = next(changes, None)
            if first is None:
                print(f"ninetyten: nothing to explain: {what} is empty"
                      + (" (stage changes with `git add`)" if what == "the staged change" else ""), file=sys.stderr)
                return 0
            engine = Engine(ServerConfig(), explicit_model=args.model, policy=loaded, ledger=Ledger(),
                            progress=True)
            attach(engine.sink, workspace=repo, ship=False)
            engine.start()
            try:
                result = asyncio.run(_explain_with_progress(engine, itertools.chain([first], changes),
                                                            args.commit_message, explain_changes))
            finally:
                engine.close()
    except DiffError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # a model that cannot load, a broken backend: say it plainly
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif args.commit_message:
        print(result.commit_message)
    else:
        print(result.explanation)
    return 0


async def _explain_with_progress(engine, changes, commit_message, explain_changes):  # type: ignore[no-untyped-def]
    """A progress bar on a terminal; nothing when stderr is a file or a pipe."""
    if not sys.stderr.isatty():
        return await explain_changes(engine, changes, commit_message=commit_message)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("explaining", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total or None, description=what)

        return await explain_changes(engine, changes, commit_message=commit_message, progress=progress)


def cmd_hook(args: argparse.Namespace) -> int:
    from lsp_server.explain.hooks import HookError, install, run_prepare_commit_msg, uninstall

    action = args.hook_command
    if action == "run":
        if not args.message_file:
            return 0
        # The pre-commit framework passes the source in its environment, git as an argument.
        source = args.commit_source or os.environ.get("PRE_COMMIT_COMMIT_MSG_SOURCE") or None
        return run_prepare_commit_msg(Path(args.message_file), source, Path.cwd(),
                                      budget_s=args.timeout, policy=args.policy)
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


def cmd_policy(args: argparse.Namespace) -> int:
    if args.action in ("trust", "untrust"):
        return _policy_trust(args)
    loaded = _load_policy(args, quiet=True)
    if loaded is None:
        return EXIT_FAILURE
    from lsp_server.routing.policy_trust import trust_summary

    if args.action == "check":
        print(f"ok: {loaded.path or 'built-in default'} (policy {loaded.digest}, from {loaded.source})")
        for line in trust_summary(loaded):
            print(f"  {line}")
    else:
        for line in trust_summary(loaded):  # stderr: stdout stays one JSON object for scripts
            print(f"# {line}", file=sys.stderr)
        print(json.dumps(loaded.policy.model_dump(mode="json"), indent=2))
    return 0


def _repository_policy_path(given: str | None) -> Path:
    from lsp_server.routing.policy import WORKSPACE_POLICY

    path = Path(given) if given else Path.cwd()
    return path / WORKSPACE_POLICY if path.is_dir() else path


def _policy_trust(args: argparse.Namespace) -> int:
    """`policy trust`: show what approving would allow, then record it; `policy untrust`."""
    from lsp_server.routing.policy import PolicyError
    from lsp_server.routing.policy_trust import TrustStore, approve_policy, load_workspace_policy

    path = _repository_policy_path(args.path)
    if args.action == "untrust":
        removed = TrustStore().revoke(path)
        print(f"{'no longer trusted' if removed else 'was not trusted'}: {path}")
        return 0
    if not path.is_file():
        print(f"ninetyten: no repository policy at {path}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        current = load_workspace_policy(path)
    except PolicyError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    sha = current.sha256 or ""
    under = f"your policy {current.base}" if current.base else "the built-in default (everything local)"
    if current.trust == "approved":
        print(f"already trusted: {path} (sha256 {sha[:12]})")
        return 0
    if not current.ignored:
        print(f"nothing to approve: {path} only makes {under} stricter, and that applies without approval")
        return 0
    print(f"{path} (sha256 {sha[:12]}) is laid over {under}.")
    print(f"Trusting it allows these {len(current.ignored)} setting(s), ignored until then:")
    for item in current.ignored:
        print(f"  {item.key} = {item.value}")
        print(f"      {item.reason}")
    if not args.yes:
        if not sys.stdin.isatty():
            print("ninetyten: not trusted; run again with --yes to trust this file as it is now", file=sys.stderr)
            return EXIT_FAILURE
        answer = input("Trust this file as it is now? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("not trusted")
            return EXIT_FAILURE
    try:
        _approved, approval = approve_policy(path, expected_sha256=sha)
    except PolicyError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"trusted: {approval.path} (sha256 {approval.sha256[:12]}); any change to the file needs a new approval")
    return 0


def _options_first(argv: list[str]) -> list[str]:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_options_first(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # Every command logs through the content filter (the hook, too: git shows its stderr);
    # commands with their own log options configure again.
    _configure_logging(getattr(args, "verbose", 0))
    handlers = {"serve": cmd_serve, "complete": cmd_complete, "models": models_cli.run, "doctor": cmd_doctor,
                "route": cmd_route, "report": ledger_cli.run, "ledger": ledger_cli.run, "policy": cmd_policy,
                "explain": cmd_explain,
                "hook": cmd_hook, "eval": eval_cli.run}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
