"""Where a process's ledger rows go besides the local file, from the user's own settings.

`attach()` is the one call the language server, the hook and the CLI make after creating
their engine: it stamps rows with the workspace's repository key, links the sink to the
team ledger (shipping in the background where `ship` is true, the team budget always) and
adds the metrics exporter. With no settings it only stamps the repository. Nothing here
reads a repository's policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from lsp_server.ledger.errors import LedgerError, TeamLedgerError
from lsp_server.ledger.settings import SettingsError, UserSettings, load_user_settings
from lsp_server.ledger.sink import LedgerSink

log = logging.getLogger(__name__)


def attach(
    sink: LedgerSink,
    *,
    workspace: Path | None,
    notify: Callable[[str], None] | None = None,
    ship: bool = True,
    settings: UserSettings | None = None,
) -> None:
    """Wire `sink` to the team ledger and metrics export the user configured; never raises."""
    if sink.ledger is None:
        return

    def tell(message: str) -> None:
        log.warning("%s", message)
        if notify is not None:
            notify(message)

    try:
        settings = settings or load_user_settings()
    except SettingsError as error:
        tell(f"ignoring the user settings: {error}")
        settings = UserSettings()
    from lsp_server.ledger.team.identity import repo_key

    sink.repo = repo_key(workspace, settings.team_ledger)
    if settings.team_ledger.configured:
        _attach_team(sink, settings, ship, tell)
    if settings.otel.enabled:
        try:
            from lsp_server.ledger.otel import OtelMetrics

            sink.observers.append(OtelMetrics(settings.otel))
        except ImportError:
            tell("metrics export is on, but the OpenTelemetry SDK is not installed: pip install 'ninetyten[otel]'")


def _attach_team(sink: LedgerSink, settings: UserSettings, ship: bool, tell: Callable[[str], None]) -> None:
    from lsp_server.ledger.team.budget import TeamBudget
    from lsp_server.ledger.team.link import Notice, TeamLink
    from lsp_server.ledger.team.pg import driver
    from lsp_server.ledger.team.shipper import Shipper

    assert sink.ledger is not None
    try:
        driver()
    except TeamLedgerError as error:
        tell(f"{error}; rows stay queued on this machine and the local budget rules apply")
        return
    notice = Notice(tell)
    shipper = None
    if ship:
        try:
            shipper = Shipper(
                sink.ledger.path, settings.team_ledger, on_unreachable=notice.unreachable, on_back=notice.back
            )
        except LedgerError as error:
            tell(f"not shipping to the team ledger: {error}")
        else:
            shipper.start()
    budget = TeamBudget(settings.team_ledger, on_unreachable=notice.unreachable)
    sink.team = TeamLink(shipper, budget)


__all__ = ["attach"]
