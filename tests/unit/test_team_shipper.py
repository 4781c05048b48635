"""Shipping the local ledger to a real PostgreSQL server: at least once, idempotent, versioned."""

from __future__ import annotations

import getpass
import os
import sqlite3
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from lsp_server.ledger import Ledger, LedgerRow, TeamLedgerError
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.outbox import Outbox
from lsp_server.ledger.team.pg import connect, describe
from lsp_server.ledger.team.schema import PG_SCHEMA_VERSION, ensure_schema
from lsp_server.ledger.team.shipper import Shipper
from tests.postgres_server import PostgresServer, free_port


def make_row(number: int, **fields: object) -> LedgerRow:
    values: dict[str, object] = dict(
        request_id=f"req-{number}",
        task="completion",
        tier="local",
        backend="llama_cpp",
        model="gemma-3-270m",
        prompt_tokens=100 + number,
        completion_tokens=7,
        latency_ms=12.5 + number,
        cost_usd=0.0,
        frontier_cost_usd=0.000123 * number,
        frontier_price="reference-2026-03-21",
        repo="r-0123456789abcdef",
        policy_hash="abcdef123456",
        reasons=["rule 1: task=completion -> local"],
        ts=datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=number),
    )
    values.update(fields)
    return LedgerRow(**values)  # type: ignore[arg-type]


def fill(path: Path, count: int, start: int = 1) -> list[int]:
    with Ledger(path) as ledger:
        return [ledger.record(make_row(n)) for n in range(start, start + count)]


def team_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT uid, ledger_id, row_id, request_id, prompt_tokens, frontier_cost_nusd, shown, "
            "accepted, user_key, repo, ts FROM ninetyten.attempts ORDER BY row_id"
        ).fetchall()


def team_count(url: str) -> int:
    """Rows in the team ledger (0 before the first shipper created it)."""
    with psycopg.connect(url) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM ninetyten.attempts").fetchone()[0])
        except psycopg.errors.UndefinedTable:
            return 0


def queued(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM ship_queue").fetchone()[0])


def test_every_row_ships_once_with_its_stable_id(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    ids = fill(db, 120)
    shipper = Shipper(db, team_settings)
    seen: list[int] = []
    try:
        assert shipper.pending() == 120
        assert shipper.ship_now(progress=seen.append) == 120
        assert shipper.ship_now() == 0
    finally:
        shipper.close()
    assert seen == [50, 100, 120]  # batches of batch_rows
    assert queued(db) == 0
    rows = team_rows(team_settings.url)  # type: ignore[arg-type]
    with Ledger(db) as ledger:
        ledger_id = ledger.ledger_id
        local = ledger.rows()
    assert [r[0] for r in rows] == [f"{ledger_id}:{i}" for i in ids]
    for got, want in zip(rows, local):
        assert got[3] == want.request_id and got[4] == want.prompt_tokens
        assert got[5] == round(want.frontier_cost_usd * 1e9)
        assert got[9] == want.repo and got[10] == want.ts
    user = rows[0][8]
    assert user.startswith("u-") and len(user) == 18 and getpass.getuser() not in user


def test_reasons_and_content_stay_home(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 3)
    shipper = Shipper(db, team_settings)
    shipper.ship_now()
    shipper.close()
    with psycopg.connect(team_settings.url) as conn:  # type: ignore[arg-type]
        columns = {
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'ninetyten' "
                "AND table_name = 'attempts'"
            )
        }
        dump = repr(conn.execute("SELECT * FROM ninetyten.attempts").fetchall())
    assert "reasons" not in columns
    assert "rule 1" not in dump


def test_a_batch_shipped_twice_is_stored_once(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 30)
    shipper = Shipper(db, team_settings)
    shipper.ship_now()
    # What a kill between the PostgreSQL commit and the local delete leaves: every row queued again.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO ship_queue (row_id) SELECT id FROM attempts")
    assert shipper.ship_now() == 30
    shipper.close()
    rows = team_rows(team_settings.url)  # type: ignore[arg-type]
    assert len(rows) == 30 == len({r[0] for r in rows})


def test_feedback_after_shipping_ships_again(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 5)
    shipper = Shipper(db, team_settings)
    shipper.ship_now()
    with Ledger(db) as ledger:
        ledger.mark_feedback("req-3", accepted=True)
    assert queued(db) == 1
    assert shipper.ship_now() == 1
    shipper.close()
    flags = {r[3]: (r[6], r[7]) for r in team_rows(team_settings.url)}  # type: ignore[arg-type]
    assert flags["req-3"] == (True, True) and flags["req-2"] == (None, None)


def test_feedback_while_a_batch_is_in_flight_is_not_lost(tmp_path: Path):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 3)
    outbox = Outbox(db)
    batch = outbox.take(10, outbox.last_queued())
    with Ledger(db) as ledger:
        ledger.mark_feedback("req-2", shown=True)  # lands between reading and forgetting the batch
    outbox.shipped(batch)
    assert [r[3] for r in outbox.take(10, outbox.last_queued())] == ["req-2"]  # version, row id, ts, request id
    outbox.close()


