"""PostgreSQL fixtures: one real server per test session, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lsp_server.ledger.settings import TeamLedgerSettings
from tests.postgres_server import PostgresServer, postgres_bin_dir, running_postgres

__all__ = ["postgres", "team_db", "team_settings"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (`make system-deps` installs Debian's postgresql)")
    with running_postgres() as server:
        yield server


@pytest.fixture
def team_db(postgres: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server (unix socket)."""
    return postgres.socket_url(postgres.create_database())


@pytest.fixture
def team_settings(team_db: str) -> TeamLedgerSettings:
    return TeamLedgerSettings(url=team_db, batch_rows=50)
