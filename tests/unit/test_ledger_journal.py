"""The journal that keeps answered rows through a crash, and its recovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from lsp_server.ledger import JOURNAL_DIRNAME, Journal, Ledger, LedgerRow


def values(request_id: str, attempt: int = 1) -> dict[str, object]:
    return {
        "request_id": request_id,
        "attempt": attempt,
        "task": "completion",
        "tier": "local",
        "backend": "llama_cpp",
        "model": "m.gguf",
        "ts": datetime.now(timezone.utc),
        "reasons": ["local first"],
    }


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_journal_is_emptied_once_everything_is_committed(tmp_path: Path):
    journal = Journal(tmp_path / "j")
    journal.append(values("a-1"))
    journal.append(values("a-2"))
    assert len(journal.path.read_text().splitlines()) == 2
    journal.committed()
    assert len(journal.path.read_text().splitlines()) == 2  # one still open
    journal.committed()
    assert journal.path.read_text() == ""
    journal.close()
    assert not journal.path.exists()


def test_rows_of_a_dead_process_are_recovered_once(tmp_path: Path):
    db = tmp_path / "ledger.sqlite3"
    with Ledger(db) as ledger:
        ledger.record(LedgerRow(**values("r-1")))  # already stored: must not be duplicated
    directory = tmp_path / JOURNAL_DIRNAME
    directory.mkdir()
    lines = [json.dumps(values(rid), default=str) for rid in ("r-1", "r-2", "r-3")]
    orphan = directory / f"{dead_pid()}-1.jsonl"
    orphan.write_text("\n".join(lines) + "\n" + lines[0][:20])  # a line cut by the crash
    alive = directory / f"{os.getppid()}-2.jsonl"
    alive.write_text(json.dumps(values("live-1"), default=str) + "\n")
    with Ledger(db) as ledger:
        ids = sorted(row.request_id for row in ledger.rows())
    assert ids == ["r-1", "r-2", "r-3"]  # the live process's journal is its own business
    assert not orphan.exists() and alive.exists()
    with Ledger(db) as ledger:
        assert len(ledger.rows()) == 3  # recovery ran once


def test_a_journaled_row_that_never_reached_sqlite_survives(tmp_path: Path):
    db = tmp_path / "ledger.sqlite3"
    script = (
        "import os, sys\n"
        "from datetime import datetime, timezone\n"
        "from lsp_server.ledger import Ledger\n"
        f"ledger = Ledger({str(db)!r})\n"
        "ledger.journal_append({'request_id': 'k-1', 'attempt': 1, 'task': 'completion', 'tier': 'local',"
        " 'backend': 'llama_cpp', 'model': 'm.gguf', 'ts': datetime.now(timezone.utc), 'reasons': []})\n"
        "os._exit(9)  # dies before the row is stored, like kill -9\n"
    )
    subprocess.run([sys.executable, "-c", script], check=False, cwd=Path(__file__).resolve().parents[2])
    with Ledger(db) as ledger:
        assert [row.request_id for row in ledger.rows()] == ["k-1"]
