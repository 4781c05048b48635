"""`ninetyten eval commit`: commit subjects scored against the diff's facts and the truth.

Each case (see `commit_cases.py`) becomes a real git repository in a temporary directory:
the first commit, then the change staged. The commit message is written the way the git hook
writes it (`explain.staged_commit_message`) twice in the same run, with one engine:

* `before` — the pipeline without facts: the prompt has only the diff and the model's subject
  is kept as it comes (made well-formed, not checked);
* `after`  — the grounded pipeline: the prompt carries the facts and the subject is checked
  against them (kept, type corrected, or replaced by the factual subject).

Two more rows need no extra model call: `model` is the model's own subject in the grounded
run (the prompt with facts, before the check), `facts` is the factual subject alone.

A subject is scored on
* `names only diff` — every file and symbol it names is in the diff (`ungrounded_names`);
* `names the change` — it names at least one changed file, symbol or dependency (`anchored`);
* `grounded` — both: what the issue's target counts;
* `mentions target` — it names what the case really changed (the truth the case was built
  with, not the facts: a check the subject checker cannot grade itself on);
* `type fits` — its conventional type is one the case's kind allows;
* `refuted` — it claims what the facts refute ("add total" when total already existed);
* `well-formed` — conventional, at most 72 characters.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.eval.commit_cases import KINDS, CommitCase, build_cases
from lsp_server.eval.completion_eval import Progress, _no_progress
from lsp_server.eval.metrics import percentile
from lsp_server.eval.runner import EvalError, model_label
from lsp_server.explain.commit_message import check_commit_message
from lsp_server.explain.diff import parse_diff, staged_diff
from lsp_server.explain.facts import (
    ChangeFacts,
    GitTexts,
    anchored,
    contradictions,
    extract_facts,
    factual_subject,
    ungrounded_names,
)
from lsp_server.explain.staged import staged_commit_message
from lsp_server.routing.policy import LoadedPolicy, Rule
from lsp_server.tiers import TierName

EVAL_DEADLINE_MS = 600_000
CommitVariant = Literal["before", "model", "after", "facts"]
VARIANTS: tuple[CommitVariant, ...] = ("before", "model", "after", "facts")
_CONVENTIONAL = re.compile(r"^(?P<type>[a-z]+)(?:\([^)]*\))?!?:\s")


class CommitOutcome(BaseModel):
    case_id: str
    kind: str
    variant: CommitVariant
    subject: str
    message: str = ""
    names_only_diff: bool
    names_change: bool
    grounded: bool
    mentions_target: bool
    type_fits: bool
    refuted: bool
    well_formed: bool
    ungrounded: list[str] = Field(default_factory=list)
    reason: str = Field("", description="after: what the check did (ok, ungrounded, vague, contradicted, empty)")
    latency_ms: float | None = None


class CommitSummary(BaseModel):
    variant: CommitVariant
    cases: int
    grounded: float
    names_only_diff: float
    names_change: float
    mentions_target: float
    type_fits: float
    refuted: float
    well_formed: float
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


class CommitReport(BaseModel):
    command: Literal["commit"] = "commit"
    model: str
    tier: str
    cases: int
    seed: int
    kinds: dict[str, int]
    summaries: list[CommitSummary]
    model_subject_kept: float = Field(description="after: share of cases whose subject is the model's own")
    reasons: dict[str, int] = Field(description="after: what the check did, by count")
    machine: str
    wall_s: float

    def summary(self, variant: CommitVariant) -> CommitSummary | None:
        return next((s for s in self.summaries if s.variant == variant), None)


@dataclass(frozen=True)
class CommitOptions:
    limit: int = 36
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    baseline: bool = True  # also run the pipeline without facts


# --------------------------------------------------------------------------- scoring


def _mentions(subject: str, target: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(target.lower())}(?![\w])", subject.lower()) is not None


def score(
    case: CommitCase,
    facts: ChangeFacts,
    variant: CommitVariant,
    message: str,
    *,
    latency_ms: float | None = None,
    reason: str = "",
) -> CommitOutcome:
    subject = message.strip().split("\n", 1)[0].strip()
    missing = ungrounded_names(subject, facts)
    named = anchored(subject, facts) if subject else False
    m = _CONVENTIONAL.match(subject)
    return CommitOutcome(
        case_id=case.id,
        kind=case.kind,
        variant=variant,
        subject=subject,
        message=message.strip(),
        names_only_diff=not missing and bool(subject),
        names_change=named,
        grounded=not missing and named,
        mentions_target=any(_mentions(subject, t) for t in case.targets),
        type_fits=bool(m) and m["type"] in case.types,  # type: ignore[index]
        refuted=bool(contradictions(subject, facts)),
        well_formed=bool(subject) and not check_commit_message(subject),
        ungrounded=missing,
        reason=reason,
        latency_ms=latency_ms,
    )


def summarise(outcomes: Sequence[CommitOutcome]) -> list[CommitSummary]:
    out = []
    for variant in VARIANTS:
        rows = [o for o in outcomes if o.variant == variant]
        if not rows:
            continue
        n = len(rows)

        def rate(attr: str) -> float:
            return round(sum(1 for o in rows if getattr(o, attr)) / n, 4)  # noqa: B023 - used at once

        latencies = [o.latency_ms for o in rows if o.latency_ms is not None]
        out.append(
            CommitSummary(
                variant=variant,
                cases=n,
                grounded=rate("grounded"),
                names_only_diff=rate("names_only_diff"),
                names_change=rate("names_change"),
                mentions_target=rate("mentions_target"),
                type_fits=rate("type_fits"),
                refuted=rate("refuted"),
                well_formed=rate("well_formed"),
                latency_p50_ms=percentile(latencies, 50) if latencies else None,
                latency_p95_ms=percentile(latencies, 95) if latencies else None,
            )
        )
    return out


# --------------------------------------------------------------------------- the repositories


def _git_env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {
        **base,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
        "GIT_AUTHOR_NAME": "eval",
        "GIT_AUTHOR_EMAIL": "eval@example.com",
        "GIT_COMMITTER_NAME": "eval",
        "GIT_COMMITTER_EMAIL": "eval@example.com",
    }


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env=_git_env(), stdin=subprocess.DEVNULL
    )


def _write(repo: Path, files: Mapping[str, str | None]) -> None:
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def stage_case(case: CommitCase, repo: Path) -> None:
    """A repository at `repo` with the case's first commit made and its change staged."""
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q")
    _write(repo, case.before)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--no-verify", "-m", "initial import")
    _write(repo, case.after)
    _git(repo, "add", "-A")


