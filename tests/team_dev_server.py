"""A developer's long-running ninetyten process for the team ledger tests: it writes rows the
way the engine does (journal first, then the ledger thread) and ships them in the background.

    python -m tests.team_dev_server TAG [--seconds S] [--every-ms MS]

Reads its ledger and team ledger from the environment (NINETYTEN_HOME, XDG_CONFIG_HOME or
NINETYTEN_TEAM_LEDGER_URL). Prints `ready` once it takes SIGTERM. Every tenth request gets
feedback later. Stops after S seconds or on SIGTERM, flushing its rows; prints `done N` with
the number of rows it queued.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime, timezone

from lsp_server.ledger import Ledger, LedgerRow
from lsp_server.ledger.outlets import attach
from lsp_server.ledger.sink import LedgerSink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tag")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every-ms", type=float, default=5.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sink = LedgerSink(Ledger())
    attach(sink, workspace=None, notify=lambda message: print(f"notice {message}", file=sys.stderr, flush=True))
    print("ready", flush=True)
    number = 0
    deadline = time.monotonic() + args.seconds
    while not stop.is_set() and time.monotonic() < deadline:
        number += 1
        values = dict(
            request_id=f"{args.tag}-{number}",
            task="completion" if number % 3 else "explain",
            tier="local",
            backend="llama_cpp",
            model="gemma-3-270m",
            prompt_tokens=number % 997,
            completion_tokens=number % 13,
            latency_ms=float(number % 311),
            cost_usd=0.0,
            frontier_cost_usd=(number % 997) * 3e-6,
            frontier_price="reference-2026-03-21",
            ts=datetime.now(timezone.utc),
            reasons=["dev server"],
        )
        sink.put(lambda values=values: LedgerRow(**values), journal=values)
        if number % 10 == 0:
            request = f"{args.tag}-{number - 5}"
            sink.call(lambda ledger, request=request: ledger.mark_feedback(request, accepted=True))
        if number % 100 == 0:
            print(f"queued {number}", flush=True)
        stop.wait(args.every_ms / 1000)
    sink.close()
    sink.ledger.close()  # type: ignore[union-attr]
    print(f"done {number}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
