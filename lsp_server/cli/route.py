"""`ninetyten route`: where a request would go, and why (no model is called)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lsp_server.cli.common import (
    EXIT_FAILURE,
    add_policy_option,
    load_policy_here,
)


def register(commands: Any) -> None:
    route = commands.add_parser(
        "route",
        help="show where a request would go, and why (no model is called)",
        description="Print the routing decision for a request: tier, backend, model, escalation target, "
        "sensitivity, risk and the reasons. Nothing is sent anywhere; the content is never printed.",
    )
    route.add_argument("--task", required=True, choices=["completion", "explain", "refactor", "ask", "commit_message"])
    route.add_argument("--path", metavar="P", help="workspace-relative path the content belongs to (default: FILE)")
    route.add_argument("--auto-apply", action="store_true", help="the result would be applied without review")
    route.add_argument("--latency", choices=["interactive", "background"])
    route.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    route.add_argument("file", nargs="?", metavar="FILE|-", help="the content (default: none; - reads stdin)")
    add_policy_option(route)


def run(args: argparse.Namespace) -> int:
    from lsp_server.routing.router import RouteRequest, decide

    loaded = load_policy_here(args)
    if loaded is None:
        return EXIT_FAILURE
    text = ""
    if args.file == "-":
        text = sys.stdin.read()
    elif args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            print(f"ninetyten: cannot read {args.file}: {error}", file=sys.stderr)
            return EXIT_FAILURE
    path = args.path or (args.file if args.file and args.file != "-" else None)
    spend = 0.0
    # No network here: a team cap counts this machine's spend (the local rules).
    if loaded.policy.budget.daily_usd is not None or loaded.policy.budget.team_daily_usd is not None:
        from lsp_server.ledger import Ledger, utc_midnight

        spend = Ledger().spend_usd(utc_midnight())
    decision = decide(
        loaded.policy,
        RouteRequest(task=args.task, text=text, path=path, auto_apply=args.auto_apply, latency=args.latency),
        spend_today_usd=spend,
    )
    if args.json:
        print(decision.model_dump_json(indent=2))
        return 0
    print(f"tier        {decision.tier} ({decision.backend}, {decision.model})")
    print(f"escalate to {decision.escalate_to or '-'}")
    print(
        f"sensitivity {decision.sensitivity}"
        + (f" ({', '.join(decision.sensitivity_rules)})" if decision.sensitivity_rules else "")
    )
    print(f"risk        {decision.risk}    latency {decision.latency}")
    if decision.blocked:
        print("BLOCKED     the policy refuses this request")
    trust = {"approved": ", approved", "untrusted": ", not trusted"}.get(loaded.trust, "")
    print(f"policy      {decision.policy_hash} ({loaded.path or 'built-in default'}{trust})")
    for item in loaded.ignored if loaded.trust == "untrusted" else ():
        print(f"  ignored until approved: {item.key}")
    for reason in decision.reasons:
        print(f"  - {reason}")
    return 0
