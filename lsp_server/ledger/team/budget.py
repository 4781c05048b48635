"""The team budget: holds on `budget.team_daily_usd`, atomic across developers in PostgreSQL.

A paid call first holds its worst-case cost. In one transaction, under an advisory lock that
serialises every team member's reservations: today's team spend (settled holds, plus shipped
rows that no hold stands for, plus live holds) + this amount must stay within the cap, or
nothing is held. When the call's row is recorded, its hold is settled to the real cost and
tied to the row's stable id (so the shipped row is not counted twice); a hold that is
never settled (a crash) stops counting after `stale_after_s`, by which time its row has
usually been shipped.

Settling and releasing run on a thread of their own: the ledger thread never waits for the
network. When the database cannot be reached, `reserve` raises TeamLedgerError (the local
rules then apply, budget.py) and, for `retry_after_s`, raises at once instead of waiting
for another connect timeout on every paid call.

The router's soft limit (`budget.soft_fraction`: above that share of the cap, paid work goes
local first) needs today's team spend on every decision, so `spent_today_usd` answers from
the last figure read (by a reservation or a refresh), and refreshes it on that same thread
once it is older than `refresh_after_s`: a decision never waits for the network.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from lsp_server.ledger.errors import TeamLedgerError
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.identity import user_key
from lsp_server.ledger.team.pg import connect, describe, is_connection_error, scrub
from lsp_server.ledger.team.schema import SCHEMA, ensure_schema
from lsp_server.ledger.units import NANO, as_utc, to_nusd, utc_midnight

log = logging.getLogger(__name__)

_LOCK = "ninetyten.team_budget"
_SPENT = f"""
SELECT
  (SELECT COALESCE(SUM(amount_nusd), 0) FROM {SCHEMA}.budget_holds
     WHERE day = %(day)s AND (settled OR created >= now() - %(stale)s))
+ (SELECT COALESCE(SUM(a.cost_nusd), 0) FROM {SCHEMA}.attempts a
     WHERE a.ts >= %(start)s AND a.ts < %(end)s AND a.cost_nusd > 0
       AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.budget_holds h WHERE h.uid = a.uid))
