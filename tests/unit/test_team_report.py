"""The team report from PostgreSQL: the same figures as the local report on the same rows, and
as the team report computed with one sort per grouping (tests/report_reference.py)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from lsp_server.cli.ledger import run_report
from lsp_server.ledger import Ledger, LedgerRow
from lsp_server.ledger.latency_ranks import bucket, bucket_sql
from lsp_server.ledger.local_report import build_report
from lsp_server.ledger.report import DIMENSIONS, Report
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.aggregate import team_report
from lsp_server.ledger.team.shipper import Shipper
from tests.ledger_rows import NOW, awkward_rows, random_rows
from tests.report_reference import reference_report, reference_team_report


def comparable(report: Report) -> dict[str, object]:
    data = json.loads(report.model_dump_json(exclude={"source", "until"}))
    for key, value in data.items():
        if isinstance(value, list) and key != "escalation_reasons" and key != "counterfactual":
            data[key] = sorted(value, key=lambda g: g["key"])  # ties in "busiest first" may order differently
    return data


@pytest.fixture
def shipped(tmp_path: Path, team_settings: TeamLedgerSettings) -> Path:
    db = tmp_path / "ledger.sqlite3"
    with Ledger(db) as ledger:
        for row in random_rows(7, 600, "dev"):
            ledger.record(row)
    shipper = Shipper(db, team_settings.model_copy(update={"batch_rows": 500}))
    shipper.ship_now()
    shipper.close()
    return db


@pytest.mark.parametrize("since", [None, NOW - timedelta(days=14)])
def test_team_report_equals_the_local_report_on_the_same_rows(
    shipped: Path, team_settings: TeamLedgerSettings, since: datetime | None
):
    with Ledger(shipped) as ledger:
        local = build_report(ledger, since)
    team = team_report(team_settings, since)
    assert team.source == "team" and local.totals.attempts > 0
    assert comparable(team) == comparable(local)
    for dimension in ("tier", "week"):  # orders that do not depend on ties
        assert [g.key for g in team.groups(dimension)] == [g.key for g in local.groups(dimension)]
    assert {d: len(team.groups(d)) for d in DIMENSIONS} == {d: len(local.groups(d)) for d in DIMENSIONS}


def ship(db: Path, settings: TeamLedgerSettings) -> None:
    shipper = Shipper(db, settings.model_copy(update={"batch_rows": 500}))
    shipper.ship_now()
    shipper.close()


@pytest.mark.parametrize("since", [None, NOW - timedelta(days=10)])
def test_three_developers_awkward_rows_agree_with_both_references(
    tmp_path: Path, team_settings: TeamLedgerSettings, since: datetime | None
):
    """Requests of up to four attempts, ties, zero latencies, weeks split at Monday 00:00, and
    the same request ids on three machines: the team report equals the one sorted per
    grouping, and, for each machine alone, the row-by-row local report."""
    ledgers = []
    for n in range(3):
        db = tmp_path / f"dev{n}.sqlite3"
        with Ledger(db) as ledger:
            for row in awkward_rows(20 + n, 400, "same"):  # "same": request ids collide across machines
                ledger.record(row)
            ledgers.append(db)
        ship(db, team_settings)
    team = team_report(team_settings, since)
    conn = psycopg.connect(team_settings.url)  # type: ignore[arg-type]
    try:
        sorted_per_grouping = reference_team_report(conn, since)
    finally:
        conn.close()
    assert comparable(team) == comparable(sorted_per_grouping)
    assert team.totals.attempts > (1000 if since is None else 100)
    # One machine: the team report over its rows only is its local report.
    with psycopg.connect(team_settings.url, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(
            "DELETE FROM ninetyten.attempts WHERE ledger_id <> (SELECT min(ledger_id) FROM ninetyten.attempts)"
        )
        remaining = conn.execute("SELECT min(ledger_id) FROM ninetyten.attempts").fetchone()[0]
    db = next(d for d in ledgers if Ledger(d).ledger_id == remaining)
    with Ledger(db) as ledger:
        assert comparable(team_report(team_settings, since)) == comparable(reference_report(ledger, since))


def test_buckets_in_postgresql_are_the_buckets_in_python(team_settings: TeamLedgerSettings):
    values = [
        0.0,
        -0.0,
        5e-324,
        1e-9,
        0.0004,
        0.0005,
        0.000999,
        0.001,
        0.9999999,
        1.0,
        9.999,
        99.99999999999999,
        999.9995,
        1099.999,
        123456.789012345,
        1e12,
        1e15,
        -5.0,
        float("inf"),
    ]
    values += [random.Random(4).lognormvariate(4, 3) for _ in range(2000)]
    with psycopg.connect(team_settings.url) as conn:  # type: ignore[arg-type]
        for digits in (1, 2, 3):
            found = conn.execute(
                f"SELECT {bucket_sql('v', digits, 'postgresql')} FROM unnest(%s::float8[]) v", (values,)
            ).fetchall()
            assert [b for (b,) in found] == [bucket(v, digits) for v in values]


def test_requests_of_two_developers_never_merge(tmp_path: Path, team_settings: TeamLedgerSettings):
    """Request ids are per machine: the same id from two ledgers is two requests."""
    for name in ("a", "b"):
        db = tmp_path / f"{name}.sqlite3"
        with Ledger(db) as ledger:
            ledger.record(
                LedgerRow(
                    request_id="same-1",
                    task="ask",
                    tier="local",
                    backend="llama_cpp",
                    model="m",
                    latency_ms=100.0 if name == "a" else 300.0,
                    ts=NOW,
                )
            )
        shipper = Shipper(db, team_settings)
        shipper.ship_now()
        shipper.close()
    report = team_report(team_settings, None)
    assert report.totals.requests == 2 and report.totals.latency_p50_ms == 100.0
    assert report.totals.latency_p95_ms == 300.0


def test_report_team_cli(
    shipped: Path,
    team_settings: TeamLedgerSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NINETYTEN_TEAM_LEDGER_URL", team_settings.url or "")
    assert run_report("all", True, team=True) == 0
    data = json.loads(capsys.readouterr().out)
    with Ledger(shipped) as ledger:
        local = build_report(ledger, None)
    assert data["source"] == "team" and data["totals"]["cost_usd"] == local.totals.cost_usd
    assert run_report("all", False, team=True, by=["repo", "week"]) == 0
    out = capsys.readouterr().out
    assert "team ledger" in out and "By repository" in out and "By week" in out and "payments" in out
    assert "By task type" not in out


def test_report_team_without_configuration_says_how(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NINETYTEN_TEAM_LEDGER_URL", raising=False)
    assert run_report(None, False, team=True) == 2
    err = capsys.readouterr().err
    assert "NINETYTEN_TEAM_LEDGER_URL" in err and "config.toml" in err


def test_team_report_reads_a_database_no_one_shipped_to(team_settings: TeamLedgerSettings):
    report = team_report(team_settings, None)
    assert report.totals.attempts == 0 and report.by_task == []
    with psycopg.connect(team_settings.url) as conn:  # type: ignore[arg-type]
        assert conn.execute("SELECT COUNT(*) FROM ninetyten.attempts").fetchone()[0] == 0
