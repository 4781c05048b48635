"""The team ledger's schema in PostgreSQL, with version checks so that developers on
different ninetyten versions can share one database.

Everything lives in the `ninetyten` schema. `ninetyten.meta` holds three numbers:

- `schema_version`: the last migration applied;
- `min_writer_version`: the oldest schema version whose clients may still write (ship rows,
  hold budget);
- `min_reader_version`: the oldest whose clients may still read (reports).

A client upgrades an older database itself (under an advisory lock, so that ten developers
starting at once apply each migration once). A newer database is fine for an older client
as long as its schema version is at least the minimum: migrations only add tables and
nullable or defaulted columns unless they raise the minimums, and clients always name the
columns they write. A client below a minimum keeps its rows queued locally and says to
upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsp_server.ledger.errors import TeamLedgerError

SCHEMA = "ninetyten"
PG_SCHEMA_VERSION = 1
_LOCK = "ninetyten.schema"


@dataclass(frozen=True)
class Migration:
    statements: tuple[str, ...]
    min_writer: int  # in force once applied
    min_reader: int


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        statements=(
            f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
            f"CREATE TABLE {SCHEMA}.meta (key text PRIMARY KEY, value text NOT NULL)",
            f"""
            CREATE TABLE {SCHEMA}.attempts (
                uid                text PRIMARY KEY,        -- <ledger id>:<row id>: stable, unique
                ledger_id          text NOT NULL,           -- one developer machine's ledger
                row_id             bigint NOT NULL,
                ts                 timestamptz NOT NULL,
                user_key           text NOT NULL,           -- keyed hash of the user name (or the name)
                repo               text,                    -- project name or hash of the remote URL
                request_id         text NOT NULL,
                attempt            integer NOT NULL,
                task               text NOT NULL,
                tier               text NOT NULL,
                backend            text NOT NULL,
                model              text NOT NULL,
                prompt_tokens      bigint NOT NULL DEFAULT 0,
                completion_tokens  bigint NOT NULL DEFAULT 0,
                cached_tokens      bigint NOT NULL DEFAULT 0,
                latency_ms         double precision NOT NULL DEFAULT 0,
                cost_nusd          bigint NOT NULL DEFAULT 0,   -- nano-dollars
                frontier_cost_nusd bigint NOT NULL DEFAULT 0,
                frontier_price     text,
                outcome            text NOT NULL,
                escalated          boolean NOT NULL DEFAULT false,
                escalation_reason  text,
                error_kind         text,
                policy_hash        text,
                shown              boolean,
                accepted           boolean,
                client_version     text,
                shipped_at         timestamptz NOT NULL DEFAULT now()
            )
            """,
            f"CREATE INDEX attempts_ts ON {SCHEMA}.attempts (ts)",
            f"""
            CREATE TABLE {SCHEMA}.budget_holds (
                id          bigserial PRIMARY KEY,
                day         date NOT NULL,                  -- the UTC day the hold counts against
                created     timestamptz NOT NULL DEFAULT now(),
                amount_nusd bigint NOT NULL,
                settled     boolean NOT NULL DEFAULT false, -- true: the real cost of a recorded row
                uid         text UNIQUE,                    -- that row, once settled
                user_key    text
            )
            """,
            f"CREATE INDEX budget_holds_day ON {SCHEMA}.budget_holds (day)",
            # The key of the user pseudonyms when the team sets none of its own.
            f"INSERT INTO {SCHEMA}.meta VALUES ('pseudonym_key', "
            "encode(sha256((gen_random_uuid()::text || gen_random_uuid()::text)::bytea), 'hex'))",
        ),
        min_writer=1,
        min_reader=1,
    ),
)
assert len(MIGRATIONS) == PG_SCHEMA_VERSION


@dataclass(frozen=True)
class SchemaState:
    version: int
    min_writer: int
    min_reader: int
    pseudonym_key: str

    def check(self, *, write: bool) -> None:
        """TeamLedgerError when this client may not write (or read) this database."""
        needed = self.min_writer if write else self.min_reader
        if PG_SCHEMA_VERSION < needed:
            raise TeamLedgerError(
                f"the team ledger has schema version {self.version}, which needs a ninetyten that knows "
                f"schema {needed} or later to {'write' if write else 'read'} (this one knows {PG_SCHEMA_VERSION}); "
                "upgrade ninetyten"
            )


def _read_state(cur: Any) -> SchemaState | None:
    # A plain catalog query, not to_regclass(): that may answer from a catalog cache that an
    # advisory lock does not refresh, and miss a table another client just created.
    cur.execute("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = 'meta'", (SCHEMA,))
    if cur.fetchone() is None:
        return None
    cur.execute(f"SELECT key, value FROM {SCHEMA}.meta")
    meta = dict(cur.fetchall())
    return SchemaState(
        int(meta.get("schema_version", 0)),
        int(meta.get("min_writer_version", 0)),
        int(meta.get("min_reader_version", 0)),
        str(meta.get("pseudonym_key", "")),
    )


def read_schema(conn: Any) -> SchemaState | None:
    """The database's schema state without changing anything (None: no ninetyten schema yet)."""
    with conn.cursor() as cur:
        state = _read_state(cur)
    conn.commit()
    return state


def ensure_schema(conn: Any, *, write: bool = True) -> SchemaState:
    """Bring the database up to this client's schema if it is older; check that this client
    may use it. Commits; leaves the connection idle."""
    with conn.cursor() as cur:
        state = _read_state(cur)
        conn.commit()
        if state is None or state.version < PG_SCHEMA_VERSION:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK,))
            state = _read_state(cur)  # again, under the lock: another client may have done it
            version = state.version if state is not None else 0
            for target in range(version + 1, PG_SCHEMA_VERSION + 1):
                migration = MIGRATIONS[target - 1]
                for statement in migration.statements:
                    cur.execute(statement)
                for key, value in (
                    ("schema_version", target),
                    ("min_writer_version", migration.min_writer),
                    ("min_reader_version", migration.min_reader),
                ):
                    cur.execute(
                        f"INSERT INTO {SCHEMA}.meta VALUES (%s, %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        (key, str(value)),
                    )
            state = _read_state(cur)
            conn.commit()
    assert state is not None
    state.check(write=write)
    return state


__all__ = ["MIGRATIONS", "PG_SCHEMA_VERSION", "SCHEMA", "Migration", "SchemaState", "ensure_schema", "read_schema"]
