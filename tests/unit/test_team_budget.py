"""The team budget in a real PostgreSQL server: developers in separate processes never
overshoot the cap together; without the database the local rules apply, and the user is told
once; routing sees the team's spend against its cap without waiting for the database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.ledger import Ledger, LedgerRow
from lsp_server.ledger.budget import hold_budget
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.budget import TeamBudget
from lsp_server.ledger.team.link import TeamLink
from lsp_server.ledger.team.shipper import Shipper
from lsp_server.ledger.units import utc_midnight
from lsp_server.routing.policy import LoadedPolicy, parse_policy
from lsp_server.routing.router import RouteRequest
from tests.postgres_server import free_port, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Caps:
    daily_usd: float | None = None
    team_daily_usd: float | None = None


def row(number: int, cost: float) -> LedgerRow:
    return LedgerRow(
        request_id=f"r-{number}",
        task="refactor",
        tier="frontier",
        backend="anthropic",
        model="claude-sonnet-4-6",
        cost_usd=cost,
    )


def test_concurrent_developers_never_exceed_the_team_cap(tmp_path: Path, team_settings: TeamLedgerSettings):
    cap, estimate = 0.40, 0.01
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.team_budget_client",
                team_settings.url or "",
                str(tmp_path / f"dev{i}.sqlite3"),
                f"dev{i}",
                "--cap",
                str(cap),
                "--estimate",
                str(estimate),
                "--calls",
                "25",
                "--seed",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
        for i in range(5)
    ]
    spent = refused = 0
    for client in clients:
        out, err = client.communicate(timeout=240)
        assert client.returncode == 0, err
        lines = out.split()
        assert lines[-1] == "done"
        spent += sum(int(cost) for word, cost in zip(lines, lines[1:]) if word == "ok")
        refused += lines.count("refused")
    assert spent <= round(cap * 1e9)
    assert refused > 0  # 125 calls of up to $0.01 against $0.40: the cap was reached
    assert spent > round((cap - 2 * estimate) * 1e9)  # and used: holds were given back as real costs
    budget = TeamBudget(team_settings)
    assert round(budget.spent_usd(utc_midnight()) * 1e9) == spent  # every hold settled to its row's cost
    budget.close()


def test_shipped_rows_are_not_counted_twice(tmp_path: Path, team_settings: TeamLedgerSettings):
    db = tmp_path / "ledger.sqlite3"
    ledger = Ledger(db)
    budget = TeamBudget(team_settings)
    fits, hold = hold_budget(ledger, budget, 0.05, Caps(team_daily_usd=1.0))
    assert fits and hold is not None
    hold.commit(row(1, 0.03))
    ledger.record(row(2, 0.02))  # paid without a team hold (the team ledger was down, say)
    budget.close()
    shipper = Shipper(db, team_settings)
    shipper.ship_now()
    shipper.close()
    budget = TeamBudget(team_settings)
    assert budget.spent_usd(utc_midnight()) == pytest.approx(0.05)  # 0.03 settled + 0.02 shipped, once each
    budget.close()
    ledger.close()


def test_released_holds_free_the_budget(tmp_path: Path, team_settings: TeamLedgerSettings):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    budget = TeamBudget(team_settings)
    fits, hold = hold_budget(ledger, budget, 0.6, Caps(team_daily_usd=1.0))
    assert fits and hold is not None
    assert hold_budget(ledger, budget, 0.6, Caps(team_daily_usd=1.0)) == (False, None)
    hold.release()
    budget.close()  # the release runs on the budget's own thread; close waits for it
    budget = TeamBudget(team_settings)
    fits, again = hold_budget(ledger, budget, 0.6, Caps(team_daily_usd=1.0))
    assert fits and again is not None
    budget.close()
    ledger.close()


def test_a_personal_cap_applies_as_well(tmp_path: Path, team_settings: TeamLedgerSettings):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    budget = TeamBudget(team_settings)
    fits, hold = hold_budget(ledger, budget, 0.3, Caps(daily_usd=0.5, team_daily_usd=10.0))
    assert fits and hold is not None and hold.local is not None and hold.remote is not None
    hold.commit(row(1, 0.3))
    # The team has room; this developer's own cap does not.
    assert hold_budget(ledger, budget, 0.3, Caps(daily_usd=0.5, team_daily_usd=10.0)) == (False, None)
    budget.close()
    budget = TeamBudget(team_settings)
    assert budget.spent_usd(utc_midnight()) == pytest.approx(0.3)  # the refused call's team hold was released
    budget.close()
    ledger.close()


def test_unreachable_team_ledger_falls_back_to_local_rules_and_tells_once(tmp_path: Path):
    told: list[str] = []
    now = [100.0]
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    budget = TeamBudget(
        TeamLedgerSettings(url=f"postgresql://x:pw@127.0.0.1:{free_port()}/team", connect_timeout_s=1),
        on_unreachable=told.append,
        retry_after_s=30,
        clock=lambda: now[0],
    )
    caps = Caps(team_daily_usd=0.10)
    fits, hold = hold_budget(ledger, budget, 0.06, caps)
    assert fits and hold is not None and hold.remote is None and hold.local is not None  # local rules
    hold.commit(row(1, 0.06))
    # The team cap still bounds this developer alone: 0.06 + 0.06 > 0.10.
    assert hold_budget(ledger, budget, 0.06, caps) == (False, None)
    now[0] += 10  # within retry_after_s: no new connection attempt, no new notice
    assert hold_budget(ledger, budget, 0.03, caps)[0] is True
    assert len(told) == 1 and "x@127.0.0.1" in told[0] and ":pw@" not in told[0]
    budget.close()
    ledger.close()


def test_no_team_ledger_configured_means_the_team_cap_is_checked_locally(tmp_path: Path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    fits, hold = hold_budget(ledger, None, 0.08, Caps(team_daily_usd=0.10))
    assert fits and hold is not None
    hold.commit(row(1, 0.08))
    assert hold_budget(ledger, None, 0.08, Caps(team_daily_usd=0.10)) == (False, None)
    assert hold_budget(ledger, None, 0.08, Caps()) == (True, None)  # no cap at all: nothing held
    ledger.close()


# --- the team's spend for routing (budget.soft_fraction) -----------------------------------------


def test_team_spend_for_routing_is_read_in_the_background_and_kept(team_settings: TeamLedgerSettings):
    clock = [0.0]
    other = TeamBudget(team_settings)  # another developer, holding $85 of the team's $100
    assert other.reserve(85.0, 100.0, utc_midnight()) is not None
    budget = TeamBudget(team_settings, refresh_after_s=30, clock=lambda: clock[0])
    try:
        assert budget.spent_today_usd() is None  # never read: unknown now, read on the worker thread
        assert wait_until(lambda: budget.spent_today_usd() is not None, timeout=30)
        assert budget.spent_today_usd() == pytest.approx(85.0)
        assert other.reserve(5.0, 100.0, utc_midnight()) is not None
        assert budget.spent_today_usd() == pytest.approx(85.0)  # fresh enough: not read again
        clock[0] += 31
        assert budget.spent_today_usd() == pytest.approx(85.0)  # stale: answered at once, read again behind
        assert wait_until(lambda: budget.spent_today_usd() == pytest.approx(90.0), timeout=30)
        # Its own reservation updates the figure without another read.
        assert budget.reserve(1.0, 100.0, utc_midnight()) is not None
        assert budget.spent_today_usd() == pytest.approx(91.0)
    finally:
        budget.close()
        other.close()


def test_team_spend_never_waits_for_the_database(team_settings: TeamLedgerSettings):
    """A decision asks while the budget's connection is busy (a slow network call): the answer
    comes from what is known, without taking the connection's lock."""
    budget = TeamBudget(team_settings)
    budget.spent_usd(utc_midnight())
    answers: list[float | None] = []
    with budget._lock:  # what a reservation on another thread holds during its round trip
        asking = threading.Thread(target=lambda: answers.append(budget.spent_today_usd()))
        asking.start()
        asking.join(timeout=30)  # a hang guard, not a speed bound
        assert not asking.is_alive()
    assert answers == [0.0]
    budget.close()


