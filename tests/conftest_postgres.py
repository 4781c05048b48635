"""PostgreSQL fixtures: one real server per test session, a fresh database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lsp_server.ledger.settings import TeamLedgerSettings
from tests.postgres_server import PostgresServer, postgres_bin_dir, running_postgres
from tests.prerequisites import missing

__all__ = ["no_team_ledger_from_the_environment", "postgres", "team_db", "team_settings"]


@pytest.fixture(scope="session", autouse=True)
def no_team_ledger_from_the_environment() -> Iterator[None]:
    """A developer's own team ledger or collector must never receive the tests' rows."""
    saved = {
        name: os.environ.pop(name)
        for name in ("NINETYTEN_TEAM_LEDGER_URL", "NINETYTEN_OTEL_ENDPOINT", "NINETYTEN_TEAM_PROJECT")
        if name in os.environ
    }
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if postgres_bin_dir() is None:
        missing("PostgreSQL (Debian's postgresql)", "make system-deps")
    with running_postgres() as server:
        yield server


@pytest.fixture
def team_db(postgres: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server (unix socket)."""
    return postgres.socket_url(postgres.create_database())


@pytest.fixture
def team_settings(team_db: str) -> TeamLedgerSettings:
    return TeamLedgerSettings(url=team_db, batch_rows=50)
