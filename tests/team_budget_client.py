"""One developer's process making paid calls against the team budget, for the concurrency test.

    python -m tests.team_budget_client URL LEDGER TAG --cap USD --estimate USD --calls N --seed S

Each call holds its estimate (team cap and, when given, a personal cap), "spends" a random
part of it, and records the row through the hold, the way the engine does. Prints one line
per call: `ok <cost in nano-dollars>` or `refused`; then `done`.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from lsp_server.ledger import Ledger, LedgerRow
from lsp_server.ledger.budget import hold_budget
from lsp_server.ledger.settings import TeamLedgerSettings
from lsp_server.ledger.team.budget import TeamBudget


@dataclass(frozen=True)
class Caps:
    daily_usd: float | None
    team_daily_usd: float | None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("ledger")
    parser.add_argument("tag")
    parser.add_argument("--cap", type=float, required=True)
    parser.add_argument("--estimate", type=float, required=True)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    ledger = Ledger(Path(args.ledger))
    team = TeamBudget(TeamLedgerSettings(url=args.url))
    for number in range(args.calls):
        fits, hold = hold_budget(ledger, team, args.estimate, Caps(None, args.cap))
        if not fits or hold is None:
            print("refused", flush=True)
            continue
        cost = round(args.estimate * rng.uniform(0.5, 1.0), 9)
        hold.commit(
            LedgerRow(
                request_id=f"{args.tag}-{number}",
                task="refactor",
                tier="frontier",
                backend="anthropic",
                model="claude-sonnet-4-6",
                cost_usd=cost,
            )
        )
        print(f"ok {round(cost * 1e9)}", flush=True)
    team.close()  # settles what is still queued
    ledger.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
