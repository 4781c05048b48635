"""`ninetyten explain`: explain the staged change, a revision range, or a diff on stdin."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lsp_server.cli.common import (
    EXIT_FAILURE,
    add_chat_model_option,
    add_model_option,
    add_policy_option,
    configure_logging,
    load_policy_here,
)
from lsp_server.config import ServerConfig


def register(commands: Any) -> None:
    explain = commands.add_parser(
        "explain",
        help="explain a change: the staged diff, a revision range, or a diff on stdin",
        description="Explain what a change does, why it probably changed and what to review carefully. "
        "Every model call follows the routing policy. Large diffs are explained chunk by chunk and merged.",
    )
    explain.add_argument(
        "source",
        nargs="?",
        metavar="REV_RANGE|-",
        help="e.g. main..HEAD or HEAD~1; - reads a diff from stdin (default: the staged change)",
    )
    explain.add_argument("--staged", action="store_true", help="explain the staged change (the default)")
    explain.add_argument(
        "--commit-message",
        action="store_true",
        help="also write a conventional-commit message (subject <= 72 characters, wrapped body)",
    )
    explain.add_argument(
        "--json", action="store_true", help="print one object: explanation, commit_message, decision, usage"
    )
    explain.add_argument("--repo", metavar="DIR", default=".", help="the git repository (default: here)")
    add_model_option(explain)
    add_chat_model_option(explain)
    add_policy_option(explain)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import itertools

    from lsp_server.engine.core import Engine
    from lsp_server.explain.diff import DiffError, git_diff_stream, iter_parse_diff, range_revisions
    from lsp_server.explain.facts import GitTexts
    from lsp_server.explain.pipeline import explain_changes
    from lsp_server.ledger import Ledger
    from lsp_server.ledger.outlets import attach

    configure_logging(args.verbose)
    repo = Path(args.repo)
    texts: GitTexts | None = None  # whole file texts for the change's facts; a piped diff has only its hunks
    try:
        if args.source == "-":
            source: Any = contextlib.nullcontext(sys.stdin.buffer)
            what = "the diff on stdin"
        elif args.source and not args.staged:
            revs = range_revisions(repo, args.source)
            source = git_diff_stream(repo, revs=revs)
            what = args.source
            texts = GitTexts.between(repo, *revs)
        else:
            source = git_diff_stream(repo, staged=True)
            what = "the staged change"
            texts = GitTexts.staged(repo)
    except DiffError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    loaded = load_policy_here(args, repo.resolve())
    if loaded is None:
        return EXIT_FAILURE
    # The diff streams through parsing, chunking and the model: memory stays bounded.
    try:
        with source as stream:
            changes = iter_parse_diff(stream)
            first = next(changes, None)
            if first is None:
                print(
                    f"ninetyten: nothing to explain: {what} is empty"
                    + (" (stage changes with `git add`)" if what == "the staged change" else ""),
                    file=sys.stderr,
                )
                return 0
            engine = Engine(
                ServerConfig(),
                explicit_model=args.model,
                explicit_chat_model=args.chat_model,
                policy=loaded,
                ledger=Ledger(),
                progress=True,
            )
            attach(engine.sink, workspace=repo, ship=False)
            engine.start(chat_only=True)
            try:
                result = asyncio.run(
                    _explain_with_progress(
                        engine, itertools.chain([first], changes), args.commit_message, explain_changes, texts
                    )
                )
            finally:
                engine.close()
                if texts is not None:
                    texts.close()
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


async def _explain_with_progress(engine, changes, commit_message, explain_changes, texts=None):
    """A progress bar on a terminal; nothing when stderr is a file or a pipe."""
    if not sys.stderr.isatty():
        return await explain_changes(engine, changes, commit_message=commit_message, texts=texts)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("explaining", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total or None, description=what)

        return await explain_changes(engine, changes, commit_message=commit_message, progress=progress, texts=texts)
