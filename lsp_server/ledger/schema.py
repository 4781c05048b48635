"""The SQLite ledger's schema: migrations with a version check, and rows <-> columns.

`ts` is stored as a unix timestamp (REAL, seconds, UTC): range queries are numeric and
there are no time zones to get wrong. Money is stored as integer nano-dollars (`*_nusd`).

Version 2 adds what the team ledger needs: the repository and counterfactual price of
each row, a random id for this ledger (a row's stable id is `<ledger id>:<row id>`; row
ids come from AUTOINCREMENT and are never reused), and an outbox of rows to ship. Triggers
fill the outbox on insert and on feedback, in the writer's own transaction, so a row can
never be stored without being queued; each entry carries a version so that feedback
arriving while a row is being shipped queues it again instead of being lost.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from datetime import datetime, timezone
from typing import Any

from lsp_server.ledger.errors import LedgerError
from lsp_server.ledger.row import LedgerRow, PartialAccept
from lsp_server.ledger.units import NANO, to_nusd

SCHEMA_VERSION = 3

_QUEUE = "INSERT INTO ship_queue (row_id) VALUES (new.id) ON CONFLICT (row_id) DO UPDATE SET version = version + 1"

# _MIGRATIONS[i] upgrades a database from schema version i to i + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE attempts (
            id                 INTEGER PRIMARY KEY AUTOINCREMENT,
            ts                 REAL    NOT NULL,            -- unix seconds, UTC
            request_id         TEXT    NOT NULL,
            attempt            INTEGER NOT NULL,
            task               TEXT    NOT NULL,
            tier               TEXT    NOT NULL,
            backend            TEXT    NOT NULL,
            model              TEXT    NOT NULL,
            prompt_tokens      INTEGER NOT NULL DEFAULT 0,
            completion_tokens  INTEGER NOT NULL DEFAULT 0,
            cached_tokens      INTEGER NOT NULL DEFAULT 0,
            latency_ms         REAL    NOT NULL DEFAULT 0,
            cost_nusd          INTEGER NOT NULL DEFAULT 0,  -- nano-dollars
            frontier_cost_nusd INTEGER NOT NULL DEFAULT 0,  -- nano-dollars
            outcome            TEXT    NOT NULL,
            escalated          INTEGER NOT NULL DEFAULT 0,
            escalation_reason  TEXT,
            error_kind         TEXT,
            policy_hash        TEXT,
            reasons            TEXT    NOT NULL DEFAULT '[]', -- JSON list of reason codes
            shown              INTEGER,
            accepted           INTEGER
        )
        """,
        "CREATE INDEX attempts_ts ON attempts (ts)",
        "CREATE INDEX attempts_request ON attempts (request_id, attempt)",
        """
        CREATE TABLE reservations (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            created     REAL    NOT NULL,                   -- unix seconds, UTC
            amount_nusd INTEGER NOT NULL,
            pid         INTEGER NOT NULL                    -- for diagnostics only
        )
        """,
    ),
    (
        "ALTER TABLE attempts ADD COLUMN repo TEXT",
        "ALTER TABLE attempts ADD COLUMN frontier_price TEXT",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('ledger_id', lower(hex(randomblob(16))))",
        "CREATE TABLE ship_queue (row_id INTEGER PRIMARY KEY, version INTEGER NOT NULL DEFAULT 1)",
        "INSERT INTO ship_queue (row_id) SELECT id FROM attempts",  # the history ships too
        f"CREATE TRIGGER attempts_queue_insert AFTER INSERT ON attempts BEGIN {_QUEUE}; END",
        f"CREATE TRIGGER attempts_queue_feedback AFTER UPDATE OF shown, accepted ON attempts BEGIN {_QUEUE}; END",
    ),
    (  # partial accepts: counts of what was kept of what was shown (the team ledger does not ship them)
        "ALTER TABLE attempts ADD COLUMN kept_chars INTEGER",
        "ALTER TABLE attempts ADD COLUMN shown_chars INTEGER",
        "ALTER TABLE attempts ADD COLUMN kept_words INTEGER",
        "ALTER TABLE attempts ADD COLUMN shown_words INTEGER",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

# Partial accepts stay in the developer's own ledger: the team ledger does not carry them (yet).
PARTIAL_ACCEPT_COLUMNS = ("kept_chars", "shown_chars", "kept_words", "shown_words")
COLUMNS = (
    "ts",
    "request_id",
    "attempt",
    "task",
    "tier",
    "backend",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_ms",
    "cost_nusd",
    "frontier_cost_nusd",
    "outcome",
    "escalated",
    "escalation_reason",
    "error_kind",
    "policy_hash",
    "reasons",
    "shown",
    "accepted",
    "repo",
    "frontier_price",
    *PARTIAL_ACCEPT_COLUMNS,
)
INSERT = f"INSERT INTO attempts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM attempts"


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION (safe if several processes race); returns it."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return SCHEMA_VERSION
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # again, under the write lock
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger has schema version {version}, newer than this ninetyten's "
                f"({SCHEMA_VERSION}); upgrade ninetyten"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def ledger_id(conn: sqlite3.Connection) -> str:
    return str(conn.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()[0])


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def row_values(row: LedgerRow) -> tuple[Any, ...]:
    return (
        row.ts.timestamp(),
        row.request_id,
        row.attempt,
        row.task,
        row.tier,
        row.backend,
        row.model,
        row.prompt_tokens,
        row.completion_tokens,
        row.cached_tokens,
        row.latency_ms,
        to_nusd(row.cost_usd),
        to_nusd(row.frontier_cost_usd),
        row.outcome,
        int(row.escalated),
        row.escalation_reason,
        row.error_kind,
        row.policy_hash,
        json.dumps(row.reasons),
        _flag(row.shown),
        _flag(row.accepted),
        row.repo,
        row.frontier_price,
        row.kept_chars,
        row.shown_chars,
        row.kept_words,
        row.shown_words,
    )


def row_from_db(values: tuple[Any, ...]) -> LedgerRow:
    data = dict(zip(("id", *COLUMNS), values))
    data["ts"] = datetime.fromtimestamp(data["ts"], timezone.utc)
    data["cost_usd"] = data.pop("cost_nusd") / NANO
    data["frontier_cost_usd"] = data.pop("frontier_cost_nusd") / NANO
    data["reasons"] = json.loads(data["reasons"])
    for key in ("escalated", "shown", "accepted"):
        if data[key] is not None:
            data[key] = bool(data[key])
    # Our own rows, already validated on the way in and converted above: skipping validation
    # makes reading a month of completions for a report several times faster.
    return LedgerRow.model_construct(**data)


def insert_missing(conn: sqlite3.Connection, rows: list[LedgerRow]) -> int:
    """Insert the rows not stored yet (by request id and attempt); returns how many were new."""
    stored = 0
    for row in rows:
        exists = conn.execute(
            "SELECT 1 FROM attempts WHERE request_id = ? AND attempt = ?", (row.request_id, row.attempt)
        ).fetchone()
        if exists is None:
            conn.execute(INSERT, row_values(row))
            stored += 1
    return stored


_LAST_ATTEMPT = "(SELECT id FROM attempts WHERE request_id = ? ORDER BY attempt DESC, id DESC LIMIT 1)"


def update_feedback(
    conn: sqlite3.Connection,
    request_id: str,
    shown: bool | None,
    accepted: bool | None,
    partial: PartialAccept | None = None,
) -> None:
    """Shown / accepted (and what a partial accept kept) on the request's last attempt."""
    conn.execute(
        f"UPDATE attempts SET shown = COALESCE(?, shown), accepted = COALESCE(?, accepted) WHERE id = {_LAST_ATTEMPT}",
        (_flag(shown), _flag(accepted), request_id),
    )
    if partial is not None:
        # Parts are accepted one after another: the row keeps the most that was kept.
        conn.execute(
            "UPDATE attempts SET kept_chars = MAX(COALESCE(kept_chars, 0), ?), shown_chars = ?, "
            f"kept_words = MAX(COALESCE(kept_words, 0), ?), shown_words = ? WHERE id = {_LAST_ATTEMPT}",
            (partial.kept_chars, partial.shown_chars, partial.kept_words, partial.shown_words, request_id),
        )


def tier_filter(tiers: Collection[str] | None) -> tuple[str, list[Any]]:
    """An `AND tier IN (...)` clause and its parameters; no clause for None (all tiers)."""
    if tiers is None:
        return "", []
    tiers = list(tiers)
    if not tiers:
        return " AND 0", []
    return f" AND tier IN ({', '.join('?' * len(tiers))})", tiers


__all__ = [
    "COLUMNS",
    "INSERT",
    "SCHEMA_VERSION",
    "SELECT",
    "insert_missing",
    "ledger_id",
    "migrate",
    "row_from_db",
    "row_values",
    "tier_filter",
    "update_feedback",
]