def case_facts(repo: Path) -> ChangeFacts:
    with GitTexts.staged(repo) as texts:
        return extract_facts(parse_diff(staged_diff(repo)), texts)


# --------------------------------------------------------------------------- the run


async def _timed(coro):
    started = time.perf_counter()
    result = await coro
    return result, (time.perf_counter() - started) * 1000.0


async def run_case(case: CommitCase, engine: Engine, *, baseline: bool = True) -> list[CommitOutcome]:
    with tempfile.TemporaryDirectory(prefix="ninetyten-commit-eval-") as tmp:
        repo = Path(tmp) / "repo"
        await asyncio.to_thread(stage_case, case, repo)
        before = None
        if baseline:
            before, before_ms = await _timed(staged_commit_message(repo, engine, grounded=False, latency=None))
        after, ms = await _timed(staged_commit_message(repo, engine, grounded=True, latency=None))
        # The grounded run extracts the staged change's facts the way `case_facts` does (the
        # same staged diff, whole texts and builder): scored against those, not extracted again.
        facts = after.facts if after.facts is not None else await asyncio.to_thread(case_facts, repo)
        out = [score(case, facts, "facts", factual_subject(facts))]
        if before is not None:
            out.append(score(case, facts, "before", before.commit_message or "", latency_ms=before_ms))
        check = after.subject_check
        out.append(score(case, facts, "model", after.model_message or ""))
        out.append(
            score(
                case,
                facts,
                "after",
                after.commit_message or "",
                latency_ms=ms,
                reason=check.reason if check is not None else "",
            )
        )
        return out


def commit_engine(
    config: ServerConfig, loaded: LoadedPolicy, *, tier: TierName = "local", model: str | None = None
) -> Engine:
    """An engine that writes every commit message and explanation on `tier`, with no ledger:
    an eval run never counts against a budget or a report."""
    if tier != "local":
        if loaded.policy.tier(tier) is None:
            raise EvalError(f"the policy has no tiers.{tier}; configure it (see `ninetyten policy show`)")
        if loaded.policy.offline:
            raise EvalError(f"the policy is offline: nothing may go to the {tier} tier")
    rule = Rule(name=f"eval: commit messages on {tier}", task=["commit_message", "explain"], route=tier)
    # The time box lifted: a busy machine must not cut the model's answer short (the eval
    # measures what the model writes; the hook's own budget is another matter).
    escalation = loaded.policy.escalation.model_copy(update={"deadline_ms": EVAL_DEADLINE_MS})
    forced = LoadedPolicy(
        loaded.policy.model_copy(update={"rules": [rule], "escalation": escalation}), loaded.source, loaded.path
    )
    return Engine(config, explicit_model=model, policy=forced, ledger=None)


async def run_commit_eval(
    options: CommitOptions,
    engine: Engine,
    *,
    tier: TierName = "local",
    machine: str = "",
    progress: Progress = _no_progress,
) -> tuple[CommitReport, list[CommitOutcome]]:
    started = time.perf_counter()
    cases = await asyncio.to_thread(build_cases, options.limit, options.seed, options.kinds)
    await engine.wait_ready()
    model = model_label(engine, tier)
    outcomes: list[CommitOutcome] = []
    progress("commits", 0, len(cases))
    for done, case in enumerate(cases, start=1):
        outcomes += await run_case(case, engine, baseline=options.baseline)
        progress("commits", done, len(cases))
    after = [o for o in outcomes if o.variant == "after"]
    reasons: dict[str, int] = {}
    for o in after:
        reasons[o.reason] = reasons.get(o.reason, 0) + 1
    kept = sum(1 for o in after if o.reason == "ok") / len(after) if after else 0.0
    kinds: dict[str, int] = {}
    for case in cases:
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
    report = CommitReport(
        model=model,
        tier=tier,
        cases=len(cases),
        seed=options.seed,
        kinds=kinds,
        summaries=summarise(outcomes),
        model_subject_kept=round(kept, 4),
        reasons=reasons,
        machine=machine,
        wall_s=round(time.perf_counter() - started, 1),
    )
    return report, outcomes
