"""The language server with a team ledger configured: its rows reach PostgreSQL in the
background, keyed by the repository; when the team ledger is unreachable the user is told once
and completions carry on."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.lsp_session import inline, lsp_session, open_document
from tests.postgres_server import free_port

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    \n"
OPTIONS = {"completion": {"max_tokens": 6, "cache_size": 0, "speculative": False}}


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "remote", "add", "origin", "git@github.com:acme/payments.git"], check=True)
    return path


async def _wait_for_rows(url: str, count: int, timeout: float = 60) -> list[tuple]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                cursor = await conn.execute(
                    "SELECT task, tier, repo, frontier_price, frontier_cost_nusd, user_key FROM ninetyten.attempts"
                )
                rows = await cursor.fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []
        if len(rows) >= count or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def test_server_ships_its_rows_keyed_by_the_repository(
    tmp_path: Path, tiny_model_path: Path, team_db: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NINETYTEN_TEAM_LEDGER_URL", team_db)
    workspace = _repo(tmp_path / "ws")
    async with lsp_session(model=tiny_model_path, home=tmp_path / "home", options=OPTIONS, root=workspace) as client:
        uri = open_document(client, workspace / "calc.py", SOURCE)
        for _ in range(3):
            await inline(client, uri, 5, 4)
        rows = await _wait_for_rows(team_db, 3)  # while the server runs: shipped in the background
    assert len(rows) == 3
    key = "r-" + hashlib.sha256(b"github.com/acme/payments").hexdigest()[:16]
    for task, tier, repo, price, frontier, user in rows:
        assert (task, tier, repo, price) == ("completion", "local", key, "reference-2026-03-21")
        assert frontier > 0 and user.startswith("u-")


async def test_unreachable_team_ledger_is_told_once(
    tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NINETYTEN_TEAM_LEDGER_URL", f"postgresql://dev:s3cretpw@127.0.0.1:{free_port()}/team")
    workspace = _repo(tmp_path / "ws")
    async with lsp_session(model=tiny_model_path, home=tmp_path / "home", options=OPTIONS, root=workspace) as client:
        uri = open_document(client, workspace / "calc.py", SOURCE)
        for _ in range(4):
            assert await inline(client, uri, 5, 4) is not None
            await asyncio.sleep(1.5)  # the shipper tries again after each row
        notices = [m.message for m in client.messages if "team ledger" in m.message]
    assert len(notices) == 1
    assert "dev@127.0.0.1" in notices[0] and "s3cretpw" not in notices[0]
    assert "kept on this machine" in notices[0]
