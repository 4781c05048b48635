"""The ledger and the report, on real SQLite files: content guards, concurrency, budgets, crashes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from rich.console import Console

from lsp_server.cli.ledger import run_report
from lsp_server.ledger import (
    SCHEMA_VERSION,
    Ledger,
    LedgerError,
    LedgerRow,
    Price,
    Reservation,
    migrate,
    safe_reason,
    utc_midnight,
)
from lsp_server.ledger.local_report import build_report
from lsp_server.ledger.report import parse_since, report_json
from lsp_server.ledger.terminal import render_report

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPAWN = multiprocessing.get_context("spawn")
# Planted in rejected rows; must never reach the database file.
CANARY = "CANARYq7Zt3Xw9Lk"


def make_row(**fields: object) -> LedgerRow:
    base: dict[str, object] = {
        "request_id": "r1",
        "task": "completion",
        "tier": "local",
        "backend": "llama_cpp",
        "model": "gemma-3-270m",
    }
    base.update(fields)
    return LedgerRow(**base)  # type: ignore[arg-type]


def db_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


# --- rows and prices ----------------------------------------------------------------------------


def test_price_cost():
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    assert price.cost(1_000_000, 0) == pytest.approx(3.0)
    assert price.cost(2000, 500) == pytest.approx(0.006 + 0.0075)
    assert Price().cost(10**9, 10**9) == 0.0
    assert Price(output_per_mtok=0.1).paid and not Price().paid
    with pytest.raises(ValidationError):
        Price(input_per_mtok=-1)


def test_rows_round_trip(db: Path):
    written = [
        make_row(
            request_id="req-1",
            attempt=1,
            prompt_tokens=812,
            completion_tokens=17,
            cached_tokens=800,
            latency_ms=41.5,
            cost_usd=0.0,
            frontier_cost_usd=0.002691,
            outcome="escalated",
            escalated=True,
            escalation_reason="verify_failed:syntax",
            policy_hash="sha256:0123abcdef",
            reasons=["rule 2: task=completion -> local", "low_confidence"],
            ts=datetime(2026, 11, 3, 12, 0, 0, 123456, tzinfo=timezone.utc),
        ),
        make_row(
            request_id="req-1",
            attempt=2,
            tier="frontier",
            backend="anthropic",
            model="claude-sonnet-4-5-20250929",
            prompt_tokens=900,
            completion_tokens=20,
            cost_usd=0.0030123456789,
            frontier_cost_usd=0.0030123456789,
            error_kind=None,
            shown=True,
            accepted=False,
        ),
        make_row(
            request_id="req-2",
            task="explain",
            tier="in_house",
            backend="openai",
            model="Qwen/Qwen2.5-Coder-7B",
            outcome="failed",
            error_kind="provider_error:rate_limited",
            latency_ms=5000,
        ),
    ]
    with Ledger(db) as ledger:
        ids = [ledger.record(row) for row in written]
        assert ids == sorted(ids) and all(i > 0 for i in ids)
        read = ledger.rows()
    assert [r.model_dump(exclude={"id"}) for r in read] == [r.model_dump(exclude={"id"}) for r in written]
    assert [r.id for r in read] == ids
    assert read[0].ts.tzinfo is not None and read[0].ts == datetime(2026, 11, 3, 12, 0, 0, 123456, tzinfo=timezone.utc)
    # Costs are kept to the nano-dollar, and read back exactly as the model holds them.
    assert read[1].cost_usd == 0.003012346


def test_naive_datetimes_are_utc():
    row = make_row(ts=datetime(2026, 1, 2, 3, 4, 5))
    assert row.ts == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_schema_and_wal(db: Path):
    Ledger(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"attempts", "reservations"} <= tables


def test_migrate_from_empty_database(db: Path):
    conn = sqlite3.connect(db, isolation_level=None)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert migrate(conn) == SCHEMA_VERSION
    assert migrate(conn) == SCHEMA_VERSION  # idempotent
    conn.close()
    with Ledger(db) as ledger:
        assert ledger.record(make_row()) > 0


def test_newer_schema_is_not_touched(db: Path, caplog: pytest.LogCaptureFixture):
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    ledger = Ledger(db)
    assert ledger.record(make_row()) == 0  # kept in memory, not written into a schema we don't know
    with pytest.raises(LedgerError, match="newer"):
        ledger.rows()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 99


def test_default_path_is_in_ninetyten_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NINETYTEN_HOME", str(tmp_path / "home"))
    with Ledger() as ledger:
        assert ledger.path == tmp_path / "home" / "ledger.sqlite3"
        assert ledger.record(make_row()) > 0
    assert ledger.path.is_file()


# --- content can't get in -----------------------------------------------------------------------

FAKE_KEY = "sk-ant-api03-" + "Xy7Qp2Lm9Rt4Vb8Nc3Kd6Wf1Gh5Js0"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reasons", ["routing decided " + "x" * 300]),  # long free text
        ("task", "completion " * 30),
        ("model", "m" * 201),
        ("reasons", ["line one\nline two"]),  # newline
        ("error_kind", "provider_error\n"),
        ("task", "explain\r"),
        ("reasons", [f"auth failed with {FAKE_KEY}"]),  # a secret
        ("model", FAKE_KEY),
        ("error_kind", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4"),
        ("escalation_reason", "AKIA" + "IOSFODNN7EXAMPLE"),
        ("reasons", ["token " + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]),
        ("reasons", ["mailto alice.smith@example.com"]),  # personal data
        ("reasons", ["card 4111111111111111"]),
        ("reasons", ["print('hello')"]),  # code punctuation
        ("reasons", ["{\"prompt\": 1}"]),
        ("reasons", ["x"] * 33),
        ("reasons", ["read /home/alice/project/secret.py"]),  # a path
        ("reasons", ["src/billing/invoice.py"]),
        ("reasons", ["~/notes"]),
        ("model", "/home/alice/models/qwen.gguf"),
        ("model", "models/../../etc/passwd"),
        ("model", "C:/Users/alice/qwen.gguf"),
        ("request_id", "has space"),
        ("request_id", FAKE_KEY),
        ("policy_hash", "not-a-hash"),
        ("outcome", ""),
        ("tier", "lo cal"),
        ("prompt", "def secret(): pass"),  # no such field
        ("completion_text", "x"),
    ],
)
def test_content_is_rejected(field: str, value: object):
    with pytest.raises(ValidationError):
        make_row(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "claude-3-5-sonnet@20240620"),
        ("model", "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"),
        ("model", "hf:Qwen/Qwen2.5-Coder-1.5B"),
        ("request_id", "0f8fad5bd9cb469fa16570867728950e"),  # uuid hex is a fine request id
        ("escalation_reason", "provider_error:rate_limited"),
        ("reasons", ["rule 3 (budget): frontier spend 4.80/5.00 USD -> local", "sensitivity=secret#aws"]),
        ("reasons", ["-> frontier", "a / b", "and/or", "tokens 9000/8192"]),
        ("policy_hash", "sha256:" + "ab" * 32),
    ],
)
def test_codes_are_accepted(field: str, value: object):
    assert getattr(make_row(**{field: value}), field) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rule fast-local routes completion to local", "rule fast-local routes completion to local"),
        ("-> frontier (escalation)", "-> frontier (escalation)"),
        ("sensitive content: \"aws\" {x1}\n", "sensitive content: aws x1"),
        (f"auth with {FAKE_KEY} failed", "auth with redacted failed"),
        ("mail alice.smith@example.com", "mail redacted"),
        ("café → frontier", "caf frontier"),
        ("", "unspecified"),
        ("x" * 300, "x" * 200),
        ("sensitive path rule matched /home/alice/.ssh/config", "sensitive path rule matched path"),
    ],
)
def test_safe_reason(text: str, expected: str):
    assert safe_reason(text) == expected
    assert make_row(reasons=[safe_reason(text)]).reasons == [expected]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_safe_reason_always_validates(text: str):
    make_row(reasons=[safe_reason(text)])


def test_content_cannot_bypass_validation(db: Path):
    row = make_row()
    with pytest.raises(ValidationError):
        row.reasons = [f"{CANARY}\nsecret"]  # assignment is validated
    forged = LedgerRow.model_construct(**{**make_row().model_dump(), "model": f"{CANARY} def f():\n  pass"})
    with Ledger(db) as ledger, pytest.raises(ValidationError):
        ledger.record(forged)  # record() validates again
    assert count_rows(db) == 0


def test_planted_content_never_reaches_the_file(db: Path):
    planted = [
        f"def leak():\n    return '{CANARY}'",
        f"sk-ant-api03-{CANARY}abcdefgh",
        f"{CANARY} " * 40,
        f"/home/dev/{CANARY}/src/main.py",
    ]
    fields = (
        "request_id",
        "task",
        "tier",
        "backend",
        "model",
        "outcome",
        "escalation_reason",
        "error_kind",
        "policy_hash",
    )
    ledger = Ledger(db)
    rejected = 0
    for i in range(400):
        text = planted[i % len(planted)]
        field = fields[i % len(fields)]
        for attempt in ({field: text}, {"reasons": ["ok", text]}, {"prompt": text}):
            try:
                ledger.record(make_row(**{"request_id": f"req-{i}", **attempt}))
            except ValidationError:
                rejected += 1
        ledger.record(make_row(request_id=f"req-{i}", prompt_tokens=i, reasons=["rule 1", "low_confidence"]))
    assert rejected == 1200
    assert count_rows(db) == 400
    assert CANARY.encode() not in db_bytes(db)  # WAL still holds the pages
    ledger.close()
    assert CANARY.encode() not in db_bytes(db)  # and after the checkpoint


# --- concurrency --------------------------------------------------------------------------------


def _write_rows(path: str, tag: str, count: int, go: object) -> tuple[int, int]:
    """Process/thread worker: (rows written, rows that had to be kept in memory)."""
    go.wait(60)  # type: ignore[attr-defined]
    ledger = Ledger(Path(path))
    written = spilled = 0
    for i in range(count):
        row_id = ledger.record(make_row(request_id=f"{tag}-{i}", prompt_tokens=i, cost_usd=0.000001))
        written += row_id > 0
        spilled += row_id == 0
    ledger.close()
    return written, spilled


def _write_rows_process(path: str, tag: str, count: int, go: object, results: object) -> None:
    results.put(_write_rows(path, tag, count, go))  # type: ignore[attr-defined]


def test_concurrent_writers_processes_and_threads(db: Path, caplog: pytest.LogCaptureFixture):
    # Everyone starts at once on a file that doesn't exist yet: creation and migration race too.
    go = SPAWN.Event()
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=_write_rows_process, args=(str(db), f"p{n}", 200, go, results)) for n in range(4)]
    for p in processes:
        p.start()
    threads_go = threading.Event()
    shared: list[Ledger] = []  # the four threads share one Ledger (one connection behind a lock)
    thread_results: list[tuple[int, int]] = []

    def thread_worker(tag: str) -> None:
        threads_go.wait(60)
        written = spilled = 0
        for i in range(200):
            row_id = shared[0].record(make_row(request_id=f"{tag}-{i}", cost_usd=0.000001))
            written += row_id > 0
            spilled += row_id == 0
        thread_results.append((written, spilled))

    threads = [threading.Thread(target=thread_worker, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let the spawned interpreters import and reach the start line
    with caplog.at_level(logging.WARNING, logger="lsp_server.ledger"):
        go.set()
        shared.append(Ledger(db))  # races the processes to create the file
        threads_go.set()
        process_results = [results.get(timeout=120) for _ in processes]
        for t in threads:
            t.join(120)
    for p in processes:
        p.join(30)
        assert p.exitcode == 0
    shared[0].close()
    assert sorted(process_results) == [(200, 0)] * 4
    assert sorted(thread_results) == [(200, 0)] * 4
    assert not [r for r in caplog.records if "not usable" in r.getMessage()]
    assert count_rows(db) == 1600
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT request_id) FROM attempts").fetchone()[0] == 1600
    with Ledger(db) as ledger:
        assert ledger.spend_usd(datetime(2000, 1, 1)) == pytest.approx(0.0016)


# --- budget reservations ------------------------------------------------------------------------

CAP = 5.00
AMOUNT = 0.30


def _try_reserve(path: str, go: object, worker: int) -> bool:
    ledger = Ledger(Path(path))
    go.wait(60)  # type: ignore[attr-defined]
    reservation = ledger.reserve(AMOUNT, CAP, since=utc_midnight())
    if reservation is None:
        return False
    time.sleep(random.uniform(0, 0.02))
    if worker % 2 == 0:  # half turn into real spend, half stay held
        assert (
            reservation.commit(
                make_row(
                    request_id=f"budget-{worker}",
                    tier="frontier",
                    backend="anthropic",
                    model="claude-sonnet-4-5",
                    cost_usd=AMOUNT,
                    frontier_cost_usd=AMOUNT,
                )
            )
            > 0
        )
    return True


def _try_reserve_process(path: str, go: object, worker: int, results: object) -> None:
    results.put(_try_reserve(path, go, worker))  # type: ignore[attr-defined]


def _committed_plus_held_nusd(path: Path) -> int:
    # One statement = one consistent snapshot, so a commit moving money from "held" to "spent"
    # can't be counted twice.
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT (SELECT COALESCE(SUM(cost_nusd), 0) FROM attempts) + "
            "(SELECT COALESCE(SUM(amount_nusd), 0) FROM reservations)"
        ).fetchone()[0]


def test_concurrent_reservations_never_overshoot_the_cap(db: Path):
    Ledger(db).close()
    go = SPAWN.Event()
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=_try_reserve_process, args=(str(db), go, 100 + n, results)) for n in range(2)]
    for p in processes:
        p.start()
    outcomes: list[bool] = []
    threads = [threading.Thread(target=lambda n=n: outcomes.append(_try_reserve(str(db), go, n))) for n in range(20)]
    for t in threads:
        t.start()
    samples: list[int] = []
    stop = threading.Event()

    def monitor() -> None:
        while not stop.is_set():
            samples.append(_committed_plus_held_nusd(db))
            time.sleep(0.001)

    watcher = threading.Thread(target=monitor)
    watcher.start()
    time.sleep(1.0)
    go.set()
    outcomes += [results.get(timeout=120) for _ in processes]
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join()
    for p in processes:
        p.join(30)
        assert p.exitcode == 0
    assert len(outcomes) == 22
    assert outcomes.count(True) == 16  # 16 x 0.30 = 4.80 fits; a 17th would make 5.10
    assert max(samples) <= CAP * 1e9
    assert _committed_plus_held_nusd(db) == 4_800_000_000
    with Ledger(db) as ledger:
        assert ledger.spend_usd(utc_midnight()) + ledger.reserved_usd() == pytest.approx(4.80)
        assert ledger.reserve(AMOUNT, CAP, since=utc_midnight()) is None


def test_released_reservations_free_budget(db: Path):
    with Ledger(db) as ledger:
        since = utc_midnight()
        held: list[Reservation] = []
        for _ in range(3):
            reservation = ledger.reserve(1.0, 3.0, since=since)
            assert reservation is not None
            held.append(reservation)
        assert ledger.reserve(1.0, 3.0, since=since) is None
        assert ledger.reserved_usd() == pytest.approx(3.0)
        held[0].release()
        held[0].release()  # idempotent
        again = ledger.reserve(1.0, 3.0, since=since)
        assert again is not None
        with again:
            pass  # leaving the block releases it
        assert ledger.reserved_usd() == pytest.approx(2.0)
        # Committing turns the hold into spend: the total stays the same.
        assert held[1].commit(make_row(tier="frontier", cost_usd=0.75)) > 0
        with pytest.raises(RuntimeError):
            held[1].commit(make_row(tier="frontier", cost_usd=0.75))
        assert ledger.reserved_usd() == pytest.approx(1.0)
        assert ledger.spend_usd(since) == pytest.approx(0.75)
        assert ledger.reserve(1.25, 3.0, since=since) is not None
        assert ledger.reserve(0.01, 3.0, since=since) is None
        # Spend before `since` or outside `tiers` doesn't count against the cap.
        assert ledger.reserve(0.01, 3.0, since=since, tiers=["in_house"]) is not None
        with pytest.raises(ValueError):
            ledger.reserve(-1.0, 3.0, since=since)


def test_stale_reservations_are_ignored_and_cleaned(db: Path):
    with Ledger(db) as ledger:
        since = utc_midnight()
        assert ledger.reserve(5.0, 5.0, since=since) is not None
        assert ledger.reserve(0.3, 5.0, since=since) is None
        with sqlite3.connect(db) as conn:  # as if its process had crashed an hour ago
            conn.execute("UPDATE reservations SET created = created - 3600")
        assert ledger.reserved_usd() == 0.0
        assert ledger.reserve(0.3, 5.0, since=since) is not None
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] == 1


def test_spend_by_period_and_tier(db: Path):
    now = datetime.now(timezone.utc)
    with Ledger(db) as ledger:
        ledger.record(make_row(tier="frontier", cost_usd=1.25, ts=now - timedelta(days=3)))
        ledger.record(make_row(tier="frontier", cost_usd=0.50, ts=now))
        ledger.record(make_row(tier="in_house", cost_usd=0.10, ts=now))
        assert ledger.spend_usd(now - timedelta(days=7)) == pytest.approx(1.85)
        assert ledger.spend_usd(now - timedelta(hours=1)) == pytest.approx(0.60)
        assert ledger.spend_usd(now - timedelta(days=7), tiers=["frontier"]) == pytest.approx(1.75)
        assert ledger.spend_usd(now - timedelta(days=7), tiers=[]) == 0.0
        assert ledger.spend_today_usd() == pytest.approx(0.60)
        assert ledger.spend_today_usd(tiers={"in_house"}) == pytest.approx(0.10)


def test_utc_midnight():
    assert utc_midnight(datetime(2026, 3, 29, 23, 59, tzinfo=timezone(timedelta(hours=-5)))) == datetime(
        2026, 3, 30, tzinfo=timezone.utc
    )


def test_feedback_marks_the_last_attempt(db: Path):
    with Ledger(db) as ledger:
        ledger.record(make_row(request_id="q", attempt=1, outcome="escalated", escalated=True))
        ledger.record(make_row(request_id="q", attempt=2, tier="frontier"))
        ledger.mark_feedback("q", shown=True)
        ledger.mark_feedback("q", accepted=False)
        ledger.record(make_row(request_id="w"))
        ledger.mark_feedback("w", accepted=True)  # implies shown
        ledger.mark_feedback("missing", shown=True)  # no row: nothing happens
        rows = {(r.request_id, r.attempt): r for r in ledger.rows()}
    assert (rows["q", 1].shown, rows["q", 1].accepted) == (None, None)
    assert (rows["q", 2].shown, rows["q", 2].accepted) == (True, False)
    assert (rows["w", 1].shown, rows["w", 1].accepted) == (True, True)
    with pytest.raises(ValidationError):
        Ledger(db).mark_feedback("not an id\n", shown=True)


# --- crashes and unusable databases -------------------------------------------------------------

CRASH_CHILD = """
import sys
from pathlib import Path
from lsp_server.ledger import Ledger, LedgerRow
ledger = Ledger(Path(sys.argv[1]))
i = int(sys.argv[2])
while True:
    i += 1
    row = LedgerRow(request_id=f"k{i}", task="completion", tier="local", backend="llama_cpp", model="tiny",
                    prompt_tokens=i, reasons=["crash_test"])
    if ledger.record(row) <= 0:
        sys.exit(3)
    sys.stdout.write(f"{i}\\n")
    sys.stdout.flush()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_write_leaves_a_sound_database(db: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    reported = 0
    for round_ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_CHILD, str(db), str(reported)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        target = reported + 150 + 50 * round_
        for line in child.stdout:
            reported = int(line)
            if reported >= target:
                break
        else:
            pytest.fail(f"child stopped early: {child.stderr.read() if child.stderr else ''}")
        time.sleep(random.uniform(0, 0.01))  # let it get into the middle of the next writes
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        assert child.returncode == -signal.SIGKILL
        for line in child.stdout:  # rows it reported before it died
            reported = int(line)
        child.stdout.close()
        child.stderr.close()  # type: ignore[union-attr]
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            count = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        assert reported <= count <= reported + 1  # at most one committed but not yet reported
        reported = count
    with Ledger(db) as ledger:
        assert ledger.record(make_row(request_id="after")) == reported + 1
        assert len(ledger.rows()) == reported + 1


def test_directory_in_the_way_spills_then_flushes(db: Path, caplog: pytest.LogCaptureFixture):
    db.mkdir()  # the DB path can't be opened as a file (works as root too, unlike chmod)
    with caplog.at_level(logging.WARNING, logger="lsp_server.ledger"):
        ledger = Ledger(db)
        assert ledger.record(make_row(request_id="a", cost_usd=0.5, tier="frontier")) == 0
        assert ledger.record(make_row(request_id="b")) == 0
        ledger.mark_feedback("a", accepted=True)
        assert ledger.reserve(0.1, 10.0, since=utc_midnight()) is None  # an unknown budget counts as spent
        assert ledger.spilled == 2
        with pytest.raises(LedgerError):
            ledger.rows()
    assert len([r for r in caplog.records if "not usable" in r.getMessage()]) == 1  # logged once
    db.rmdir()
    row_id = ledger.record(make_row(request_id="c"))
    assert row_id == 3 and ledger.spilled == 0
    rows = ledger.rows()
    assert [r.request_id for r in rows] == ["a", "b", "c"]
    assert (rows[0].shown, rows[0].accepted) == (True, True)
    assert ledger.spend_today_usd() == pytest.approx(0.5)
    ledger.close()


def test_corrupt_file_spills_then_flushes(db: Path):
    db.write_bytes(b"this is not an SQLite database, just garbage on the disk\n" * 200)
    ledger = Ledger(db)
    for i in range(5):
        assert ledger.record(make_row(request_id=f"r{i}")) == 0
    ledger.mark_feedback("r4", shown=True)
    assert ledger.spilled == 5
    with pytest.raises(LedgerError, match="not a database"):
        ledger.spend_usd(utc_midnight())
    db.rename(db.with_suffix(".corrupt"))  # what the log message tells the user to do
    assert ledger.flush()
    assert ledger.spilled == 0
    rows = ledger.rows()
    assert [r.request_id for r in rows] == [f"r{i}" for i in range(5)]
    assert rows[-1].shown is True
    ledger.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_writer_waits_for_a_lock_released_within_busy_timeout(db: Path):
    Ledger(db).close()
    blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    ledger = Ledger(db, busy_timeout_s=60)
    recorded: list[int] = []
    writer = threading.Thread(target=lambda: recorded.append(ledger.record(make_row(request_id="waited"))))
    writer.start()
    time.sleep(0.3)  # the writer meets the lock (were it to start later, it would simply not wait)
    blocker.execute("ROLLBACK")
    blocker.close()
    writer.join(60)
    assert recorded and recorded[0] > 0  # written to the file, not spilled: it waited for the lock
    assert [r.request_id for r in ledger.rows()] == ["waited"]
    ledger.close()


def test_locked_longer_than_busy_timeout_spills(db: Path):
    Ledger(db).close()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    ledger = Ledger(db, busy_timeout_s=0.2)
    assert ledger.record(make_row(request_id="late")) == 0
    blocker.execute("ROLLBACK")
    blocker.close()
    assert ledger.record(make_row(request_id="later")) > 0
    assert [r.request_id for r in ledger.rows()] == ["late", "later"]
    ledger.close()


# --- report -------------------------------------------------------------------------------------


def _sample_rows() -> list[LedgerRow]:
    ts = datetime.now(timezone.utc) - timedelta(minutes=5)
    return [
        make_row(
            request_id="a",
            prompt_tokens=100,
            completion_tokens=20,
            frontier_cost_usd=0.0006,
            latency_ms=50,
            shown=True,
            accepted=True,
            ts=ts,
        ),
        make_row(
            request_id="b",
            prompt_tokens=200,
            completion_tokens=10,
            frontier_cost_usd=0.0008,
            latency_ms=80,
            outcome="escalated",
            escalated=True,
            escalation_reason="low_confidence",
            ts=ts,
        ),
        make_row(
            request_id="b",
            attempt=2,
            tier="frontier",
            backend="anthropic",
            model="claude-sonnet-4-5",
            prompt_tokens=200,
            completion_tokens=30,
            cost_usd=0.00105,
            frontier_cost_usd=0.00105,
            latency_ms=700,
            shown=True,
            accepted=False,
            ts=ts,
        ),
        make_row(
            request_id="c",
            task="explain",
            prompt_tokens=1000,
            completion_tokens=200,
            frontier_cost_usd=0.006,
            latency_ms=400,
            ts=ts,
        ),
        make_row(
            request_id="d",
            task="refactor",
            tier="frontier",
            backend="anthropic",
            model="claude-sonnet-4-5",
            prompt_tokens=3000,
            completion_tokens=500,
            cost_usd=0.0165,
            frontier_cost_usd=0.0165,
            latency_ms=3000,
            ts=ts,
        ),
        make_row(
            request_id="e",
            task="explain",
            tier="in_house",
            backend="openai",
            model="qwen2.5-coder-7b",
            prompt_tokens=800,
            completion_tokens=100,
            cost_usd=0.0002,
            frontier_cost_usd=0.0045,
            latency_ms=1000,
            outcome="failed",
            error_kind="provider_error:timeout",
            ts=ts,
        ),
    ]


@pytest.fixture
def sample_db(db: Path) -> Path:
    with Ledger(db) as ledger:
        for row in _sample_rows():
            ledger.record(row)
    return db


def test_report_totals_and_groups(sample_db: Path):
    with Ledger(sample_db) as ledger:
        report = build_report(ledger, None)
    t = report.totals
    assert (t.requests, t.attempts, t.prompt_tokens, t.completion_tokens) == (5, 6, 5300, 860)
    assert t.cost_usd == pytest.approx(0.01775, abs=1e-12)
    assert t.frontier_cost_usd == pytest.approx(0.02945, abs=1e-12)
    assert t.savings_usd == pytest.approx(0.0117, abs=1e-12)
    assert t.savings_pct == pytest.approx(100 * 0.0117 / 0.02945)
    assert (t.escalations, t.escalation_rate, t.failures) == (1, 0.2, 1)
    assert (t.shown, t.accepted, t.acceptance_rate) == (2, 1, 0.5)
    assert (t.latency_p50_ms, t.latency_p95_ms) == (780, 3000)  # per request: 50, 400, 780, 1000, 3000

    by_task = {g.key: g for g in report.by_task}
    assert [g.key for g in report.by_task] == ["completion", "explain", "refactor"]
    completion = by_task["completion"]
    assert (completion.requests, completion.attempts) == (2, 3)
    assert (completion.escalations, completion.escalation_rate) == (1, 0.5)
    assert completion.cost_usd == pytest.approx(0.00105) and completion.frontier_cost_usd == pytest.approx(0.00245)
    assert (completion.latency_p50_ms, completion.latency_p95_ms, completion.acceptance_rate) == (50, 780, 0.5)
    assert (by_task["explain"].requests, by_task["explain"].failures) == (2, 1)
    assert by_task["explain"].savings_usd == pytest.approx(0.0103)

    assert [g.key for g in report.by_tier] == ["local", "in_house", "frontier"]
    by_tier = {g.key: g for g in report.by_tier}
    local = by_tier["local"]
    assert (local.requests, local.cost_usd, local.savings_pct) == (3, 0.0, 100.0)
    assert local.frontier_cost_usd == pytest.approx(0.0074)
    assert local.escalation_rate == pytest.approx(1 / 3)
    frontier = by_tier["frontier"]
    assert (frontier.requests, frontier.savings_usd, frontier.savings_pct) == (2, 0.0, 0.0)
    # A request that escalated is counted in each tier it touched, but once in the totals.
    assert sum(g.requests for g in report.by_tier) == 6
    assert sum(g.requests for g in report.by_task) == t.requests


def test_report_since_filters(db: Path):
    now = datetime.now(timezone.utc)
    with Ledger(db) as ledger:
        ledger.record(make_row(request_id="old", cost_usd=1.0, ts=now - timedelta(days=40)))
        ledger.record(make_row(request_id="new", cost_usd=2.0, ts=now - timedelta(days=1)))
        assert build_report(ledger, now - timedelta(days=7)).totals.cost_usd == 2.0
        assert build_report(ledger, None).totals.cost_usd == 3.0
        empty = build_report(ledger, now + timedelta(days=1)).totals
    assert (empty.requests, empty.savings_pct, empty.latency_p50_ms, empty.acceptance_rate) == (0, None, None, None)


_cost = st.decimals(min_value=0, max_value=3, places=6).map(float)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["completion", "explain", "refactor", "commit_message"]),
            st.sampled_from(["local", "in_house", "frontier"]),
            _cost,
            _cost,
            st.integers(0, 10_000),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_report_totals_are_exact_sums_of_rows(specs):
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "l.sqlite3") as ledger:
        rows = [
            make_row(
                request_id=f"r{i}",
                task=task,
                tier=tier,
                cost_usd=cost,
                frontier_cost_usd=frontier,
                prompt_tokens=tokens,
            )
            for i, (task, tier, cost, frontier, tokens) in enumerate(specs)
        ]
        for row in rows:
            ledger.record(row)
        report = build_report(ledger, None)
    cents = Decimal("0.01")
    cost = sum((Decimal(str(r.cost_usd)) for r in rows), Decimal(0))  # exact: 6 decimal places each
    frontier = sum((Decimal(str(r.frontier_cost_usd)) for r in rows), Decimal(0))
    for got, want in (
        (report.totals.cost_usd, cost),
        (report.totals.frontier_cost_usd, frontier),
        (report.totals.savings_usd, frontier - cost),
    ):
        assert round(got * 10**9) == int(want * 10**9)  # exact to the nano-dollar
        assert Decimal(str(got)).quantize(cents) == want.quantize(cents)
    assert report.totals.prompt_tokens == sum(r.prompt_tokens for r in rows)
    for groups in (report.by_task, report.by_tier):
        assert round(sum(g.cost_usd for g in groups) * 1e9) == round(report.totals.cost_usd * 1e9)
        assert sum(g.attempts for g in groups) == len(rows)
        assert sum(g.requests for g in groups) == len(rows)  # one attempt per request here


