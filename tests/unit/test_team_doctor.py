"""`ninetyten doctor`'s team ledger lines against a real PostgreSQL server: configured or not,
reachable, its schema, the backlog here, the last row shipped; never a password."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from lsp_server.cli.ledger import doctor_lines as cli_doctor_lines
from lsp_server.ledger import Ledger, LedgerRow
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.schema import PG_SCHEMA_VERSION
from lsp_server.ledger.team.shipper import Shipper
from lsp_server.ledger.team.status import doctor_lines
from tests.postgres_server import PostgresServer, free_port


def fill(path: Path, count: int) -> None:
    with Ledger(path) as ledger:
        for n in range(count):
            ledger.record(
                LedgerRow(
                    request_id=f"r-{n}", task="completion", tier="local", backend="llama_cpp", model="gemma-3-270m"
                )
            )


@pytest.fixture
def tcp_settings(postgres: PostgresServer) -> TeamLedgerSettings:
    """Over TCP with the password in the URL: the form most likely to leak."""
    database = postgres.create_database()
    return TeamLedgerSettings(url=f"postgresql://postgres:{postgres.password}@127.0.0.1:{postgres.port}/{database}")


def test_not_configured_is_fine(tmp_path: Path):
    lines, ok = doctor_lines(tmp_path / "ledger.sqlite3", TeamLedgerSettings(), source="config.toml")
    assert ok and lines == ["team ledger    not configured (rows stay on this machine; see `ninetyten ledger status`)"]


def test_a_fresh_database_then_a_backlog_then_shipped_rows(
    tmp_path: Path, tcp_settings: TeamLedgerSettings, postgres: PostgresServer
):
    ledger = tmp_path / "ledger.sqlite3"
    lines, ok = doctor_lines(ledger, tcp_settings, source="NINETYTEN_TEAM_LEDGER_URL")
    text = "\n".join(lines)
    assert ok, text
    assert f"team ledger    postgresql postgres@127.0.0.1:{postgres.port}/" in text
    assert "(from NINETYTEN_TEAM_LEDGER_URL)" in text
    assert "schema         none yet: reachable" in text and "no ledger on this machine yet" in text
    assert not ledger.exists()  # doctor creates nothing
    with psycopg.connect(tcp_settings.url) as conn:  # type: ignore[arg-type]
        assert conn.execute("SELECT to_regnamespace('ninetyten')").fetchone()[0] is None  # nor the schema

    fill(ledger, 7)
    shipper = Shipper(ledger, tcp_settings)
    shipper.ship_now()
    fill(ledger, 3)  # three more wait
    shipper.close()
    now = datetime.now(timezone.utc) + timedelta(minutes=5)
    lines, ok = doctor_lines(ledger, tcp_settings, source="NINETYTEN_TEAM_LEDGER_URL", now=now)
    text = "\n".join(lines)
    assert ok, text
    assert f"schema         {PG_SCHEMA_VERSION}: reachable, this ninetyten writes schema {PG_SCHEMA_VERSION}" in text
    assert "backlog        3 rows waiting to be shipped" in text
    assert "shipped        7 rows from this machine; last arrived " in text and "UTC (5 min ago)" in text
    assert postgres.password not in text


def test_unreachable_is_a_problem_without_the_password(tmp_path: Path):
    fill(tmp_path / "ledger.sqlite3", 2)
    settings = TeamLedgerSettings(url=f"postgresql://alice:s3cret-pw@127.0.0.1:{free_port()}/team", connect_timeout_s=1)
    lines, ok = doctor_lines(tmp_path / "ledger.sqlite3", settings, source="config.toml")
    text = "\n".join(lines)
    assert not ok
    assert "PROBLEM: cannot reach the team ledger (postgresql alice@127.0.0.1:" in text
    assert len(lines) == 3  # the driver's multi-line message on one line
    assert "backlog        2 rows waiting to be shipped" in text
    assert "s3cret-pw" not in text


def test_a_newer_schema_this_version_may_not_write_is_a_problem(tmp_path: Path, tcp_settings: TeamLedgerSettings):
    fill(tmp_path / "ledger.sqlite3", 1)
    shipper = Shipper(tmp_path / "ledger.sqlite3", tcp_settings)
    shipper.ship_now()
    shipper.close()
    with psycopg.connect(tcp_settings.url) as conn:  # type: ignore[arg-type]
        conn.execute("UPDATE ninetyten.meta SET value = '9' WHERE key IN ('schema_version', 'min_writer_version')")
    lines, ok = doctor_lines(tmp_path / "ledger.sqlite3", tcp_settings, source="config.toml")
    text = "\n".join(lines)
    assert not ok and "schema         9: reachable, PROBLEM: " in text and "upgrade ninetyten" in text


def test_a_pseudonym_key_that_is_not_set_is_named_never_shown(
    tmp_path: Path, tcp_settings: TeamLedgerSettings, monkeypatch: pytest.MonkeyPatch
):
    settings = tcp_settings.model_copy(update={"pseudonym_key_env": "TEAM_PSEUDONYM_KEY"})
    monkeypatch.delenv("TEAM_PSEUDONYM_KEY", raising=False)
    lines, ok = doctor_lines(tmp_path / "ledger.sqlite3", settings, source="config.toml")
    assert not ok and any("keyed by $TEAM_PSEUDONYM_KEY, NOT SET" in line for line in lines)
    monkeypatch.setenv("TEAM_PSEUDONYM_KEY", "the-team-secret-value")
    lines, ok = doctor_lines(tmp_path / "ledger.sqlite3", settings, source="config.toml")
    assert ok and any("keyed by $TEAM_PSEUDONYM_KEY, set" in line for line in lines)
    assert "the-team-secret-value" not in "\n".join(lines)


def test_the_cli_reads_the_users_settings_and_names_where_the_url_came_from(
    tmp_path: Path, tcp_settings: TeamLedgerSettings, monkeypatch: pytest.MonkeyPatch, postgres: PostgresServer
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NINETYTEN_TEAM_LEDGER_URL", raising=False)
    config = tmp_path / "config" / "ninetyten" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[team_ledger]\nurl = "{tcp_settings.url}"\n')
    lines, ok = cli_doctor_lines(tmp_path / "ledger.sqlite3")
    assert ok and f"(from {config})" in lines[0] and postgres.password not in "\n".join(lines)
    config.write_text("[team_ledger]\nurl = 3\n")
    lines, ok = cli_doctor_lines(tmp_path / "ledger.sqlite3")
    assert not ok and lines[0].startswith("team ledger    PROBLEM: ") and "team_ledger.url" in lines[0]
