"""`ninetyten ledger status`: what waits on this machine, and what the team ledger has of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from lsp_server.ledger.errors import LedgerError, TeamLedgerError
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.outbox import Outbox
from lsp_server.ledger.team.pg import connect, describe
from lsp_server.ledger.team.schema import PG_SCHEMA_VERSION, SCHEMA, ensure_schema


def team_status(ledger_path: Path, settings: TeamLedgerSettings) -> dict[str, Any]:
    """A flat dict for printing; `problem` is None when all is well."""
    try:
        outbox = Outbox(ledger_path)
    except (sqlite3.Error, OSError) as error:
        raise LedgerError(f"cannot open the ledger {ledger_path}: {error}") from None
    try:
        status: dict[str, Any] = {
            "ledger": str(ledger_path),
            "ledger_id": outbox.ledger_id,
            "queued_rows": outbox.pending(),
            "team_ledger": describe(settings.url) if settings.url else None,
            "schema": None,
            "client_schema": PG_SCHEMA_VERSION,
            "rows_shipped": None,
            "problem": None,
        }
    finally:
        outbox.close()
    if settings.url is None:
        status["problem"] = "no team ledger configured"
        return status
    try:
        conn = connect(settings)
        try:
            state = ensure_schema(conn, write=True)
            status["schema"] = state.version
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {SCHEMA}.attempts WHERE ledger_id = %s", (status["ledger_id"],))
                found = cur.fetchone()
                status["rows_shipped"] = int(found[0]) if found is not None else 0
            conn.commit()
        finally:
            conn.close()
    except TeamLedgerError as error:
        status["problem"] = str(error)
    return status


__all__ = ["team_status"]
