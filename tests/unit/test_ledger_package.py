"""The ledger package's shape, the user's settings, and the identities the team ledger records."""

from __future__ import annotations

import ast
import hashlib
import sqlite3
from pathlib import Path

import pytest

import lsp_server.ledger as ledger_package
from lsp_server.engine.results import Attempt
from lsp_server.ledger import OUTCOMES, Ledger, LedgerRow
from lsp_server.ledger.schema import SCHEMA_VERSION
from lsp_server.ledger.settings import SettingsError, TeamLedgerSettings, load_user_settings
from lsp_server.ledger.team.identity import normalise_remote, repo_key, user_key
from lsp_server.routing.policy import PolicyError, parse_policy

PACKAGE = Path(ledger_package.__file__).parent


def test_no_module_over_400_lines():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
    assert len(sizes) >= 20


def test_the_names_the_rest_of_the_code_imports_are_still_there():
    for name in (
        "Ledger",
        "LedgerRow",
        "LedgerError",
        "LedgerSink",
        "Price",
        "Reservation",
        "safe_reason",
        "utc_midnight",
        "LEDGER_FILENAME",
        "SCHEMA_VERSION",
        "JOURNAL_DIRNAME",
        "Journal",
        "migrate",
    ):
        assert hasattr(ledger_package, name), name
    from lsp_server.routing import policy

    assert policy.Price is ledger_package.Price


def test_one_outcome_vocabulary_with_what_the_engine_writes():
    assert "low_confidence" in OUTCOMES and "escalated" in OUTCOMES
    engine_outcomes = Attempt.__annotations__["outcome"]
    assert engine_outcomes == "Outcome"  # the engine uses the ledger's vocabulary, not a copy
    for module in (PACKAGE.parent / "engine").rglob("*.py"):
        assert "Literal[\"ok\"" not in module.read_text(), module
    tree = ast.parse((PACKAGE / "row.py").read_text())
    assert not any(
        isinstance(node, ast.Assign) and any(getattr(t, "id", "") in ("TASKS", "BACKENDS") for t in node.targets)
        for node in ast.walk(tree)
    )


def test_a_version_1_ledger_is_upgraded_and_its_history_queued(tmp_path: Path):
    db = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    from lsp_server.ledger.schema import _MIGRATIONS

    for statement in _MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO attempts (ts, request_id, attempt, task, tier, backend, model, outcome) "
        "VALUES (1, 'old', 1, 'ask', 'local', 'llama_cpp', 'm', 'ok')"
    )
    conn.close()
    with Ledger(db) as ledger:
        assert len(ledger.ledger_id) == 32 and ledger.row_uid(7) == f"{ledger.ledger_id}:7"
        ledger.record(
            LedgerRow(request_id="new", task="ask", tier="local", backend="llama_cpp", model="m", repo="payments")
        )
        rows = ledger.rows()
    assert [r.request_id for r in rows] == ["old", "new"] and rows[1].repo == "payments"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT row_id FROM ship_queue ORDER BY row_id").fetchall() == [(1,), (2,)]


def test_settings_from_file_and_environment(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text(
        '[team_ledger]\nurl = "postgresql://a@db/team"\nproject = "payments"\n'
        '[otel]\nenabled = true\nendpoint = "http://127.0.0.1:4318"\n[other]\nx = 1\n'
    )
    settings = load_user_settings({}, path)
    assert settings.team_ledger.url == "postgresql://a@db/team" and settings.team_ledger.project == "payments"
    assert settings.otel.enabled and settings.otel.endpoint == "http://127.0.0.1:4318"
    env = {"NINETYTEN_TEAM_LEDGER_URL": "postgresql://b@db2/t", "NINETYTEN_OTEL_ENDPOINT": "http://c:4318"}
    settings = load_user_settings(env, tmp_path / "missing.toml")
    assert settings.team_ledger.url == "postgresql://b@db2/t" and settings.otel.endpoint == "http://c:4318"
    assert not load_user_settings({}, tmp_path / "missing.toml").team_ledger.configured
    path.write_text('[team_ledger]\nuser = "everyone"\n')
    with pytest.raises(SettingsError, match=r"config.toml: team_ledger.user"):
        load_user_settings({}, path)
    path.write_text("[team_ledger\n")
    with pytest.raises(SettingsError, match="cannot be read"):
        load_user_settings({}, path)


def test_a_repository_policy_cannot_name_a_team_ledger():
    with pytest.raises(PolicyError, match="team_ledger"):
        parse_policy('[team_ledger]\nurl = "postgresql://attacker@evil/collect"\n')
    with pytest.raises(PolicyError, match="budget.url"):
        parse_policy('[budget]\nurl = "postgresql://attacker@evil/collect"\n')
    assert parse_policy("[budget]\nteam_daily_usd = 25.0\n").budget.team_daily_usd == 25.0


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:acme/payments.git",
        "https://github.com/acme/payments",
        "https://github.com/acme/payments.git",
        "ssh://git@github.com/acme/payments.git",
        "https://user:token@GitHub.com/acme/payments/",
        "ssh://git@github.com:22/acme/payments",
    ],
)
def test_one_repository_key_for_every_spelling_of_its_remote(url: str):
    assert normalise_remote(url) == "github.com/acme/payments"


def test_repository_key(tmp_path: Path):
    import subprocess

    assert repo_key(tmp_path, TeamLedgerSettings()) is None  # not a repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert repo_key(tmp_path, TeamLedgerSettings()) is None  # no remote
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "upstream", "https://u:secret@github.com/a/b.git"], check=True
    )
    key = repo_key(tmp_path, TeamLedgerSettings())
    assert key == "r-" + hashlib.sha256(b"github.com/a/b").hexdigest()[:16]
    assert repo_key(tmp_path, TeamLedgerSettings(project="billing")) == "billing"
    LedgerRow(request_id="r", task="ask", tier="local", backend="llama_cpp", model="m", repo=key)  # a valid code


def test_user_pseudonyms(monkeypatch: pytest.MonkeyPatch):
    settings = TeamLedgerSettings()
    alice = user_key(settings, "dbkey", "alice")
    assert alice.startswith("u-") and len(alice) == 18 and "alice" not in alice
    assert alice == user_key(settings, "dbkey", "alice") != user_key(settings, "other", "alice")
    assert user_key(TeamLedgerSettings(user="name"), "dbkey", "alice") == "alice"
    team = TeamLedgerSettings(pseudonym_key_env="TEAM_PSEUDONYM_KEY")
    monkeypatch.setenv("TEAM_PSEUDONYM_KEY", "team secret")
    assert user_key(team, "dbkey", "alice") == user_key(team, "another db", "alice") != alice
    monkeypatch.delenv("TEAM_PSEUDONYM_KEY")
    from lsp_server.ledger import TeamLedgerError

    with pytest.raises(TeamLedgerError, match="TEAM_PSEUDONYM_KEY"):
        user_key(team, "dbkey", "alice")
