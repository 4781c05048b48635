"""`ninetyten ledger sync`, `ledger status` and `doctor` as a script (and a person at a terminal) runs them."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from lsp_server.ledger import Ledger, LedgerRow
from tests.conftest_engine import engine_env
from tests.postgres_server import PostgresServer, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, url: str | None) -> dict[str, str]:
    env = {**{key: value for key, value in os.environ.items() if not key.startswith("NINETYTEN_")}, **engine_env()}
    env.update(NINETYTEN_HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), PYTHONPATH=str(PROJECT_ROOT))
    if url is not None:
        env["NINETYTEN_TEAM_LEDGER_URL"] = url
    return env


def _fill(home: Path, count: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    with Ledger(home / "ledger.sqlite3") as ledger:
        for n in range(count):
            ledger.record(
                LedgerRow(
                    request_id=f"r-{n}",
                    task="completion",
                    tier="local",
                    backend="llama_cpp",
                    model="gemma-3-270m",
                    prompt_tokens=n,
                )
            )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _in_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run with stdin/stdout/stderr on a pseudo-terminal; everything it drew."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "lsp_server", *args],
        env={**env, "COLUMNS": "100"},
        cwd=PROJECT_ROOT,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    seen = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(main)
    return process.wait(timeout=30), seen.decode("utf-8", "replace")


def test_sync_ships_everything_and_status_says_so(tmp_path: Path, team_db: str):
    home = tmp_path / "home"
    _fill(home, 250)
    env = _env(home, team_db)
    status = json.loads(_cli(env, "ledger", "status", "--json").stdout)
    assert status["queued_rows"] == 250 and status["rows_shipped"] == 0 and status["problem"] is None
    done = _cli(env, "ledger", "sync")
    assert done.returncode == 0 and "shipped 250 rows to postgresql" in done.stderr
    assert "\x1b[" not in done.stderr  # no bar when nobody watches
    status = json.loads(_cli(env, "ledger", "status", "--json").stdout)
    assert status["queued_rows"] == 0 and status["rows_shipped"] == 250 and status["schema"] == 1
    with psycopg.connect(team_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ninetyten.attempts").fetchone()[0] == 250
    again = _cli(env, "ledger", "sync")
    assert again.returncode == 0 and "shipped 0 rows" in again.stderr


def test_sync_draws_a_progress_bar_on_a_large_backlog(tmp_path: Path, team_db: str):
    home = tmp_path / "home"
    _fill(home, 12_000)
    code, screen = _in_a_terminal(_env(home, team_db), "ledger", "sync")
    assert code == 0, screen
    assert "shipping" in screen and "12000/12000" in screen.replace(",", "") and "rows" in screen
    assert "shipped 12,000 rows" in screen


def test_sync_without_configuration_and_when_unreachable(tmp_path: Path):
    home = tmp_path / "home"
    _fill(home, 3)
    unconfigured = _cli(_env(home, None), "ledger", "sync")
    assert unconfigured.returncode == 2 and "NINETYTEN_TEAM_LEDGER_URL" in unconfigured.stderr
    url = f"postgresql://dev:pw-not-shown@127.0.0.1:{free_port()}/team"
    down = _cli(_env(home, url), "ledger", "sync")
    assert down.returncode == 1 and "rows stay queued" in down.stderr
    assert "dev@127.0.0.1" in down.stderr and "pw-not-shown" not in down.stderr
    status = _cli(_env(home, url), "ledger", "status")
    assert status.returncode == 1 and "queued_rows      3" in status.stdout


def test_doctor_shows_the_team_ledger_never_its_password(
    tmp_path: Path, postgres: PostgresServer, endless_model_path: Path
):
    home = tmp_path / "home"
    _fill(home, 4)
    database = postgres.create_database()
    url = f"postgresql://postgres:{postgres.password}@127.0.0.1:{postgres.port}/{database}"
    env = {**_env(home, url), "NINETYTEN_MODEL": str(endless_model_path)}
    assert _cli(env, "ledger", "sync").returncode == 0
    doctor = _cli(env, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert (
        f"team ledger    postgresql postgres@127.0.0.1:{postgres.port}/{database} (from NINETYTEN_TEAM_LEDGER_URL)"
        in doctor.stdout
    )
    assert "schema         1: reachable" in doctor.stdout and "backlog        0 rows waiting" in doctor.stdout
    assert "shipped        4 rows from this machine; last arrived " in doctor.stdout
    assert "status         ok" in doctor.stdout
    down = _cli(
        {
            **env,
            "NINETYTEN_TEAM_LEDGER_URL": f"postgresql://postgres:{postgres.password}@127.0.0.1:"
            f"{free_port()}/{database}",
        },
        "doctor",
    )
    assert down.returncode == 1 and "  PROBLEM: cannot reach the team ledger" in down.stdout
    for result in (doctor, down):
        assert postgres.password not in result.stdout + result.stderr
