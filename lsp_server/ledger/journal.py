"""The crash journal: rows a process has answered for but not yet committed to SQLite.

The server answers a request before its row reaches SQLite (that can wait for another
process's write lock). A line written here is in the OS's hands at once, so it survives
kill -9 of the process; the next Ledger that opens replays the files of processes that are
gone. The file is emptied whenever everything in it has been committed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from lsp_server.ledger.guards import safe_reason
from lsp_server.ledger.row import LedgerRow, checked

JOURNAL_DIRNAME = "ledger-journal"


class Journal:
    """This process's journal file, append-only."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{os.getpid()}-{time.time_ns()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()
        self._open = 0  # appended and not yet committed

    def append(self, values: dict[str, Any]) -> None:
        line = (json.dumps(values, separators=(",", ":"), default=_json_value) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._fd, line)
            self._open += 1

    def committed(self) -> None:
        with self._lock:
            self._open = max(self._open - 1, 0)
            if self._open == 0:
                os.ftruncate(self._fd, 0)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)
            if self._open == 0:
                self.path.unlink(missing_ok=True)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned_journals(directory: Path) -> list[Path]:
    """Journal files of processes that are gone, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.jsonl")):
        try:
            pid = int(path.name.split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not process_alive(pid):
            found.append(path)
    return found


def claim(path: Path) -> Path | None:
    """Rename a journal so that only this process replays it; None if another got it first."""
    claimed = path.with_name(f"{path.name}.recovering-{os.getpid()}")
    try:
        os.rename(path, claimed)
    except OSError:
        return None
    return claimed


def journal_rows(path: Path) -> list[LedgerRow]:
    rows: list[LedgerRow] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            values = json.loads(line)
            values["reasons"] = [safe_reason(str(r)) for r in values.get("reasons", [])]
            rows.append(checked(LedgerRow(**values)))
        except Exception:  # a line cut by the crash, or one that fails validation
            continue
    return rows


__all__ = ["JOURNAL_DIRNAME", "Journal", "claim", "journal_rows", "orphaned_journals", "process_alive"]