def test_team_spend_is_unknown_while_the_team_ledger_is_out_of_reach():
    told: list[str] = []
    budget = TeamBudget(
        TeamLedgerSettings(url=f"postgresql://x:pw@127.0.0.1:{free_port()}/team", connect_timeout_s=1),
        on_unreachable=told.append,
    )
    assert budget.spent_today_usd() is None
    assert wait_until(lambda: bool(told), timeout=30)  # the background read failed, and said so once
    assert budget.spent_today_usd() is None  # the local rules apply
    assert ":pw@" not in told[0]
    budget.close()


def test_the_engine_routes_on_the_teams_spend(tmp_path: Path, team_settings: TeamLedgerSettings, tiny_model_path: Path):
    """The whole team near its cap sends a developer's paid work local first, though this
    developer spent nothing today."""
    policy = parse_policy(
        (PROJECT_ROOT / "examples" / "policy.toml").read_text().replace("daily_usd = 5.0", "team_daily_usd = 100.0")
    )
    other = TeamBudget(team_settings)
    assert other.reserve(85.0, 100.0, utc_midnight()) is not None
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    engine = Engine(
        ServerConfig(model=str(tiny_model_path)), policy=LoadedPolicy(policy, "builtin", None), ledger=ledger
    )
    engine.sink.team = TeamLink(None, TeamBudget(team_settings))
    request = RouteRequest(task="refactor", text="def f():\n    return 1\n", path="src/auth/x.py")
    try:
        first = engine.decide(request)  # the team's spend is not known yet: this developer's $0 counts
        assert (first.tier, first.escalate_to) == ("frontier", None)
        assert wait_until(lambda: engine.sink.team_spend_today_usd() is not None, timeout=30)
        decision = engine.decide(request)
        assert (decision.tier, decision.escalate_to) == ("local", "frontier")
        assert any("USD 85.00 of 100.00 spent by the team today" in r for r in decision.reasons)
    finally:
        engine.close()
        ledger.close()
        other.close()