NOW = datetime(2026, 11, 15, 13, 45, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, datetime(2026, 11, 1, tzinfo=timezone.utc)),
        ("month", datetime(2026, 11, 1, tzinfo=timezone.utc)),
        ("today", datetime(2026, 11, 15, tzinfo=timezone.utc)),
        ("all", None),
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("2w", NOW - timedelta(weeks=2)),
        (" 7D ", NOW - timedelta(days=7)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc)),
        ("2026-10-03T09:30", datetime(2026, 10, 3, 9, 30, tzinfo=timezone.utc)),
        ("2026-10-03T09:30:00+02:00", datetime(2026, 10, 3, 7, 30, tzinfo=timezone.utc)),
        ("2026-10-03T09:30:00Z", datetime(2026, 10, 3, 9, 30, tzinfo=timezone.utc)),
    ],
)
def test_parse_since(text, expected):
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7x", "-3d", "0d", "", "2026-13-01", "7 days", "d", "99999999999d"])
def test_parse_since_rejects(text):
    with pytest.raises(ValueError, match="--since"):
        parse_since(text, now=NOW)


def test_run_report_bad_since_exits_2(db: Path, capsys: pytest.CaptureFixture[str]):
    assert run_report("last tuesday", False, db) == 2
    captured = capsys.readouterr()
    assert "--since 'last tuesday'" in captured.err and "2026-11-01" in captured.err
    assert captured.out == ""


