"""The cost report and the offline switch, as workspace commands."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from lsprotocol import types

from lsp_server.lsp.ids import REPORT_COMMAND, TOGGLE_OFFLINE_COMMAND
from lsp_server.lsp.params import command_params
from lsp_server.lsp.server import NinetyTenServer


async def report(ls: NinetyTenServer, since: Any) -> dict[str, Any]:
    """The cost report as plain text (for a panel) and as JSON (for a client to draw)."""
    from rich.console import Console

    from lsp_server.ledger.local_report import build_report
    from lsp_server.ledger.report import parse_since
    from lsp_server.ledger.terminal import render_report

    engine = ls.engine
    if engine is None or engine.sink.ledger is None:
        return {"error": "the server is not initialized"}
    try:
        start = parse_since(since if isinstance(since, str) else None)
    except ValueError as error:
        return {"error": str(error)}
    ledger = engine.sink.ledger

    def build() -> Any:
        engine.sink.flush()  # rows of the requests just served count too
        return build_report(ledger, start)

    try:
        built = await asyncio.to_thread(build)
    except Exception as error:  # an unreadable ledger is a message, not a crash
        return {"error": f"the ledger could not be read: {error}"}
    buffer = io.StringIO()
    render_report(built, Console(file=buffer, width=110, color_system=None, force_terminal=False, legacy_windows=False))
    return {"text": buffer.getvalue(), "report": built.model_dump(mode="json")}


def toggle_offline(ls: NinetyTenServer, wanted: Any) -> dict[str, Any]:
    engine = ls.engine
    if engine is None:
        return {"error": "the server is not initialized"}
    offline = (not engine.forced_offline) if not isinstance(wanted, bool) else wanted
    engine.set_offline(offline)
    effective = engine.policy.offline
    if effective and not offline:
        message = "the policy itself is offline: everything stays on the local model"
    else:
        message = (
            "offline: everything runs on the local model"
            if effective
            else "online: the policy's remote tiers are back in use"
        )
    ls.notify_user(types.MessageType.Info, message)
    return {"offline": effective, "forced": engine.forced_offline}


def register(server: NinetyTenServer) -> None:
    @server.command(REPORT_COMMAND)
    async def report_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await report(ls, command_params(args, "report").get("since", "today"))

    @server.command(TOGGLE_OFFLINE_COMMAND)
    def toggle_offline_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return toggle_offline(ls, command_params(args, "offline").get("offline"))
