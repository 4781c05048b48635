"""The ledger: one SQLite row per attempt, with no content in it.

Each attempt of each request gets one row: route, model, token counts, latency, cost, and
what the frontier tier would have charged for the same tokens. Prompts, completions, file
contents and keys never get in. The row model takes only short codes, checked against a
character whitelist, a length limit and a few secret patterns, and `record()` checks every
row again before it writes.

Decisions:
- `ts` is stored as a unix timestamp (REAL, seconds, UTC). Range queries are numeric and
  there are no time zones to get wrong. `LedgerRow.ts` is a timezone-aware UTC datetime, and
  naive datetimes given to any method here are taken as UTC.
- Money is stored as integer nano-dollars (`*_nusd` columns), so sums and budget
  comparisons are exact. The model exposes float USD rounded to the nano-dollar.
- "Today" starts at UTC midnight. Provider billing days start then too, it is the same
  instant for every team member sharing a policy, and it has no DST edge cases.
- Several processes (the language server, a git hook, the CLI) and threads may write at
  once: WAL, busy_timeout, and BEGIN IMMEDIATE for every write. A writer that has to wait
  for the lock waits in the busy handler and does not fail at once.
- "The ledger never loses a row": if the database can't be used (corrupt file, directory in
  the way, full disk, locked longer than busy_timeout), `record()` logs once and keeps the
  row in memory. The next successful write stores it first.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_validator

from local_models.paths import ninetyten_home

log = logging.getLogger(__name__)

LEDGER_FILENAME = "ledger.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 5.0
STALE_RESERVATION_S = 600.0  # a reservation this old belongs to a crashed process (or a runaway request)
MAX_SPILL_ROWS = 100_000  # bound memory if the DB stays broken for a very long time
NANO = 1_000_000_000

# Known values. The columns accept any short code, so a new task or tier doesn't break the ledger.
TASKS = ("completion", "explain", "refactor", "ask", "commit_message")
TIERS = ("local", "in_house", "frontier")
BACKENDS = ("llama_cpp", "openai", "anthropic")
OUTCOMES = ("ok", "escalated", "failed", "cancelled", "blocked", "timeout")
FAILURE_OUTCOMES = frozenset({"failed", "timeout", "error"})

T = TypeVar("T")


class LedgerError(Exception):
    """The ledger database cannot be used; the message names the file and the cause."""


# --- content guards -------------------------------------------------------------------------

# Known credential shapes at a token boundary (OpenAI/Anthropic, Stripe, GitHub, GitLab,
# Slack, AWS, Google, JWT).
_SECRET_PREFIX = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-|sk_live_|sk_test_|rk_live_|gh[pousr]_|github_pat_|glpat-|xox[abprs]-"
    r"|AKIA|ASIA|AIza|eyJ)[A-Za-z0-9_\-]{8,}"
)
# A long run of letters and digits mixed together looks like a key or a hash, not a code.
_LONG_ALNUM = re.compile(r"[A-Za-z0-9]{20,}")
_LONG_DIGITS = re.compile(r"[0-9]{12,}")  # card / account / phone numbers
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


def _no_secret_prefix(value: str) -> str:
    if _SECRET_PREFIX.search(value):
        raise ValueError("looks like a credential; the ledger stores codes only")
    return value


def _no_secrets(value: str) -> str:
    _no_secret_prefix(value)
    for run in _LONG_ALNUM.findall(value):
        if re.search(r"[0-9]", run) and re.search(r"[A-Za-z]", run):
            raise ValueError("contains a long random-looking token; the ledger stores codes only")
    if _LONG_DIGITS.search(value) or _EMAIL.search(value):
        raise ValueError("looks like personal data; the ledger stores codes only")
    return value


# A token that looks like a file path: rooted ("/x", "~/x", "./x"), two or more separators, or a
# separator and a file extension ("src/app.py"). "4.80/5.00" and "org/model-7B" are not paths.
_PATH_TOKEN = re.compile(r"(?<!\S)(?:[~.]*/[^\s/]\S*|\S*/\S*/\S*|\S*/\S*\.[A-Za-z][A-Za-z0-9]{0,7})(?!\S)")


def _no_paths(value: str) -> str:
    if _PATH_TOKEN.search(value):
        raise ValueError("looks like a file path; the ledger stores codes only")
    return value


def _not_a_path(value: str) -> str:
    # HF-style ids ("org/model") are fine; absolute or parent-relative paths are not.
    if ".." in value or "//" in value or re.match(r"^[A-Za-z]:/", value):
        raise ValueError("looks like a file path; record the model id or file name")
    return value


# Short machine codes: task, tier, backend, outcome, escalation_reason, error_kind.
Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
    AfterValidator(_no_secrets),
]
ModelName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+@/\-]*$"),
    AfterValidator(_not_a_path),
    AfterValidator(_no_secrets),
]
# Reason strings may be readable ("rule 3: task=completion -> local"), but stay on one short ASCII
# line with no quotes, braces, backslashes or other code punctuation. `safe_reason()` makes one.
_REASON_PUNCT = " _.,:=<>()/%+#-"
Reason = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.,:=<>()/%+#\-][A-Za-z0-9 _.,:=<>()/%+#\-]*$"
    ),
    AfterValidator(_no_secrets),
    AfterValidator(_no_paths),
]
# Request ids are often uuid hex, so they skip the long-token check but not the credential check.
RequestId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
    AfterValidator(_no_secret_prefix),
]
PolicyHash = Annotated[str, StringConstraints(pattern=r"^(?:[a-z0-9]{1,16}:)?[0-9a-fA-F]{6,128}$")]

_request_id_adapter: TypeAdapter[str] = TypeAdapter(RequestId)
_reason_adapter: TypeAdapter[str] = TypeAdapter(Reason)


def safe_reason(text: str) -> str:
    """Turn any router message into a valid reason: other characters become spaces, anything
    credential- or PII-shaped becomes "redacted", and it is cut to 200 characters."""
    cleaned = _EMAIL.sub("redacted", text)  # before "@" turns into a space
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in _REASON_PUNCT) else " " for ch in cleaned)
    cleaned = " ".join(cleaned.split())
    cleaned = _SECRET_PREFIX.sub("redacted", cleaned)
    cleaned = _LONG_ALNUM.sub(
        lambda m: "redacted" if re.search(r"[0-9]", m[0]) and re.search(r"[A-Za-z]", m[0]) else m[0], cleaned
    )
    cleaned = _LONG_DIGITS.sub("redacted", cleaned)
    cleaned = _PATH_TOKEN.sub("path", cleaned)
    cleaned = cleaned[:200].strip()
    try:
        return _reason_adapter.validate_python(cleaned)
    except ValueError:  # e.g. a cut left a fragment that still trips a check
        return "unspecified"


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _to_nusd(usd: float) -> int:
    return round(usd * NANO)


def utc_midnight(now: datetime | None = None) -> datetime:
    """Start of the current UTC day: the ledger's "today"."""
    now = _as_utc(now or _utc_now())
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


