"""`ninetyten eval completion --suite lines|crossfile`: the pipeline on real code.

No model-written program runs in these suites, so no sandbox is needed (see eval/line_eval.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from lsp_server.cli.common import EXIT_FAILURE, EXIT_USAGE, configure_logging, load_config, load_policy_here
from lsp_server.cli.eval_output import emit, progress_bar


def cmd_lines(args: argparse.Namespace) -> int:
    from lsp_server.eval.line_eval import LineEvalOptions, run_line_eval
    from lsp_server.eval.runner import CompletionRunner
    from lsp_server.eval.tables import print_lines

    configure_logging(args.verbose)
    if args.limit < 0:
        print("ninetyten: --limit must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    if args.tier != "local":
        print(f"ninetyten: --suite {args.suite} runs on the local tier only", file=sys.stderr)
        return EXIT_USAGE
    loaded = load_policy_here(args)
    if loaded is None:
        return EXIT_FAILURE
    config = load_config(args.config)
    given = json.loads(args.config) if args.config else {}
    if "time_limit_ms" not in (given.get("completion") or {}):
        # Quality, not speed, is measured here (bench/ measures latency): a busy machine's
        # time box must not decide what the model writes.
        config = config.merged({"completion": {"time_limit_ms": 600_000}})
    options = LineEvalOptions(
        suite=args.suite, limit=args.limit or None, seed=args.seed, raw=not args.no_raw, split=args.split
    )
    runner = CompletionRunner(config, loaded, tier="local", model=args.model, progress=True)

    async def main():
        try:
            with progress_bar(not args.json) as progress:
                return await run_line_eval(options, runner, progress)
        finally:
            await runner.aclose()

    report, outcomes = asyncio.run(main())
    name = f"completion_{args.suite}" + ("_dev" if args.split == "dev" else "")
    emit(report, outcomes, out=args.out, name=name, outcomes_name=f"{name}_tasks", as_json=args.json, show=print_lines)
    return 0