"""


class TeamHold:
    """Budget held in the team ledger for one paid call."""

    def __init__(self, budget: TeamBudget, hold_id: int, amount_usd: float) -> None:
        self.id = hold_id
        self.amount_usd = amount_usd
        self._budget = budget
        self._done = False

    def settle(self, uid: str | None, cost_usd: float) -> None:
        if self._done:
            return
        self._done = True
        if uid is not None:  # without a row id the hold stays until it goes stale: on the safe side
            self._budget._later(self._settle, self.id, uid, to_nusd(cost_usd))

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._budget._later(self._release, self.id)

    @staticmethod
    def _settle(cur: Any, hold_id: int, uid: str, cost_nusd: int) -> None:
        cur.execute(
            f"UPDATE {SCHEMA}.budget_holds SET settled = true, amount_nusd = %s, uid = %s WHERE id = %s",
            (cost_nusd, uid, hold_id),
        )

    @staticmethod
    def _release(cur: Any, hold_id: int) -> None:
        cur.execute(f"DELETE FROM {SCHEMA}.budget_holds WHERE id = %s AND NOT settled", (hold_id,))


class TeamBudget:
    def __init__(
        self,
        settings: TeamLedgerSettings,
        *,
        on_unreachable: Callable[[str], None] | None = None,
        stale_after_s: float = 600.0,
        retry_after_s: float = 30.0,
        refresh_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], datetime] = utc_midnight,
    ) -> None:
        self.settings = settings
        self.target = describe(settings.url or "")
        self._on_unreachable = on_unreachable
        self._stale = timedelta(seconds=stale_after_s)
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._down_until: float | None = None
        self._down_reason = ""
        self._conn: Any = None
        self._user_key = ""
        self._lock = threading.Lock()  # one connection, used by the callers' threads and the worker
        self._jobs: queue.Queue[tuple[Callable[..., object], tuple[Any, ...]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._refresh_after_s = refresh_after_s
        self._today = today
        # Today's spend as last read: (the day it is for, when it was read, nano-dollars).
        self._spent: tuple[datetime, float, int] | None = None
        self._refresh_queued: float | None = None
        # Never held across network I/O (self._lock is): what a routing decision may take.
        self._quick_lock = threading.Lock()

    # --- connection ---

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            conn = connect(self.settings, role="budget")
            try:
                state = ensure_schema(conn, write=True)
                self._user_key = user_key(self.settings, state.pseudonym_key)
            except Exception:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _run(self, body: Callable[[Any], Any]) -> Any:
        """body(cursor) in one transaction; TeamLedgerError if the database fails."""
        with self._lock:
            now = self._clock()
            if self._down_until is not None and now < self._down_until:
                raise TeamLedgerError(self._down_reason)
            try:
                conn = self._connection()
                with conn.cursor() as cur:
                    result = body(cur)
                conn.commit()
            except Exception as error:
                self._drop(error)
                message = (
                    error
                    if isinstance(error, TeamLedgerError)
                    else TeamLedgerError(
                        f"the team ledger ({self.target}) failed: {scrub(str(error).strip(), self.settings.url or '')}"
                    )
                )
                if self._down_until is None and self._on_unreachable is not None:
                    self._on_unreachable(str(message))
                self._down_until, self._down_reason = now + self._retry_after_s, str(message)
                raise message from None
            if self._down_until is not None:
                log.warning("team ledger %s is reachable again; the team budget applies", self.target)
            self._down_until = None
            return result

    def _drop(self, error: BaseException) -> None:
        conn, broken = self._conn, is_connection_error(error)
        if conn is None:
            return
        try:
            if broken or conn.broken:
                conn.close()
            else:
                conn.rollback()
        except Exception:
            conn.close()
        if conn.closed:
            self._conn = None

    # --- holds ---

    def reserve(self, amount_usd: float, cap_usd: float, since: datetime) -> TeamHold | None:
        """Hold `amount_usd` against the team's cap for the UTC day starting at `since`; None
        when it does not fit. TeamLedgerError when the team ledger cannot be used."""
        amount, cap = to_nusd(amount_usd), to_nusd(cap_usd)
        start = as_utc(since)

        def body(cur: Any) -> int | None:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK,))
            # Stale holds (a crashed process's) and last week's settled ones stop mattering.
            cur.execute(
                f"DELETE FROM {SCHEMA}.budget_holds WHERE (NOT settled AND created < now() - %s) OR day < %s::date - 7",
                (self._stale, start.date()),
            )
            spent = self._refresh(cur, start)
            if spent + amount > cap:
                return None
            self._spent = (start, self._clock(), spent + amount)
            cur.execute(
                f"INSERT INTO {SCHEMA}.budget_holds (day, amount_nusd, user_key) VALUES (%s, %s, %s) RETURNING id",
                (start.date(), amount, self._user_key),
            )
            return int(cur.fetchone()[0])

        hold_id = self._run(body)
        return None if hold_id is None else TeamHold(self, hold_id, amount / NANO)

    def spent_usd(self, since: datetime) -> float:
        """Today's team spend as the cap sees it (settled and live holds, unheld shipped rows)."""
        return int(self._run(functools.partial(self._refresh, day=as_utc(since)))) / NANO

    def spent_today_usd(self) -> float | None:
        """Today's team spend as last read; None until it was read once today, or while the
        team ledger is out of reach (the local rules apply then). Never waits: when the figure
        is older than `refresh_after_s`, a refresh is queued on the worker thread."""
        today = self._today()
        known = self._spent
        with self._quick_lock:
            now = self._clock()
            stale = known is None or known[0] != today or now - known[1] >= self._refresh_after_s
            refresh = stale and (self._refresh_queued is None or now - self._refresh_queued >= self._refresh_after_s)
            if refresh:
                self._refresh_queued = now
        if refresh:
            self._later(self._refresh, today)
        if self._down_until is not None or known is None or known[0] != today:
            return None
        return known[2] / NANO

    def _refresh(self, cur: Any, day: datetime) -> int:
        """The team's spend on the UTC day starting at `day`, kept as the last figure read."""
        cur.execute(_SPENT, {"day": day.date(), "start": day, "end": day + timedelta(days=1), "stale": self._stale})
        spent = int(cur.fetchone()[0])
        self._spent = (day, self._clock(), spent)
        return spent

    # --- settling off the ledger thread ---

    def _later(self, action: Callable[..., object], *args: Any) -> None:
        """Run `action(cursor, *args)` on the worker thread; what it returns is dropped."""
        with self._quick_lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="ninetyten-team-budget", daemon=True)
                self._worker.start()
        self._jobs.put((action, args))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            action, args = job
            try:
                self._run(functools.partial(_call, action, args))
            except TeamLedgerError as error:
                # An unsettled hold stops counting when it goes stale; its row is counted once shipped.
                log.debug("team budget: %s", error)

    def close(self) -> None:
        worker = self._worker
        if worker is not None:
            self._jobs.put(None)
            worker.join(timeout=10)
            self._worker = None
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None


__all__ = ["TeamBudget", "TeamHold"]


def _call(action: Callable[..., object], args: tuple[Any, ...], cur: Any) -> None:
    action(cur, *args)
