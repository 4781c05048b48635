"""`ninetyten engine status|stop|reset`: the local engine process of this user."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lsp_server.engine_host.runtime import BadModels, running_engines, runtime_dir, stop_engines
from lsp_server.engine_host.status import query, status_lines


def register(commands: Any) -> None:
    engine = commands.add_parser(
        "engine",
        help="show, stop or reset the local engine process",
        description="The local model runs in an engine process shared by every editor window, the CLI and the "
        "git hook of this user (one per model). status: what runs, for which clients, and recent crashes; stop: "
        "end it (it starts again when needed); reset: forget the models marked bad after crashing it.",
    )
    engine.add_argument("action", choices=["status", "stop", "reset"])
    engine.add_argument("--json", action="store_true", help="status: one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.action == "status":
        if args.json:
            engines = running_engines()
            print(
                json.dumps(
                    {
                        "runtime_dir": str(runtime_dir()),
                        "engines": [{**e.model_dump(mode="json"), "details": query(e)} for e in engines],
                        "bad_models": [b.model_dump(mode="json") for b in BadModels().entries()],
                    },
                    indent=2,
                )
            )
        else:
            print("\n".join(status_lines()))
        return 0
    if args.action == "stop":
        stopped, left = stop_engines()
        print(f"stopped {stopped} engine(s)" + (f"; {left} still running" if left else ""))
        return 1 if left else 0
    removed = BadModels().clear()
    print(f"forgot {removed} model(s) marked bad")
    return 0
