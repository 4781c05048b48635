"""The local report aggregated in SQLite equals the report computed row by row in Python.

The row-by-row report (tests/report_reference.py) is how `ninetyten report` was computed
before it moved into SQL; both must give the same JSON on the same rows, to the last digit
of every percentile. Also the pieces the SQL relies on: the latency buckets are monotone and
the same in SQLite and in Python, and the nearest-rank picks equal a sort's.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server.ledger import Ledger, LedgerRow
from lsp_server.ledger.latency_ranks import LatencyRanks, bucket, bucket_sql
from lsp_server.ledger.local_report import build_report
from lsp_server.ledger.report import Report, percentile
from tests.ledger_rows import NOW, awkward_rows, random_rows
from tests.report_reference import reference_report

EDGE_LATENCIES = [
    0.0,
    -0.0,
    5e-324,
    1e-9,
    0.0004,
    0.0005,
    0.000999,
    0.001,
    0.0015,
    0.9999999,
    1.0,
    9.999,
    10.0,
    99.99999999999999,
    100.0,
    999.9995,
    1099.999,
    1e6,
    123456.789012345,
    1e12,
    1e15,
    2.5e15,
    -5.0,
]


def as_json(report: Report) -> dict[str, object]:
    return json.loads(report.model_dump_json(exclude={"until"}))


def record(db: Path, rows: list[LedgerRow]) -> None:
    with Ledger(db) as ledger:
        for row in rows:
            ledger.record(row)


@pytest.mark.parametrize("digits", [1, 2, 3])
def test_buckets_in_sqlite_are_the_buckets_in_python(digits: int):
    values = EDGE_LATENCIES + [random.Random(digits).lognormvariate(4, 3) for _ in range(2000)]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (i INTEGER, latency_ms REAL)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", enumerate(values))
    found = dict(conn.execute(f"SELECT i, {bucket_sql('latency_ms', digits, 'sqlite')} FROM t"))
    assert [found[i] for i in range(len(values))] == [bucket(v, digits) for v in values]


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=-1e3, max_value=1e16, allow_nan=False),
    st.floats(min_value=-1e3, max_value=1e16, allow_nan=False),
    st.integers(1, 3),
)
def test_buckets_never_put_a_larger_latency_lower(a: float, b: float, digits: int):
    low, high = sorted((a, b))
    assert bucket(low, digits) <= bucket(high, digits)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.one_of(st.sampled_from(EDGE_LATENCIES[:16]), st.floats(min_value=0, max_value=1e7, allow_nan=False)),
        ),
        max_size=80,
    ),
    st.lists(st.booleans(), max_size=80),
    st.integers(1, 3),
)
def test_picks_from_bucket_counts_equal_the_nearest_rank_of_a_sort(values, known_here, digits):
    """Some latencies only the database holds (counted, then fetched bucket by bucket), some
    known here; the picks are `percentile` of all of them sorted."""
    ranks = LatencyRanks(digits=digits)
    database: list[tuple[str, float]] = []
    for i, (group, latency) in enumerate(values):
        if i < len(known_here) and known_here[i]:
            ranks.value(group, latency)
        else:
            ranks.count(group, bucket(latency, digits), 1)
            database.append((group, latency))
    wanted = ranks.wanted_buckets()
    for group, latency in database:
        if bucket(latency, digits) in wanted:
            ranks.candidate(group, bucket(latency, digits), latency)
    for group in ("a", "b", "c"):
        mine = sorted(latency + 0.0 for g, latency in values if g == group)
        assert ranks.percentiles(group) == (percentile(mine, 50), percentile(mine, 95))


@pytest.mark.parametrize(
    "rows", [lambda: random_rows(7, 900, "dev"), lambda: awkward_rows(11, 900, "odd")], ids=["varied", "awkward"]
)
@pytest.mark.parametrize("since", [None, NOW - timedelta(days=14), NOW + timedelta(days=1)], ids=["all", "14d", "none"])
def test_the_sql_report_is_the_row_by_row_report(tmp_path: Path, rows, since: datetime | None):
    db = tmp_path / "ledger.sqlite3"
    record(db, rows())
    with Ledger(db) as ledger:
        assert as_json(build_report(ledger, since)) == as_json(reference_report(ledger, since))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(0, 120))
def test_any_mix_of_rows_reports_the_same(seed: int, count: int):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.sqlite3"
        record(db, awkward_rows(seed, count, "p")[:count])
        with Ledger(db) as ledger:
            assert as_json(build_report(ledger, None)) == as_json(reference_report(ledger, None))


def test_an_empty_ledger_reports_nothing(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        report = build_report(ledger, None)
        assert as_json(report) == as_json(reference_report(ledger, None))
    assert report.totals.requests == 0 and report.totals.latency_p50_ms is None and report.by_task == []


def test_rows_kept_in_memory_count_with_their_stored_attempts(tmp_path: Path):
    """While another process holds the write lock, new rows wait in memory; a report made then
    counts them, joined to the stored attempts of the same requests."""
    db = tmp_path / "ledger.sqlite3"
    rows = awkward_rows(5, 300, "k")
    stored = rows[:200]
    record(db, stored)
    blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        ledger = Ledger(db, busy_timeout_s=0.05)
        # The request of the last stored row goes on in memory: same request, later attempts.
        last = stored[-1]
        later = [r.model_copy(update={"attempt": r.attempt + 10, "request_id": last.request_id}) for r in rows[200:203]]
        for row in [*later, *rows[203:]]:
            assert ledger.record(row) == 0
        assert ledger.spilled == len(later) + len(rows) - 203
        new, old = build_report(ledger, None), reference_report(ledger, None)
        assert as_json(new) == as_json(old)
        assert new.totals.attempts == len(rows)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    ledger.close()


def test_a_report_sees_one_state_of_the_ledger(tmp_path: Path):
    """Rows written by another process while the report's reads run land wholly after it:
    the counts and the percentiles come from the same rows."""
    db = tmp_path / "ledger.sqlite3"
    record(db, random_rows(3, 400, "before"))
    stop = threading.Event()

    def write() -> None:
        with Ledger(db) as writer:
            n = 0
            while not stop.is_set():
                n += 1
                writer.record(
                    LedgerRow(
                        request_id=f"during-{n}",
                        task="ask",
                        tier="local",
                        backend="llama_cpp",
                        model="m",
                        latency_ms=float(n),
                        ts=NOW,
                    )
                )

    thread = threading.Thread(target=write)
    thread.start()
    try:
        with Ledger(db) as ledger:
            for _ in range(10):
                report = build_report(ledger, None)
                assert report.totals.requests == sum(g.requests for g in report.by_task)
                assert report.totals.attempts == sum(g.attempts for g in report.by_tier)
    finally:
        stop.set()
        thread.join()


def test_week_keys_follow_utc_mondays_before_1970_too(tmp_path: Path):
    """SQLite's integer division truncates towards zero: the week of a row before the epoch
    must still be its Monday."""
    db = tmp_path / "ledger.sqlite3"
    moments = [
        datetime(1969, 12, 31, 23, 59, 59, 500000),
        datetime(1969, 12, 29),
        datetime(1969, 12, 28, 23, 59),
        datetime(1970, 1, 5),
        datetime(2026, 11, 16),
        datetime(2026, 11, 15, 23, 59, 59, 999999),
    ]
    record(
        db,
        [
            LedgerRow(request_id=f"w{i}", task="ask", tier="local", backend="llama_cpp", model="m", ts=moment)
            for i, moment in enumerate(moments)
        ],
    )
    with Ledger(db) as ledger:
        report = build_report(ledger, None)
        assert as_json(report) == as_json(reference_report(ledger, None))
    assert [g.key for g in report.by_week] == ["1969-12-22", "1969-12-29", "1970-01-05", "2026-11-09", "2026-11-16"]
    assert report.totals.requests == len(moments)
