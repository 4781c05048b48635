"""`ninetyten report` and `ninetyten ledger sync|status`: the ledger's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from local_models.errors import ModelError
from lsp_server.ledger.errors import LedgerError, TeamLedgerError
from lsp_server.ledger.local_report import build_report
from lsp_server.ledger.report import DIMENSIONS, Dimension, Report, parse_since, report_json
from lsp_server.ledger.settings import SettingsError, TeamLedgerSettings, load_user_settings, user_config_path
from lsp_server.ledger.store import Ledger

if TYPE_CHECKING:  # rich is loaded by the commands that print with it, not by every command
    from rich.console import Console

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# Below this many queued rows `ledger sync` is done before a bar would be worth drawing.
PROGRESS_BAR_ROWS = 1000


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="spend and savings by task type, tier, model, repository or week",
        description="What the period cost, and what it would have cost on the frontier alone. Reads this "
        "machine's ledger, or the team ledger with --team; no content is stored in either.",
    )
    report.add_argument("--since", metavar="DATE", help="ISO date, or 7d / 24h / month / all (default: this month)")
    report.add_argument(
        "--by",
        action="append",
        choices=DIMENSIONS,
        metavar="|".join(DIMENSIONS),
        help="the tables to print (repeatable; default: task and tier)",
    )
    report.add_argument("--team", action="store_true", help="the whole team's ledger (PostgreSQL)")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.add_argument("--html", metavar="FILE", help="write a self-contained HTML page with charts to FILE")

    ledger = commands.add_parser("ledger", help="the team ledger: ship rows now, show the state")
    actions = ledger.add_subparsers(dest="ledger_command", metavar="ACTION")
    actions.add_parser("sync", help="ship the rows queued now to the team ledger and exit when they are in")
    status = actions.add_parser("status", help="rows waiting to be shipped, and the team ledger's state")
    status.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.command == "report":
        return run_report(args.since, args.json, team=args.team, by=args.by, html=args.html)
    if args.ledger_command == "sync":
        return run_sync()
    if args.ledger_command == "status":
        return run_status(args.json)
    print("usage: ninetyten ledger sync|status", file=sys.stderr)
    return EXIT_USAGE


def _fail(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"ninetyten: {message}", file=sys.stderr)
    return code


def _team_settings() -> TeamLedgerSettings:
    """The configured team ledger; TeamLedgerError (exit 2) when there is none."""
    try:
        settings = load_user_settings().team_ledger
    except SettingsError as error:
        raise TeamLedgerError(str(error)) from None
    if not settings.configured:
        raise _NotConfigured(
            f"no team ledger is configured: set NINETYTEN_TEAM_LEDGER_URL, or url in the [team_ledger] "
            f"table of {user_config_path()}"
        )
    return settings


class _NotConfigured(TeamLedgerError):
    pass


def _local_report(since: Any, ledger_path: Path | None) -> Report:
    try:
        ledger = Ledger(ledger_path)
    except ModelError as exc:  # the data directory can't be created
        raise LedgerError(str(exc)) from None
    try:
        return build_report(ledger, since)
    finally:
        ledger.close()


def run_report(
    since: str | None,
    as_json: bool,
    ledger_path: Path | None = None,
    *,
    console: Console | None = None,
    team: bool = False,
    by: Sequence[Dimension] | None = None,
    html: str | None = None,
) -> int:
    """The `ninetyten report` command; returns the exit code."""
    try:
        start = parse_since(since)
    except ValueError as exc:
        return _fail(f"report: {exc}", EXIT_USAGE)
    try:
        if team:
            from lsp_server.ledger.team.aggregate import team_report

            report = team_report(_team_settings(), start)
        else:
            report = _local_report(start, ledger_path)
    except _NotConfigured as exc:
        return _fail(f"report: {exc}", EXIT_USAGE)
    except (LedgerError, TeamLedgerError) as exc:
        return _fail(f"report: {exc}")
    if html:
        from lsp_server.ledger.html import render_html

        try:
            Path(html).write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            return _fail(f"report: cannot write {html}: {exc}")
        if not as_json:
            print(f"wrote {html}", file=sys.stderr)
    if as_json:
        sys.stdout.write(report_json(report) + "\n")
    elif not html:
        from rich.console import Console

        from lsp_server.ledger.terminal import render_report

        render_report(report, console or Console(), by=tuple(dict.fromkeys(by or ("task", "tier"))))
    return EXIT_OK


def run_sync(ledger_path: Path | None = None) -> int:
    """`ninetyten ledger sync`: ship what is queued now, with a bar on a large backlog."""
    from lsp_server.ledger.team.shipper import Shipper

    try:
        settings = _team_settings()
        shipper = Shipper(ledger_path or _default_ledger_path(), settings)
    except _NotConfigured as exc:
        return _fail(f"ledger sync: {exc}", EXIT_USAGE)
    except (TeamLedgerError, LedgerError) as exc:
        return _fail(f"ledger sync: {exc}")
    try:
        pending = shipper.pending()
        if pending >= PROGRESS_BAR_ROWS and sys.stderr.isatty():
            shipped = _ship_with_bar(shipper, pending)
        else:
            shipped = shipper.ship_now()
    except (TeamLedgerError, LedgerError) as exc:
        return _fail(f"ledger sync: {exc}; the rows stay queued on this machine")
    finally:
        shipper.close()
    print(f"shipped {shipped:,} rows to {shipper.target}", file=sys.stderr)
    return EXIT_OK


def _ship_with_bar(shipper: Any, pending: int) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("shipping"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("shipping", total=pending)
        return int(shipper.ship_now(progress=lambda done: bar.update(task, completed=done)))


def _default_ledger_path() -> Path:
    from local_models.paths import ninetyten_home
    from lsp_server.ledger.store import LEDGER_FILENAME

    try:
        return ninetyten_home() / LEDGER_FILENAME
    except ModelError as exc:
        raise LedgerError(str(exc)) from None


def doctor_lines(ledger_path: Path | None = None) -> tuple[list[str], bool]:
    """`ninetyten doctor`'s team ledger lines, and whether all is well; never a credential."""
    import os

    from lsp_server.ledger.settings import TEAM_URL_ENV
    from lsp_server.ledger.team.status import doctor_lines as team_lines

    try:
        settings = load_user_settings().team_ledger
    except SettingsError as exc:
        return [f"team ledger    PROBLEM: {exc}"], False
    source = TEAM_URL_ENV if os.environ.get(TEAM_URL_ENV, "").strip() else str(user_config_path())
    try:
        path = ledger_path or _default_ledger_path()
    except LedgerError as exc:
        return [f"team ledger    PROBLEM: {exc}"], False
    return team_lines(path, settings, source=source)


def run_status(as_json: bool, ledger_path: Path | None = None) -> int:
    """`ninetyten ledger status`: what waits here, and whether the team ledger takes it."""
    from lsp_server.ledger.team.status import team_status

    try:
        settings = load_user_settings().team_ledger
    except SettingsError as exc:
        return _fail(f"ledger status: {exc}")
    try:
        status = team_status(ledger_path or _default_ledger_path(), settings)
    except LedgerError as exc:
        return _fail(f"ledger status: {exc}")
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        for key, value in status.items():
            print(f"{key:<16} {value if value is not None else '-'}")
    return EXIT_OK if status.get("problem") is None else EXIT_FAILURE


__all__ = ["doctor_lines", "register", "run", "run_report", "run_status", "run_sync"]