def test_sync_stops_at_what_was_queued_when_it_started(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 100)
    shipper = Shipper(db, team_settings)
    writer = Ledger(db)
    written = iter(range(1000, 2000))

    def progress(done: int) -> None:  # a busy writer adds rows while the sync runs
        for _ in range(60):
            writer.record(make_row(next(written)))

    assert shipper.ship_now(progress=progress) == 100
    shipper.close()
    writer.close()
    assert queued(db) == 120


def test_schema_is_created_once_by_racing_clients(team_settings: TeamLedgerSettings):
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with connect(team_settings) as conn:
                ensure_schema(conn)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(team_settings.url) as conn:  # type: ignore[arg-type]
        meta = dict(conn.execute("SELECT key, value FROM ninetyten.meta").fetchall())
    assert meta["schema_version"] == str(PG_SCHEMA_VERSION)
    assert meta["min_writer_version"] == "1" and len(meta["pseudonym_key"]) == 64


def test_a_newer_compatible_schema_still_takes_rows(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 4)
    with connect(team_settings) as conn:
        ensure_schema(conn)
        # What a later ninetyten might do: a new defaulted column, a higher schema version.
        conn.execute("ALTER TABLE ninetyten.attempts ADD COLUMN energy_wh double precision DEFAULT 0")
        conn.execute("UPDATE ninetyten.meta SET value = %s WHERE key = 'schema_version'", (str(PG_SCHEMA_VERSION + 1),))
        conn.commit()
    shipper = Shipper(db, team_settings)
    assert shipper.ship_now() == 4
    shipper.close()
    with psycopg.connect(team_settings.url) as conn:  # type: ignore[arg-type]
        assert conn.execute("SELECT value FROM ninetyten.meta WHERE key = 'schema_version'").fetchone()[0] == str(
            PG_SCHEMA_VERSION + 1
        )  # not downgraded


def test_a_schema_that_needs_a_newer_writer_keeps_rows_queued(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 4)
    with connect(team_settings) as conn:
        ensure_schema(conn)
        conn.execute("UPDATE ninetyten.meta SET value = '9' WHERE key IN ('schema_version', 'min_writer_version')")
        conn.commit()
    shipper = Shipper(db, team_settings)
    with pytest.raises(TeamLedgerError, match="upgrade ninetyten"):
        shipper.ship_now()
    shipper.close()
    assert queued(db) == 4


def test_unreachable_server_names_the_target_never_the_password(tmp_path: Path):
    db = tmp_path / "ledger.sqlite3"
    fill(db, 2)
    url = f"postgresql://alice:hunter2secret@127.0.0.1:{free_port()}/team"
    shipper = Shipper(db, TeamLedgerSettings(url=url, connect_timeout_s=2))
    with pytest.raises(TeamLedgerError) as caught:
        shipper.ship_now()
    shipper.close()
    message = str(caught.value)
    assert "alice@127.0.0.1" in message and "team" in message
    assert "hunter2secret" not in message and url not in message
    assert queued(db) == 2
    assert "hunter2secret" not in describe(url)


def test_password_from_libpq_password_file(tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch):
    """Over TCP the server wants a password; it comes from PGPASSFILE, not from the URL."""
    name = postgres.create_database()
    db = tmp_path / "ledger.sqlite3"
    fill(db, 3)
    settings = TeamLedgerSettings(url=postgres.tcp_url(name))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "missing"))
    with pytest.raises(TeamLedgerError, match="password"):
        Shipper(db, settings).ship_now()
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:postgres:{postgres.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    shipper = Shipper(db, settings)
    assert shipper.ship_now() == 3
    shipper.close()


def test_without_psycopg_the_message_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an install without the extra looks like
    db = tmp_path / "ledger.sqlite3"
    fill(db, 1)
    shipper = Shipper(db, TeamLedgerSettings(url="postgresql://x@127.0.0.1/team"))
    with pytest.raises(TeamLedgerError, match=r"pip install 'ninetyten\[team\]'"):
        shipper.ship_now()
    shipper.close()


def test_the_background_shipper_ships_when_rows_are_stored(tmp_path: Path, team_settings: TeamLedgerSettings):
    from lsp_server.ledger.sink import LedgerSink
    from lsp_server.ledger.team.link import TeamLink
    from tests.postgres_server import wait_until

    db = tmp_path / "ledger.sqlite3"
    sink = LedgerSink(Ledger(db))
    shipper = Shipper(db, team_settings, idle_s=3600, gather_s=0.05)
    sink.team = TeamLink(shipper, None)
    shipper.start()
    try:
        for n in range(1, 8):
            sink.put(lambda n=n: make_row(n))
        assert wait_until(lambda: team_count(team_settings.url) == 7, timeout=30)  # type: ignore[arg-type]
    finally:
        sink.close()
        sink.ledger.close()  # type: ignore[union-attr]
    assert os.path.exists(db)
