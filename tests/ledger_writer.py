"""A separate process that writes ledger rows as fast as it can, for crash and concurrency tests.

    python -m tests.ledger_writer DB TAG [--rows N] [--seconds S] [--reserve-every K]

Prints one line per row *after* `record()` (or a reservation's `commit()`) returned, so the
parent knows exactly which rows were committed when it sends SIGKILL:

    <row id> <request id>      committed
    spilled <request id>       the database was unusable and the row was kept in memory
    done <committed> <spilled> clean exit (after `Ledger.close()`)

Every `--reserve-every` rows goes through reserve() + commit() instead of record(), so a kill
can also land inside the two-statement transaction that turns a reservation into a row.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from lsp_server.ledger import Ledger, LedgerRow


def make_row(tag: str, number: int) -> LedgerRow:
    return LedgerRow(
        request_id=f"{tag}-{number}",
        task="commit_message",
        tier="local",
        backend="llama_cpp",
        model="tiny",
        prompt_tokens=number,
        completion_tokens=1,
        cost_usd=0.000001,
        frontier_cost_usd=0.00001,
        reasons=["writer test"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("tag")
    parser.add_argument("--rows", type=int, default=0, help="stop after N rows (0: no limit)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after S seconds (0: no limit)")
    parser.add_argument("--reserve-every", type=int, default=0)
    args = parser.parse_args(argv)

    ledger = Ledger(Path(args.db))
    out = sys.stdout
    deadline = time.monotonic() + args.seconds if args.seconds else None
    committed = spilled = 0
    number = 0
    while (not args.rows or number < args.rows) and (deadline is None or time.monotonic() < deadline):
        number += 1
        row = make_row(args.tag, number)
        if args.reserve_every and number % args.reserve_every == 0:
            reservation = ledger.reserve(0.000001, 1e6, since=datetime(2000, 1, 1, tzinfo=UTC))
            row_id = reservation.commit(row) if reservation is not None else 0
        else:
            row_id = ledger.record(row)
        if row_id > 0:
            committed += 1
            out.write(f"{row_id} {row.request_id}\n")
        else:
            spilled += 1
            out.write(f"spilled {row.request_id}\n")
        out.flush()
    ledger.close()
    out.write(f"done {committed} {spilled}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