# --- models -----------------------------------------------------------------------------------


class Price(BaseModel):
    """A tier's price in USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000

    @property
    def paid(self) -> bool:
        return self.input_per_mtok > 0 or self.output_per_mtok > 0


class LedgerRow(BaseModel):
    """One attempt of one request. Every string is a short code: no content can be stored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: int | None = None  # set when read back
    ts: datetime = Field(default_factory=_utc_now)
    request_id: RequestId
    attempt: int = Field(1, ge=1, le=1000)
    task: Code
    tier: Code
    backend: Code
    model: ModelName
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    cached_tokens: int = Field(0, ge=0)
    latency_ms: float = Field(0.0, ge=0, allow_inf_nan=False)
    cost_usd: float = Field(0.0, ge=0, allow_inf_nan=False)
    frontier_cost_usd: float = Field(0.0, ge=0, allow_inf_nan=False)
    outcome: Code = "ok"
    escalated: bool = False
    escalation_reason: Code | None = None
    error_kind: Code | None = None
    policy_hash: PolicyHash | None = None
    reasons: list[Reason] = Field(default_factory=list, max_length=32)
    shown: bool | None = None
    accepted: bool | None = None

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @field_validator("cost_usd", "frontier_cost_usd")
    @classmethod
    def _nano_dollars(cls, value: float) -> float:
        # Quantise to what the database stores so a row reads back equal to what was written.
        return _to_nusd(value) / NANO