def test_run_report_json(sample_db: Path, capsys: pytest.CaptureFixture[str]):
    assert run_report("7d", True, sample_db) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {
        "source",
        "since",
        "until",
        "totals",
        "by_task",
        "by_tier",
        "by_model",
        "by_repo",
        "by_week",
        "escalation_reasons",
        "counterfactual",
    }
    assert data["source"] == "local"
    assert datetime.fromisoformat(data["since"]) < datetime.fromisoformat(data["until"])
    assert {
        "requests",
        "attempts",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "frontier_cost_usd",
        "savings_usd",
        "savings_pct",
        "escalations",
        "escalation_rate",
        "failures",
        "acceptance_rate",
        "latency_p50_ms",
        "latency_p95_ms",
    } <= set(data["totals"])
    assert [g["key"] for g in data["by_task"]] == ["completion", "explain", "refactor"]
    assert [g["key"] for g in data["by_tier"]] == ["local", "in_house", "frontier"]
    assert data["totals"]["requests"] == 5 and data["totals"]["cost_usd"] == pytest.approx(0.01775)


def test_run_report_rich(sample_db: Path, capsys: pytest.CaptureFixture[str]):
    assert run_report("all", False, sample_db) == 0  # default console: stdout, 80 columns when captured
    out = capsys.readouterr().out
    for word in ("By task type", "By tier", "completion", "explain", "refactor", "local", "in_house", "frontier"):
        assert word in out
    totals_line = "This period cost $0.0178; on the frontier alone it would have cost $0.0295 (saved 40%)."
    assert totals_line in " ".join(out.split())  # wrapped at 80 columns

    console = Console(file=StringIO(), width=200)
    with Ledger(sample_db) as ledger:
        render_report(build_report(ledger, None), console)
    wide = console.file.getvalue()  # type: ignore[attr-defined]
    assert totals_line in wide
    assert "5300" in wide.replace(",", "") and "$0.0117 (40%)" in wide


def test_run_report_empty_and_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert run_report(None, False, tmp_path / "new.sqlite3") == 0
    assert "No requests recorded" in capsys.readouterr().out
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"garbage" * 1000)
    assert run_report(None, True, broken) == 1
    assert "not a database" in capsys.readouterr().err


def test_report_json_round_trips(sample_db: Path):
    with Ledger(sample_db) as ledger:
        report = build_report(ledger, None)
    assert type(report).model_validate_json(report_json(report)) == report
