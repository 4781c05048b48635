"""The team ledger under fire: three developers' servers and hooks write at once while a
shipper is killed with SIGKILL mid-batch (inside its PostgreSQL transaction, and between
PostgreSQL's commit and the local bookkeeping), the network is cut and the database is
restarted. Afterwards the team ledger holds exactly the rows of the three local ledgers:
same count, same sums, same feedback, no duplicate.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest_engine import engine_env
from tests.postgres_server import PostgresServer, wait_until
from tests.tcp_proxy import TcpProxy, tcp_proxy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEVELOPERS = ("ana", "ben", "cho")
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def _env(home: Path, url: str, password: str) -> dict[str, str]:
    config = home / "config" / "ninetyten"
    config.mkdir(parents=True, exist_ok=True)
    project = "" if home.name == "cho" else f'project = "proj-{home.name}"\n'
    (config / "config.toml").write_text(f'[team_ledger]\nurl = "{url}"\n{project}batch_rows = 40\n')
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("NINETYTEN_", "PG"))},
        **engine_env(),
    }
    env.update(
        NINETYTEN_HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        PGPASSWORD=password,
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


def _server(env: dict[str, str], tag: str, seconds: float = 120) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.team_dev_server", tag, "--seconds", str(seconds), "--every-ms", "4"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"  # SIGTERM is handled now
    return server


def _hook(env: dict[str, str], tag: str) -> subprocess.Popen[str]:
    db = Path(env["NINETYTEN_HOME"]) / "ledger.sqlite3"
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger_writer", str(db), tag, "--rows", "25"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _team_count(url: str, ledger_id: str | None = None) -> int:
    with contextlib.suppress(psycopg.Error), psycopg.connect(url) as conn:
        if ledger_id is None:
            return int(conn.execute("SELECT COUNT(*) FROM ninetyten.attempts").fetchone()[0])
        return int(
            conn.execute("SELECT COUNT(*) FROM ninetyten.attempts WHERE ledger_id = %s", (ledger_id,)).fetchone()[0]
        )
    return 0


def _ledger_id(home: Path) -> str:
    with contextlib.closing(sqlite3.connect(home / "ledger.sqlite3")) as conn:
        return str(conn.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()[0])


def _shipper_waits_in_postgres(url: str, pid: int) -> bool:
    """That process's shipper is inside its transaction, waiting for a lock: mid-batch."""
    with psycopg.connect(url) as conn:
        return bool(
            conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                (f"ninetyten-shipper-{pid}",),
            ).fetchone()[0]
        )


def _local_facts(home: Path) -> tuple[int, int, int, set[tuple[object, ...]]]:
    with contextlib.closing(sqlite3.connect(home / "ledger.sqlite3")) as conn:
        count, prompt, frontier = conn.execute(
            "SELECT COUNT(*), SUM(prompt_tokens), SUM(frontier_cost_nusd) FROM attempts"
        ).fetchone()
        rows = {
            (
                f"{_ledger_id(home)}:{i}",
                r,
                a,
                bool(s) if s is not None else None,
                bool(acc) if acc is not None else None,
                repo,
            )
            for i, r, a, s, acc, repo in conn.execute(
                "SELECT id, request_id, attempt, shown, accepted, repo FROM attempts"
            )
        }
    return count, prompt, frontier, rows


