"""`ninetyten policy check|show|trust|untrust`: the policy that applies here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lsp_server.cli.common import (
    EXIT_FAILURE,
    add_policy_option,
    load_policy_here,
)


def register(commands: Any) -> None:
    policy = commands.add_parser(
        "policy",
        help="check, show, trust or untrust the policy that applies here",
        description="check: validate the policy that applies; show: print the policy in force as JSON (its trust "
        "state on stderr); trust: show what a repository's .ninetyten/policy.toml would be allowed to do and "
        "approve that file as it is now; untrust: withdraw the approval.",
    )
    policy.add_argument("action", choices=["check", "show", "trust", "untrust"])
    policy.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="trust/untrust: a repository policy file or its repository (default: here)",
    )
    policy.add_argument("--yes", action="store_true", help="trust: approve without asking")
    add_policy_option(policy)


def run(args: argparse.Namespace) -> int:
    if args.action in ("trust", "untrust"):
        return _policy_trust(args)
    loaded = load_policy_here(args, quiet=True)
    if loaded is None:
        return EXIT_FAILURE
    from lsp_server.routing.policy_trust import trust_summary

    if args.action == "check":
        print(f"ok: {loaded.path or 'built-in default'} (policy {loaded.digest}, from {loaded.source})")
        for line in trust_summary(loaded):
            print(f"  {line}")
    else:
        for line in trust_summary(loaded):  # stderr: stdout stays one JSON object for scripts
            print(f"# {line}", file=sys.stderr)
        print(json.dumps(loaded.policy.model_dump(mode="json"), indent=2))
    return 0


def _repository_policy_path(given: str | None) -> Path:
    from lsp_server.routing.policy import WORKSPACE_POLICY

    path = Path(given) if given else Path.cwd()
    return path / WORKSPACE_POLICY if path.is_dir() else path


def _policy_trust(args: argparse.Namespace) -> int:
    """`policy trust`: show what approving would allow, then record it; `policy untrust`."""
    from lsp_server.routing.policy import PolicyError
    from lsp_server.routing.policy_trust import TrustStore, approve_policy, load_workspace_policy

    path = _repository_policy_path(args.path)
    if args.action == "untrust":
        removed = TrustStore().revoke(path)
        print(f"{'no longer trusted' if removed else 'was not trusted'}: {path}")
        return 0
    if not path.is_file():
        print(f"ninetyten: no repository policy at {path}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        current = load_workspace_policy(path)
    except PolicyError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    sha = current.sha256 or ""
    under = f"your policy {current.base}" if current.base else "the built-in default (everything local)"
    if current.trust == "approved":
        print(f"already trusted: {path} (sha256 {sha[:12]})")
        return 0
    if not current.ignored:
        print(f"nothing to approve: {path} only makes {under} stricter, and that applies without approval")
        return 0
    print(f"{path} (sha256 {sha[:12]}) is laid over {under}.")
    print(f"Trusting it allows these {len(current.ignored)} setting(s), ignored until then:")
    for item in current.ignored:
        print(f"  {item.key} = {item.value}")
        print(f"      {item.reason}")
    if not args.yes:
        if not sys.stdin.isatty():
            print("ninetyten: not trusted; run again with --yes to trust this file as it is now", file=sys.stderr)
            return EXIT_FAILURE
        answer = input("Trust this file as it is now? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("not trusted")
            return EXIT_FAILURE
    try:
        _approved, approval = approve_policy(path, expected_sha256=sha)
    except PolicyError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"trusted: {approval.path} (sha256 {approval.sha256[:12]}); any change to the file needs a new approval")
    return 0
