"""Partial accepts in the ledger: counts of what was kept of a suggestion (characters and
words, never the text), the most that was kept winning, through spills and an upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from lsp_server.ledger import SCHEMA_VERSION, Ledger, LedgerRow, PartialAccept


def row(request_id: str, attempt: int = 1) -> LedgerRow:
    return LedgerRow(
        request_id=request_id, attempt=attempt, task="completion", tier="local", backend="llama_cpp", model="m"
    )


def kept(chars: int, words: int, of_chars: int = 12, of_words: int = 6) -> PartialAccept:
    return PartialAccept(kept_chars=chars, shown_chars=of_chars, kept_words=words, shown_words=of_words)


def counts(r: LedgerRow) -> tuple[object, ...]:
    return (r.shown, r.accepted, r.kept_chars, r.shown_chars, r.kept_words, r.shown_words)


def test_partial_accepts_keep_the_most_kept_and_a_whole_accept_after_them(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        ledger.record(row("a"))
        ledger.record(row("b"))
        ledger.record(row("b", attempt=2))
        ledger.mark_feedback("a", partial=kept(2, 1))
        ledger.mark_feedback("a", partial=kept(4, 2))
        ledger.mark_feedback("a", partial=kept(3, 1))  # an older step arriving late: the most kept stays
        ledger.mark_feedback("b", partial=kept(2, 1))
        ledger.mark_feedback("b", accepted=True, partial=kept(12, 6))
        rows = {(r.request_id, r.attempt): r for r in ledger.rows()}
    assert counts(rows["a", 1]) == (True, None, 4, 12, 2, 6)  # shown, kept in part, not accepted whole
    assert counts(rows["b", 1]) == (None, None, None, None, None, None)  # only the last attempt is shown
    assert counts(rows["b", 2]) == (True, True, 12, 12, 6, 6)


def test_partial_accepts_of_spilled_rows_reach_the_database(tmp_path: Path):
    db = tmp_path / "ledger.sqlite3"
    db.mkdir()  # unusable: rows and feedback wait in memory
    ledger = Ledger(db)
    ledger.record(row("a"))
    ledger.mark_feedback("a", partial=kept(2, 1))
    ledger.mark_feedback("a", partial=kept(6, 3))
    db.rmdir()
    assert ledger.flush()
    (stored,) = ledger.rows()
    assert counts(stored) == (True, None, 6, 12, 3, 6)
    ledger.close()


def test_counts_are_checked():
    with pytest.raises(ValidationError):
        kept(13, 1)  # more kept than shown
    with pytest.raises(ValidationError):
        kept(2, 7)
    with pytest.raises(ValidationError):
        kept(-1, 0)


def test_a_version_2_ledger_gains_the_columns_and_keeps_its_rows(tmp_path: Path):
    from lsp_server.ledger.schema import _MIGRATIONS

    db = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    for migration in _MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO attempts (ts, request_id, attempt, task, tier, backend, model, outcome, shown, accepted) "
        "VALUES (1, 'old', 1, 'completion', 'local', 'llama_cpp', 'm', 'ok', 1, 1)"
    )
    conn.close()
    with Ledger(db) as ledger:
        ledger.mark_feedback("old", partial=kept(12, 6))
        (old,) = ledger.rows()
    assert counts(old) == (True, True, 12, 12, 6, 6)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