def _team_facts(url: str, ledger_id: str) -> tuple[int, int, int, set[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        count, prompt, frontier = conn.execute(
            "SELECT COUNT(*), SUM(prompt_tokens), SUM(frontier_cost_nusd) FROM ninetyten.attempts WHERE ledger_id = %s",
            (ledger_id,),
        ).fetchone()
        rows = set(
            conn.execute(
                "SELECT uid, request_id, attempt, shown, accepted, repo FROM ninetyten.attempts WHERE ledger_id = %s",
                (ledger_id,),
            ).fetchall()
        )
    return int(count), int(prompt or 0), int(frontier or 0), rows


def test_three_developers_kill_cut_restart_exact_totals(tmp_path: Path, postgres: PostgresServer):
    name = postgres.create_database()
    direct = postgres.socket_url(name)
    with tcp_proxy(postgres.port) as proxy:
        url = postgres.tcp_url(name, port=proxy.port)
        homes = {tag: tmp_path / tag for tag in DEVELOPERS}
        envs = {tag: _env(home, url, postgres.password) for tag, home in homes.items()}
        servers = {tag: _server(env, tag) for tag, env in envs.items()}
        hooks: list[subprocess.Popen[str]] = []
        killed: list[str] = []
        try:
            assert wait_until(lambda: _team_count(direct) > 300, timeout=90)
            for round_ in range(2):
                hooks += [_hook(envs[tag], f"hook{round_}{tag}") for tag in DEVELOPERS]

            # 1. SIGKILL inside a PostgreSQL transaction: the table is locked, ana's batch waits in it.
            with psycopg.connect(direct) as locker:
                locker.execute("LOCK TABLE ninetyten.attempts IN EXCLUSIVE MODE")
                assert wait_until(lambda: _shipper_waits_in_postgres(direct, servers["ana"].pid), timeout=60)
                servers["ana"].send_signal(signal.SIGKILL)
                servers["ana"].wait(timeout=30)
                killed.append("ana")
                locker.rollback()
            servers["ana"] = _server(envs["ana"], "ana2")  # the developer starts the editor again

            # 2. SIGKILL after PostgreSQL committed ben's batch but before his ledger forgot it: his
            # shipper waits in PostgreSQL while his ledger's write lock is taken, then commits there
            # and waits for the lock to forget the batch.
            ben_id = _ledger_id(homes["ben"])
            with (
                psycopg.connect(direct) as locker,
                contextlib.closing(
                    sqlite3.connect(homes["ben"] / "ledger.sqlite3", timeout=30, isolation_level=None)
                ) as holder,
            ):
                locker.execute("LOCK TABLE ninetyten.attempts IN EXCLUSIVE MODE")
                assert wait_until(lambda: _shipper_waits_in_postgres(direct, servers["ben"].pid), timeout=60)
                holder.execute("BEGIN IMMEDIATE")
                before = _team_count(direct, ben_id)
                locker.rollback()
                assert wait_until(lambda: _team_count(direct, ben_id) > before, timeout=60)
                servers["ben"].send_signal(signal.SIGKILL)
                servers["ben"].wait(timeout=30)
                killed.append("ben")
                holder.execute("ROLLBACK")
                queued = {i for (i,) in holder.execute("SELECT row_id FROM ship_queue")}
            with psycopg.connect(direct) as conn:
                in_team = {
                    i for (i,) in conn.execute("SELECT row_id FROM ninetyten.attempts WHERE ledger_id = %s", (ben_id,))
                }
            assert queued & in_team  # shipped and still queued: the next batch must not duplicate them
            servers["ben"] = _server(envs["ben"], "ben2")

            # 3. The network goes away for a while, then the database restarts.
            proxy.cut()
            time.sleep(3)
            proxy.restore()
            hooks += [_hook(envs[tag], f"hook2{tag}") for tag in DEVELOPERS]
            postgres.restart("fast")
            hooks += [_hook(envs[tag], f"hook3{tag}") for tag in DEVELOPERS]
            time.sleep(3)
        finally:
            for server in servers.values():
                if server.poll() is None:
                    server.send_signal(signal.SIGTERM)
            outputs = {tag: server.communicate(timeout=120) for tag, server in servers.items()}
            for hook in hooks:
                hook.communicate(timeout=120)
        for tag, (out, err) in outputs.items():
            assert servers[tag].returncode == 0, err
            assert out.strip().splitlines()[-1].startswith("done")
        assert all(hook.returncode == 0 for hook in hooks)
        assert killed == ["ana", "ben"] and proxy.connections > 3

        # `ninetyten ledger sync`: the journals of the killed processes are replayed, the rest ships.
        for env in envs.values():
            done = subprocess.run(
                [sys.executable, "-m", "lsp_server", "ledger", "sync"],
                env=env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
            assert "shipped" in done.stderr

    total = 0
    for home in homes.values():
        count, prompt, frontier, rows = _local_facts(home)
        assert count > 500
        assert _team_facts(direct, _ledger_id(home)) == (count, prompt, frontier, rows)
        total += count
        with contextlib.closing(sqlite3.connect(home / "ledger.sqlite3")) as conn:
            assert conn.execute("SELECT COUNT(*) FROM ship_queue").fetchone()[0] == 0
            assert conn.execute("SELECT COUNT(*) FROM attempts WHERE request_id LIKE 'hook%'").fetchone()[0] == 100
    with psycopg.connect(direct) as conn:
        count, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT uid) FROM ninetyten.attempts").fetchone()
        (duplicates,) = conn.execute(
            "SELECT COUNT(*) FROM (SELECT ledger_id, request_id, attempt FROM "
            "ninetyten.attempts GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d"
        ).fetchone()
        repos = dict(conn.execute("SELECT ledger_id, MIN(repo) FROM ninetyten.attempts GROUP BY 1").fetchall())
    assert count == distinct == total and duplicates == 0
    assert repos[_ledger_id(homes["ana"])] == "proj-ana" and repos[_ledger_id(homes["cho"])] is None


def test_proxy_cut_drops_connections(postgres: PostgresServer):
    with tcp_proxy(postgres.port) as proxy:
        assert isinstance(proxy, TcpProxy)
        env_password = {"password": postgres.password}
        with psycopg.connect(postgres.tcp_url(port=proxy.port), **env_password) as conn:
            conn.execute("SELECT 1")
            proxy.cut()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        proxy.restore()
        with psycopg.connect(postgres.tcp_url(port=proxy.port), **env_password) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