def _checked(row: LedgerRow) -> LedgerRow:
    # Validate again: model_construct() and copies made with model_copy(update=...) skip validation.
    data = row.model_dump() if isinstance(row, BaseModel) else row
    return LedgerRow.model_validate(data)


# --- schema -----------------------------------------------------------------------------------

# _MIGRATIONS[i] upgrades a database from schema version i to i + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE attempts (
            id                 INTEGER PRIMARY KEY AUTOINCREMENT,
            ts                 REAL    NOT NULL,            -- unix seconds, UTC
            request_id         TEXT    NOT NULL,
            attempt            INTEGER NOT NULL,
            task               TEXT    NOT NULL,
            tier               TEXT    NOT NULL,
            backend            TEXT    NOT NULL,
            model              TEXT    NOT NULL,
            prompt_tokens      INTEGER NOT NULL DEFAULT 0,
            completion_tokens  INTEGER NOT NULL DEFAULT 0,
            cached_tokens      INTEGER NOT NULL DEFAULT 0,
            latency_ms         REAL    NOT NULL DEFAULT 0,
            cost_nusd          INTEGER NOT NULL DEFAULT 0,  -- nano-dollars
            frontier_cost_nusd INTEGER NOT NULL DEFAULT 0,  -- nano-dollars
            outcome            TEXT    NOT NULL,
            escalated          INTEGER NOT NULL DEFAULT 0,
            escalation_reason  TEXT,
            error_kind         TEXT,
            policy_hash        TEXT,
            reasons            TEXT    NOT NULL DEFAULT '[]', -- JSON list of reason codes
            shown              INTEGER,
            accepted           INTEGER
        )
        """,
        "CREATE INDEX attempts_ts ON attempts (ts)",
        "CREATE INDEX attempts_request ON attempts (request_id, attempt)",
        """
        CREATE TABLE reservations (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            created     REAL    NOT NULL,                   -- unix seconds, UTC
            amount_nusd INTEGER NOT NULL,
            pid         INTEGER NOT NULL                    -- for diagnostics only
        )
        """,
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_COLUMNS = (
    "ts", "request_id", "attempt", "task", "tier", "backend", "model", "prompt_tokens", "completion_tokens",
    "cached_tokens", "latency_ms", "cost_nusd", "frontier_cost_nusd", "outcome", "escalated",
    "escalation_reason", "error_kind", "policy_hash", "reasons", "shown", "accepted",
)
_INSERT = f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM attempts"


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION (safe if several processes race); returns it."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return SCHEMA_VERSION
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # again, under the write lock
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger has schema version {version}, newer than this ninetyten's "
                f"({SCHEMA_VERSION}); upgrade ninetyten"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _row_values(row: LedgerRow) -> tuple[Any, ...]:
    def flag(value: bool | None) -> int | None:
        return None if value is None else int(value)

    return (
        row.ts.timestamp(), row.request_id, row.attempt, row.task, row.tier, row.backend, row.model,
        row.prompt_tokens, row.completion_tokens, row.cached_tokens, row.latency_ms,
        _to_nusd(row.cost_usd), _to_nusd(row.frontier_cost_usd), row.outcome, int(row.escalated),
        row.escalation_reason, row.error_kind, row.policy_hash, json.dumps(row.reasons),
        flag(row.shown), flag(row.accepted),
    )


def _row_from_db(values: tuple[Any, ...]) -> LedgerRow:
    data = dict(zip(("id", *_COLUMNS), values))
    data["ts"] = datetime.fromtimestamp(data["ts"], timezone.utc)
    data["cost_usd"] = data.pop("cost_nusd") / NANO
    data["frontier_cost_usd"] = data.pop("frontier_cost_nusd") / NANO
    data["reasons"] = json.loads(data["reasons"])
    for key in ("escalated", "shown", "accepted"):
        if data[key] is not None:
            data[key] = bool(data[key])
    # Our own rows, already validated on the way in and converted above: skipping validation
    # makes reading a month of completions for a report several times faster.
    return LedgerRow.model_construct(**data)


class AttemptSummary(NamedTuple):
    """The aggregate-able part of a row. Money in nano-dollars; flags as 0 / 1 / None."""

    request_id: str
    task: str
    tier: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_ms: float
    cost_nusd: int
    frontier_cost_nusd: int
    outcome: str
    escalated: int
    shown: int | None
    accepted: int | None


def _summary_values(row: LedgerRow) -> tuple[Any, ...]:
    values = dict(zip(_COLUMNS, _row_values(row)))
    return tuple(values[name] for name in AttemptSummary._fields)


def _tier_filter(tiers: Collection[str] | None) -> tuple[str, list[Any]]:
    if tiers is None:
        return "", []
    tiers = list(tiers)
    if not tiers:
        return " AND 0", []
    return f" AND tier IN ({', '.join('?' * len(tiers))})", tiers


# --- the ledger -------------------------------------------------------------------------------


class Reservation:
    """Budget held for one in-flight request until `commit()` or `release()`.

    Also a context manager: leaving the block without committing releases it.
    """

    def __init__(self, ledger: Ledger, reservation_id: int, amount_usd: float) -> None:
        self.id = reservation_id
        self.amount_usd = amount_usd
        self._ledger = ledger
        self._done = False

    def commit(self, row: LedgerRow) -> int:
        """Record the real row and drop the reservation in one transaction; returns the row id (0 if spilled)."""
        if self._done:
            raise RuntimeError("this reservation was already committed or released")
        self._done = True
        return self._ledger._commit_reservation(self.id, row)

    def release(self) -> None:
        """Give the budget back (no-op if already committed or released)."""
        if not self._done:
            self._done = True
            self._ledger._release_reservation(self.id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


JOURNAL_DIRNAME = "ledger-journal"


class Journal:
    """Rows a server has answered for but not yet committed, in an append-only file of its own.

    The server answers a request before its row reaches SQLite (that can wait for another
    process's write lock). A line written here is in the OS's hands at once, so it survives
    kill -9 of the process; the next Ledger that opens replays the files of processes that
    are gone. The file is emptied whenever everything in it has been committed.
    """

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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """The attempt ledger in one SQLite file, shared by every ninetyten process of a user."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        stale_after_s: float = STALE_RESERVATION_S,
    ) -> None:
        self.path = Path(path) if path is not None else ninetyten_home() / LEDGER_FILENAME
        self._busy_timeout_s = busy_timeout_s
        self._stale_after_s = stale_after_s
        # One connection per Ledger, serialised by a lock: writes serialise in SQLite anyway.
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._spill: list[LedgerRow] = []
        self._pending_feedback: dict[str, tuple[bool | None, bool | None]] = {}
        self._dropped = 0
        self._failing = False  # an outage is already logged
        self._journal: Journal | None = None
        with self._lock:
            try:
                self._connection()
                self.recover_journals()
            except (sqlite3.Error, OSError, LedgerError) as exc:
                self._note_failure(exc)

    # --- the journal of answered rows (see Journal) ---

    @property
    def journal_dir(self) -> Path:
        return self.path.parent / JOURNAL_DIRNAME

    def journal_append(self, values: dict[str, Any]) -> bool:
        """Write a row's values to this process's journal; False if that is not possible."""
        try:
            if self._journal is None:
                self._journal = Journal(self.journal_dir)
            self._journal.append(values)
            return True
        except OSError as exc:
            log.warning("Ledger journal unavailable (%s); rows are only in memory until stored.", exc)
            return False

    def journal_committed(self) -> None:
        if self._journal is not None:
            try:
                self._journal.committed()
            except OSError:
                log.debug("journal truncate failed", exc_info=True)

    def recover_journals(self) -> int:
        """Store rows from the journals of processes that ended before storing them; returns how many."""
        directory = self.journal_dir
        if not directory.is_dir():
            return 0
        recovered = 0
        for path in sorted(directory.glob("*.jsonl")):
            try:
                pid = int(path.name.split("-", 1)[0])
            except ValueError:
                continue
            if pid == os.getpid() or _process_alive(pid):
                continue
            claimed = path.with_name(f"{path.name}.recovering-{os.getpid()}")
            try:
                os.rename(path, claimed)  # only one process replays a given file
            except OSError:
                continue
            rows = _journal_rows(claimed)
            if rows:
                recovered += self._transaction(lambda conn: _insert_missing(conn, rows))
            claimed.unlink(missing_ok=True)
        if recovered:
            log.warning("Ledger %s: stored %d rows from processes that ended before writing them.",
                        self.path, recovered)
        return recovered

    # --- connection and failure handling ---

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # Forked: the parent's connection must not be used (or closed) here.
            self._conn, self._pid = None, os.getpid()
        if self._conn is not None:
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                # Another process may be creating the file right now.
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            log.warning("Ledger %s: WAL mode unavailable (journal_mode=%s); concurrent writers will wait longer.",
                        self.path, mode)

    def _note_failure(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "Ledger %s is not usable (%s); keeping rows in memory until it is.%s",
                self.path, exc,
                " If the file is corrupt, move it aside and ninetyten will start a new one."
                if type(exc) is sqlite3.DatabaseError else "",
            )
        if not (isinstance(exc, sqlite3.OperationalError) and _is_busy(exc)):
            self._drop_connection()  # reopen next time: the file may have been fixed or replaced

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run body in a write transaction, storing spilled rows and feedback first."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in self._spill:
                conn.execute(_INSERT, _row_values(row))
            for request_id, (shown, accepted) in self._pending_feedback.items():
                _update_feedback(conn, request_id, shown, accepted)
            result = body(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        if self._spill or self._pending_feedback or self._failing:
            log.info("Ledger %s is usable again; stored %d kept rows.", self.path, len(self._spill))
        self._spill.clear()
        self._pending_feedback.clear()
        self._failing = False
        return result

    def _keep(self, row: LedgerRow) -> None:
        self._spill.append(row)
        if len(self._spill) > MAX_SPILL_ROWS:
            del self._spill[0]
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                log.error("Ledger %s: unusable for too long; dropped %d oldest kept rows.", self.path, self._dropped)

    @property
    def spilled(self) -> int:
        """How many rows are kept in memory waiting for the database."""
        with self._lock:
            return len(self._spill)

    # --- writes ---

    def record(self, row: LedgerRow) -> int:
        """Store one attempt; returns its id, or 0 if it is kept in memory for now.

        Raises only if the row fails validation (it would carry something that isn't a code).
        """
        row = _checked(row)
        with self._lock:
            try:
                return self._transaction(lambda conn: int(conn.execute(_INSERT, _row_values(row)).lastrowid or 0))
            except (sqlite3.Error, OSError, LedgerError) as exc:
                self._note_failure(exc)
                self._keep(row)
                return 0

    def flush(self) -> bool:
        """Try to store rows kept in memory; True if nothing is left waiting."""
        with self._lock:
            if not self._spill and not self._pending_feedback:
                return True
            try:
                self._transaction(lambda conn: None)
            except (sqlite3.Error, OSError, LedgerError) as exc:
                self._note_failure(exc)
                return False
            return True

    def reserve(
        self, amount_usd: float, cap_usd: float, *, since: datetime, tiers: Collection[str] | None = None
    ) -> Reservation | None:
        """Hold `amount_usd` if spend since `since` (in `tiers`, default all) plus live reservations
        plus this amount stays within `cap_usd`; None if it wouldn't, or if the ledger is unusable
        (a budget that can't be checked is treated as spent).

        Atomic across threads and processes: check and insert run in one BEGIN IMMEDIATE transaction.
        """
        for name, value in (("amount_usd", amount_usd), ("cap_usd", cap_usd)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        amount, cap = _to_nusd(amount_usd), _to_nusd(cap_usd)
        since_ts = _as_utc(since).timestamp()
        where, params = _tier_filter(tiers)

        def body(conn: sqlite3.Connection) -> int | None:
            now = time.time()
            conn.execute("DELETE FROM reservations WHERE created < ?", (now - self._stale_after_s,))
            spent = conn.execute(
                f"SELECT COALESCE(SUM(cost_nusd), 0) FROM attempts WHERE ts >= ?{where}", (since_ts, *params)
            ).fetchone()[0]
            held = conn.execute("SELECT COALESCE(SUM(amount_nusd), 0) FROM reservations").fetchone()[0]
            if spent + held + amount > cap:
                return None
            cursor = conn.execute(
                "INSERT INTO reservations (created, amount_nusd, pid) VALUES (?, ?, ?)", (now, amount, os.getpid())
            )
            return int(cursor.lastrowid or 0)

        with self._lock:
            try:
                reservation_id = self._transaction(body)
            except (sqlite3.Error, OSError, LedgerError) as exc:
                self._note_failure(exc)
                return None
        return None if reservation_id is None else Reservation(self, reservation_id, amount / NANO)

    def _commit_reservation(self, reservation_id: int, row: LedgerRow) -> int:
        row = _checked(row)

        def body(conn: sqlite3.Connection) -> int:
            row_id = int(conn.execute(_INSERT, _row_values(row)).lastrowid or 0)
            conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            return row_id

        with self._lock:
            try:
                return self._transaction(body)
            except (sqlite3.Error, OSError, LedgerError) as exc:
                # The reservation stays until it goes stale, so the budget errs on the safe side.
                self._note_failure(exc)
                self._keep(row)
                return 0

    def _release_reservation(self, reservation_id: int) -> None:
        with self._lock:
            try:
                self._transaction(lambda conn: conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,)))
            except (sqlite3.Error, OSError, LedgerError) as exc:
                self._note_failure(exc)  # it will go stale

    def mark_feedback(self, request_id: str, *, shown: bool | None = None, accepted: bool | None = None) -> None:
        """Record whether the request's answer (its last attempt) was shown / accepted."""
        request_id = _request_id_adapter.validate_python(request_id)
        if accepted and shown is None:
            shown = True  # accepting implies it was shown
        if shown is None and accepted is None:
            return
        with self._lock:
            kept = [i for i, row in enumerate(self._spill) if row.request_id == request_id]
            if kept:
                last = max(kept, key=lambda i: self._spill[i].attempt)
                row = self._spill[last]
                self._spill[last] = row.model_copy(update={
                    "shown": row.shown if shown is None else shown,
                    "accepted": row.accepted if accepted is None else accepted,
                })
                return
            try:
                self._transaction(lambda conn: _update_feedback(conn, request_id, shown, accepted))
            except (sqlite3.Error, OSError, LedgerError) as exc:
                self._note_failure(exc)
                old_shown, old_accepted = self._pending_feedback.get(request_id, (None, None))
                self._pending_feedback[request_id] = (
                    old_shown if shown is None else shown,
                    old_accepted if accepted is None else accepted,
                )

    # --- reads ---

    def _read(self, query: str, params: Collection[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            self.flush()
            try:
                return self._connection().execute(query, tuple(params)).fetchall()
            except (sqlite3.Error, OSError) as exc:
                self._note_failure(exc)
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc

    def spend_usd(self, since: datetime, tiers: Collection[str] | None = None) -> float:
        """Total cost of attempts since `since`, optionally only in `tiers`. Raises LedgerError if unreadable."""
        since_ts = _as_utc(since).timestamp()
        where, params = _tier_filter(tiers)
        (total,), = self._read(f"SELECT COALESCE(SUM(cost_nusd), 0) FROM attempts WHERE ts >= ?{where}",
                               (since_ts, *params))
        with self._lock:  # rows still waiting in memory count too
            total += sum(_to_nusd(r.cost_usd) for r in self._spill
                         if r.ts.timestamp() >= since_ts and (tiers is None or r.tier in tiers))
        return total / NANO

    def savings_usd(self, since: datetime) -> float:
        """What the frontier would have cost minus what was paid, since `since`."""
        since_ts = _as_utc(since).timestamp()
        (total,), = self._read("SELECT COALESCE(SUM(frontier_cost_nusd - cost_nusd), 0) FROM attempts WHERE ts >= ?",
                               (since_ts,))
        with self._lock:
            total += sum(_to_nusd(r.frontier_cost_usd) - _to_nusd(r.cost_usd) for r in self._spill
                         if r.ts.timestamp() >= since_ts)
        return total / NANO

    def spend_today_usd(self, tiers: Collection[str] | None = None) -> float:
        """Spend since UTC midnight (see the module docstring for why UTC)."""
        return self.spend_usd(utc_midnight(), tiers)

    def reserved_usd(self) -> float:
        """Budget held by live (not stale) reservations."""
        (total,), = self._read("SELECT COALESCE(SUM(amount_nusd), 0) FROM reservations WHERE created >= ?",
                               (time.time() - self._stale_after_s,))
        return total / NANO

    def rows(self, since: datetime | None = None) -> list[LedgerRow]:
        """Attempts in insertion order (since `since` if given), then any still kept in memory."""
        if since is None:
            found = self._read(f"{_SELECT} ORDER BY id", ())
            since_ts = -math.inf
        else:
            since_ts = _as_utc(since).timestamp()
            found = self._read(f"{_SELECT} WHERE ts >= ? ORDER BY id", (since_ts,))
        result = [_row_from_db(values) for values in found]
        with self._lock:
            result += [r for r in self._spill if r.ts.timestamp() >= since_ts]
        return result

    def summaries(self, since: datetime | None = None) -> list[AttemptSummary]:
        """What a report needs of each attempt, read without building full rows (fast on big ledgers)."""
        query = f"SELECT {', '.join(AttemptSummary._fields)} FROM attempts"
        if since is None:
            found, since_ts = self._read(f"{query} ORDER BY id", ()), -math.inf
        else:
            since_ts = _as_utc(since).timestamp()
            found = self._read(f"{query} WHERE ts >= ? ORDER BY id", (since_ts,))
        result = [AttemptSummary._make(values) for values in found]
        with self._lock:
            result += [AttemptSummary._make(_summary_values(r)) for r in self._spill if r.ts.timestamp() >= since_ts]
        return result

    def close(self) -> None:
        with self._lock:
            if not self.flush():
                log.error("Ledger %s: closing with %d rows that could not be stored.", self.path, len(self._spill))
            self._drop_connection()
            if self._journal is not None:
                self._journal.close()  # kept on disk if rows in it were never stored
                self._journal = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _journal_rows(path: Path) -> list[LedgerRow]:
    rows: list[LedgerRow] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            values = json.loads(line)
            values["reasons"] = [safe_reason(str(r)) for r in values.get("reasons", [])]
            rows.append(_checked(LedgerRow(**values)))
        except Exception:  # a line cut by the crash, or one that fails validation
            continue
    return rows


def _insert_missing(conn: sqlite3.Connection, rows: list[LedgerRow]) -> int:
    stored = 0
    for row in rows:
        exists = conn.execute("SELECT 1 FROM attempts WHERE request_id = ? AND attempt = ?",
                              (row.request_id, row.attempt)).fetchone()
        if exists is None:
            conn.execute(_INSERT, _row_values(row))
            stored += 1
    return stored


def _update_feedback(conn: sqlite3.Connection, request_id: str, shown: bool | None, accepted: bool | None) -> None:
    conn.execute(
        "UPDATE attempts SET shown = COALESCE(?, shown), accepted = COALESCE(?, accepted) WHERE id = "
        "(SELECT id FROM attempts WHERE request_id = ? ORDER BY attempt DESC, id DESC LIMIT 1)",
        (None if shown is None else int(shown), None if accepted is None else int(accepted), request_id),
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


__all__ = [
    "BACKENDS", "FAILURE_OUTCOMES", "LEDGER_FILENAME", "OUTCOMES", "SCHEMA_VERSION", "TASKS", "TIERS",
    "AttemptSummary", "Ledger", "LedgerError", "LedgerRow", "Price", "Reservation", "migrate", "safe_reason",
    "utc_midnight",
]
