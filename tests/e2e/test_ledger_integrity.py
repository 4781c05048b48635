"""The ledger under crashes and contention: real processes, real SQLite files, real signals.

The promise under test (reliability issue): the ledger survives `kill -9` of a writer in
the middle of a write (WAL: no corruption, at most the in-flight row lost), and the
server, the git hook and the CLI can all use it at once without "database is locked".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.ledger import LEDGER_FILENAME, Ledger, LedgerRow
from tests.lsp_session import (
    VSCODE_LIKE,
    _ready,
    inline,
    open_document,
    served_notifications,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Every request runs the model (no cache, no speculation), so each answer has its own row.
OPTIONS = {"completion": {"max_tokens": 6, "cache_size": 0, "speculative": False}}
SOURCE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    \n"


def _env(home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }
    for name in ("NINETYTEN_MODEL", "NINETYTEN_POLICY"):
        env.pop(name, None)
    return env


def _integrity(db: Path) -> None:
    # A fresh connection: it has to recover the WAL the dead process left behind.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _writer(db: Path, tag: str, *extra: str, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger_writer", str(db), tag, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home),
        cwd=PROJECT_ROOT,
    )


def _committed(lines: list[str]) -> dict[str, int]:
    """request_id -> row id, for every row the writer said was committed."""
    found: dict[str, int] = {}
    for line in lines:
        first, _, second = line.partition(" ")
        if first.isdigit():
            found[second] = int(first)
    return found


def _rows_by_tag(db: Path, tag: str) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT request_id, id FROM attempts WHERE request_id LIKE ?", (f"{tag}-%",)))


# --- 1. kill -9 of a writer in the middle of its writes ----------------------------------------


def test_kill_9_mid_write_loses_at_most_the_in_flight_row(tmp_path: Path) -> None:
    db = tmp_path / LEDGER_FILENAME
    rng = random.Random(0x9010)
    kills = 0
    for round_ in range(3):
        # Two writers at once, so one dies while the other may be waiting for (or holding) the
        # lock; one of them goes through reservations (two statements per transaction).
        tags = [f"r{round_}a", f"r{round_}b"]
        procs = [_writer(db, tags[0], home=tmp_path), _writer(db, tags[1], "--reserve-every", "2", home=tmp_path)]
        outputs: list[list[str]] = []
        for proc in procs:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the writer is past start-up and inside its loop
            assert first and first.split()[0].isdigit(), proc.stderr.read() if proc.stderr else ""
            outputs.append([first.strip()])
        for proc in procs:
            time.sleep(rng.uniform(0.02, 0.4))
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        for proc, lines in zip(procs, outputs):
            assert proc.wait(30) == -signal.SIGKILL
            # Not communicate(): it reads the raw pipe and skips what readline() buffered.
            assert proc.stdout is not None and proc.stderr is not None
            lines += proc.stdout.read().splitlines()
            err = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
            assert not any(line.startswith(("spilled", "done")) for line in lines), err
            assert "locked" not in err and "Traceback" not in err, err
        _integrity(db)
        for tag, lines in zip(tags, outputs):
            reported = _committed(lines)
            stored = _rows_by_tag(db, tag)
            assert len(reported) > 1, f"{tag} was killed before it got going"
            # Every row reported as committed is there, under the id the writer was given.
            assert {rid: stored.get(rid) for rid in reported} == reported
            # Beyond those, only the one in flight may have made it: committed, not yet printed.
            extra = set(stored) - set(reported)
            assert len(extra) <= 1, extra
            if extra:
                assert extra == {f"{tag}-{len(reported) + 1}"}

    with Ledger(db) as ledger:
        before = ledger.rows()
        # A reservation is its own transaction before the row's, so each kill may strand at
        # most one; stranded ones go stale instead of holding budget forever.
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] <= kills
        row_id = ledger.record(
            LedgerRow(request_id="after-crashes", task="completion", tier="local", backend="llama_cpp", model="tiny")
        )
        assert row_id > max(row.id or 0 for row in before)
        assert ledger.spilled == 0
        assert [row.request_id for row in ledger.rows()][-1] == "after-crashes"
    _integrity(db)


# --- a real server ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _server(model: Path, home: Path, log_file: Path, root: Path | None = None) -> AsyncIterator[LanguageClient]:
    """`ninetyten serve` over stdio; unlike tests.lsp_session it may be killed inside the block."""
    command = [sys.executable, "-m", "lsp_server", "serve", "--model", str(model), "--log-file", str(log_file)]
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    client = await ClientServerConfig(server_command=command, server_env=_env(home)).start()
    served_notifications(client)
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=VSCODE_LIKE, initialization_options=OPTIONS, root_uri=root.as_uri() if root else None
            )
        )
        await asyncio.wait_for(_ready(client), 120)
        yield client
        if client._server is not None and client._server.returncode is None:
            await asyncio.wait_for(client.shutdown_session(), 30)
    finally:
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()
        await client.stop()


def _request_id(answer: types.InlineCompletionList | None) -> str | None:
    if not answer or not answer.items or answer.items[0].command is None:
        return None
    return answer.items[0].command.arguments[0]["requestId"]  # type: ignore[index]


async def _complete(client: LanguageClient, uri: str) -> str | None:
    return _request_id(await asyncio.wait_for(inline(client, uri, 5, 4), 60))


def _server_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for request_id, attempt, outcome in conn.execute(
            "SELECT request_id, attempt, outcome FROM attempts WHERE task = 'completion' ORDER BY id"
        ):
            rows.setdefault(request_id, []).append((attempt, outcome))
    return rows


def _log_problems(log_file: Path) -> list[str]:
    text = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
    return [
        line
        for line in text.splitlines()
        if "locked" in line or "not usable" in line or "rejected" in line or "Traceback" in line
    ]


# --- 2. kill -9 of the real server with requests in flight ---------------------------------------

# The server answers a completion once its row is journaled and queued (engine.LedgerSink
# stores it on a thread). Rows answered just before the kill may still be only in the journal;
# opening the ledger again stores them.
SETTLE_S = 0.3


async def test_server_killed_mid_requests_keeps_a_sound_ledger(tiny_model_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / LEDGER_FILENAME
    log_file = tmp_path / "server.log"
    answered: dict[str, float] = {}
    async with _server(tiny_model_path, home, log_file, root=tmp_path / "ws") as client:
        uri = open_document(client, tmp_path / "ws" / "m.py", SOURCE)
        assert await _complete(client, uri)  # the model is warm before the clock starts

        async def requests() -> None:
            # One after another, so there is always one in flight (a second stream would only
            # cancel this one's generations: a new request stops the running one).
            while True:
                request_id = await _complete(client, uri)
                if request_id:
                    answered[request_id] = time.monotonic()

        stream = asyncio.ensure_future(requests())
        deadline = time.monotonic() + 60
        while len(answered) < 4:  # the machine may be slow: count answers, not seconds
            assert time.monotonic() < deadline and not stream.done(), stream
            await asyncio.sleep(0.01)
        await asyncio.sleep(SETTLE_S + random.uniform(0.0, 0.5))
        assert client._server is not None
        os.kill(client._server.pid, signal.SIGKILL)
        await asyncio.wait([stream], timeout=10)
        # The server died under it: the stream ends with an error, not a hang.
        assert stream.done() and not stream.cancelled() and stream.exception() is not None
        await client._server.wait()
        assert client._server.returncode == -signal.SIGKILL

    _integrity(db)
    with Ledger(db) as ledger:
        stored = {row.request_id: row for row in ledger.rows()}
    rows = _server_rows(db)
    # Answers already on their way when the kill landed count too: their rows were journaled
    # before they were sent.
    assert len(answered) >= 4
    # Every answered request has its row, once, as a served attempt: stored by the server, or
    # recovered from its journal when the ledger was opened above.
    assert {rid: rows.get(rid) for rid in answered} == {rid: [(1, "ok")] for rid in answered}
    assert all(stored[rid].policy_hash for rid in answered)
    assert _log_problems(log_file) == []

    # The crashed server's ledger takes the next server's rows.
    async with _server(tiny_model_path, home, tmp_path / "server2.log", root=tmp_path / "ws") as client:
        uri = open_document(client, tmp_path / "ws" / "again.py", SOURCE)
        again = await _complete(client, uri)
        assert again
    _integrity(db)
    assert _server_rows(db)[again] == [(1, "ok")]


@pytest.mark.parametrize(
    "ending",
    [
        # `shutdown`, SIGTERM and EOF store the queued rows on the way out (waiting for the lock).
        "shutdown",
        "SIGTERM",
        "stdin EOF",
        # SIGKILL leaves them in the server's journal; the next process to open the ledger stores them.
        "SIGKILL",
    ],
)
async def test_answered_rows_survive_the_server_ending_while_another_writer_holds_the_lock(
    ending: str, tiny_model_path: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    db = home / LEDGER_FILENAME
    async with _server(tiny_model_path, home, tmp_path / "server.log", root=tmp_path / "ws") as client:
        server = client._server
        assert server is not None
        uri = open_document(client, tmp_path / "ws" / "m.py", SOURCE)
        first = await _complete(client, uri)
        deadline = time.monotonic() + 30
        while first not in _server_rows(db):  # the sink does write, given the chance
            assert time.monotonic() < deadline, "the first answer's row never arrived"
            await asyncio.sleep(0.02)
        # A hook or CLI process in the middle of its own write transaction, for well under
        # busy_timeout: nothing is "locked", the server's ledger thread only has to wait.
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            answered = [await _complete(client, uri) for _ in range(3)]
            assert all(answered)
            if ending == "SIGKILL":
                os.kill(server.pid, signal.SIGKILL)
                await server.wait()
            else:
                stopping = None
                if ending == "shutdown":
                    stopping = asyncio.ensure_future(client.shutdown_session())
                elif ending == "SIGTERM":
                    os.kill(server.pid, signal.SIGTERM)
                else:
                    assert server.stdin is not None
                    server.stdin.close()
                # A server that flushes on the way out is waiting for the lock now; let it have it.
                await asyncio.sleep(0.5)
                holder.execute("ROLLBACK")
                if stopping is not None:
                    await asyncio.wait_for(stopping, 30)
                await asyncio.wait_for(server.wait(), 30)
        finally:
            if holder.in_transaction:
                holder.execute("ROLLBACK")
            holder.close()
    _integrity(db)
    if ending == "SIGKILL":
        assert not any(rid in _server_rows(db) for rid in answered)  # the lock was held throughout
        Ledger(db).close()  # what any next ninetyten process does first
        assert not list((db.parent / "ledger-journal").glob("*.jsonl*"))
    rows = _server_rows(db)
    assert {rid: rid in rows for rid in answered} == {rid: True for rid in answered}
    assert all(rows[rid] == [(1, "ok")] for rid in answered)  # stored once, not twice


# --- 3. server + CLI + hooks, all writing and reading at once --------------------------------------

WRITERS = 3
WRITE_SECONDS = 2.5


async def test_concurrent_server_cli_and_hooks(tiny_model_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / LEDGER_FILENAME
    log_file = tmp_path / "server.log"
    answered: list[str] = []
    reports: list[subprocess.CompletedProcess[str]] = []
    async with _server(tiny_model_path, home, log_file, root=tmp_path / "ws") as client:
        uri = open_document(client, tmp_path / "ws" / "m.py", SOURCE)
        assert await _complete(client, uri)
        writers = [
            _writer(db, f"hook{n}", "--seconds", str(WRITE_SECONDS), "--reserve-every", str(3 + n), home=home)
            for n in range(WRITERS)
        ]
        # Read their output as it comes: a full pipe would stall a writer and end the contention.
        drains = [asyncio.ensure_future(asyncio.to_thread(proc.communicate, timeout=120)) for proc in writers]

        def writing() -> bool:
            return not all(drain.done() for drain in drains)

        async def completions() -> None:
            while writing() or len(answered) < 3:
                request_id = await _complete(client, uri)
                if request_id:
                    answered.append(request_id)

        async def cli() -> None:
            while writing() or len(reports) < 2:
                reports.append(
                    await asyncio.to_thread(
                        subprocess.run,
                        [sys.executable, "-m", "lsp_server", "report", "--json", "--since", "all"],
                        capture_output=True,
                        text=True,
                        env=_env(home),
                        cwd=PROJECT_ROOT,
                        timeout=60,
                    )
                )

        await asyncio.gather(completions(), cli())
        outputs = await asyncio.gather(*drains)

    # The hooks: every row each one says it wrote is in the ledger, none had to wait in memory.
    claimed = 0
    for n, (proc, (out, err)) in enumerate(zip(writers, outputs)):
        assert proc.returncode == 0, err
        lines = out.splitlines()
        assert lines[-1].startswith("done "), err
        committed, spilled = map(int, lines[-1].split()[1:])
        assert spilled == 0 and "locked" not in err, err
        reported = _committed(lines)
        assert len(reported) == committed > 0
        assert _rows_by_tag(db, f"hook{n}") == reported
        claimed += committed

    # The CLI: every report ran, and each saw at least as many attempts as the one before.
    assert len(reports) >= 2
    attempts = []
    for run in reports:
        assert run.returncode == 0 and "locked" not in run.stderr, run.stderr
        attempts.append(json.loads(run.stdout)["totals"]["attempts"])
    assert attempts == sorted(attempts), attempts

    # The server: every answered completion has its row (shut down cleanly, so the sink flushed).
    rows = _server_rows(db)
    assert len(answered) >= 3
    assert {rid: rows.get(rid) for rid in answered} == {rid: [(1, "ok")] for rid in answered}
    assert _log_problems(log_file) == []

    _integrity(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        total = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        duplicates = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM attempts GROUP BY request_id, attempt HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        held = conn.execute("SELECT COUNT(*) FROM reservations").fetchone()[0]
    print(f"hooks wrote {claimed} rows, the server {len(rows)} requests, the CLI ran {len(reports)} reports")
    assert duplicates == 0
    assert total == claimed + sum(len(r) for r in rows.values())
    assert held == 0  # every writer's reservations became rows
