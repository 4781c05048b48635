"""The team ledger's state as this machine sees it: `ninetyten ledger status` and `doctor`.

What waits here to be shipped, whether the team ledger answers, its schema, and what it
has received from this machine. Nothing printed here names a password: the target is
described as user@host/database, and errors are scrubbed of the URL.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lsp_server.ledger.errors import LedgerError, TeamLedgerError
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.outbox import Outbox
from lsp_server.ledger.team.pg import connect, describe, scrub
from lsp_server.ledger.team.schema import PG_SCHEMA_VERSION, SCHEMA, ensure_schema, read_schema


def team_status(ledger_path: Path, settings: TeamLedgerSettings) -> dict[str, Any]:
    """A flat dict for printing; `problem` is None when all is well."""
    status = _local(ledger_path)
    status.update(
        team_ledger=describe(settings.url) if settings.url else None,
        schema=None,
        client_schema=PG_SCHEMA_VERSION,
        rows_shipped=None,
        last_shipped=None,
        problem=None,
    )
    if settings.url is None:
        status["problem"] = "no team ledger configured"
        return status
    try:
        conn = connect(settings)
        try:
            state = ensure_schema(conn, write=True)
            status["schema"] = state.version
            status.update(_shipped(conn, status["ledger_id"]))
        finally:
            conn.close()
    except TeamLedgerError as error:
        status["problem"] = str(error)
    return status


def _local(ledger_path: Path) -> dict[str, Any]:
    try:
        outbox = Outbox(ledger_path)
    except (sqlite3.Error, OSError) as error:
        raise LedgerError(f"cannot open the ledger {ledger_path}: {error}") from None
    try:
        return {"ledger": str(ledger_path), "ledger_id": outbox.ledger_id, "queued_rows": outbox.pending()}
    finally:
        outbox.close()


def _shipped(conn: Any, ledger_id: str) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), MAX(shipped_at) FROM {SCHEMA}.attempts WHERE ledger_id = %s", (ledger_id,))
        count, last = cur.fetchone()
    conn.commit()
    return {"rows_shipped": int(count), "last_shipped": last.astimezone(timezone.utc).isoformat() if last else None}


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def doctor_lines(
    ledger_path: Path, settings: TeamLedgerSettings, *, source: str, now: datetime | None = None
) -> tuple[list[str], bool]:
    """`doctor`'s lines on the team ledger, and whether all is well. Read only: unlike `ledger
    status`, it never creates or upgrades the team ledger's schema. `source` says where the
    URL was set (an environment variable or a file), never what it holds."""
    if settings.url is None:
        return ["team ledger    not configured (rows stay on this machine; see `ninetyten ledger status`)"], True
    lines = [f"team ledger    {describe(settings.url)} (from {source})"]
    queued = "no ledger on this machine yet"
    ledger_id = None
    if ledger_path.exists():
        try:
            local = _local(ledger_path)
        except LedgerError as error:
            return [*lines, f"  PROBLEM: {error}"], False
        ledger_id, queued = local["ledger_id"], f"{local['queued_rows']:,} rows waiting to be shipped"
    ok = settings.pseudonym_key_env is None or bool(os.environ.get(settings.pseudonym_key_env))
    if settings.pseudonym_key_env:
        lines.append(
            f"  pseudonyms     keyed by ${settings.pseudonym_key_env}, {'set' if ok else 'NOT SET: rows cannot ship'}"
        )
    try:
        conn = connect(settings, role="doctor")
        try:
            state = read_schema(conn)
            shipped = _shipped(conn, ledger_id) if ledger_id is not None and state is not None else None
        finally:
            conn.close()
    except TeamLedgerError as error:
        return [*lines, f"  PROBLEM: {_one_line(str(error))}", f"  backlog        {queued}"], False
    except Exception as error:  # a query the server refused: say so, never with the URL in it
        return [
            *lines,
            f"  PROBLEM: the team ledger answered with an error: {_one_line(scrub(str(error), settings.url))}",
            f"  backlog        {queued}",
        ], False
    if state is None:
        lines.append(f"  schema         none yet: reachable, the first shipment creates schema {PG_SCHEMA_VERSION}")
    else:
        try:
            state.check(write=True)
            fits = f"this ninetyten writes schema {PG_SCHEMA_VERSION}"
        except TeamLedgerError as error:
            ok, fits = False, f"PROBLEM: {error}"
        lines.append(f"  schema         {state.version}: reachable, {fits}")
    lines.append(f"  backlog        {queued}")
    if shipped is not None:
        last = shipped["last_shipped"]
        when = (
            f"last arrived {last[:19].replace('T', ' ')} UTC "
            f"({_ago(datetime.fromisoformat(last), now or datetime.now(timezone.utc))})"
            if last
            else "none yet"
        )
        lines.append(f"  shipped        {shipped['rows_shipped']:,} rows from this machine; {when}")
    return lines, ok


__all__ = ["doctor_lines", "team_status"]
