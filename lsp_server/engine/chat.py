"""A chat task from decision to answer: each tier in turn, checked, escalated, recorded.

The loop is a few small steps, each returning what it found: where the content may go
(`gate`), whether the budget holds (`Engine.reserve_budget`), one attempt (`Engine.chat_on`),
and whether the answer passes its checks (`judge`). Reasons gathered on the way are added
to a copy of the decision, never to the caller's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsp_server.backends.base import BackendError, CancelToken, ChatMessage, Usage
from lsp_server.engine.jobs import ChatJob
from lsp_server.engine.request_ids import new_request_id
from lsp_server.engine.results import AssistResult, Attempt
from lsp_server.routing.escalation import verify
from lsp_server.routing.router import Decision, RouteRequest, check_egress, redact_for
from lsp_server.tiers import LOCAL, TierName

if TYPE_CHECKING:
    from lsp_server.engine.core import Engine


@dataclass(frozen=True)
class Gate:
    """What may go to a tier: the messages to send (redacted if need be), or a refusal."""

    messages: list[ChatMessage] | None  # None: nothing may go
    reasons: tuple[str, ...] = ()


def gate(engine: Engine, job: ChatJob, tier: TierName, messages: list[ChatMessage], decision: Decision) -> Gate:
    """The sensitivity gate, run again on exactly what would leave for `tier`."""
    policy = engine.policy
    if tier == LOCAL or policy.keeps_data_home(tier):
        return Gate(messages)
    scanner = engine.state.scanner
    egress = check_egress(
        policy,
        "\n".join(m.content for m in messages),
        job.path,
        tier,
        scanner,
        paths=job.paths,
        derived_from_kept_home=job.derived_from_kept_home,
    )
    if not egress.allowed:
        return Gate(None, egress.reasons)
    if egress.redact or decision.redact:
        paths = job.all_paths or (None,)
        messages = [ChatMessage(m.role, redact_for(scanner, m.content, paths)) for m in messages]
    return Gate(messages)


def judge(engine: Engine, job: ChatJob, raw: str, stop_reason: str) -> tuple[str | None, list[str]]:
    """The post-processed answer and the checks it fails (empty: a good answer)."""
    text = job.postprocess(raw) if stop_reason != "cancelled" else None
    failed = verify(
        text, engine.policy.escalation.verify, kind=job.kind, language=job.language, original_length=job.original_length
    )
    if job.extra_check is not None and text is not None:
        failed += job.extra_check(text)
    return text, failed


def blocked(engine: Engine, job: ChatJob, decision: Decision, request_id: str) -> AssistResult:
    attempt = Attempt(decision.tier, decision.backend, decision.model, "blocked", Usage(), 0.0)
    engine.settle(request_id, 1, job.task, attempt, decision)
    return AssistResult(None, decision, [attempt], request_id, error="blocked by policy: " + decision.reasons[-1])


async def run_chat(engine: Engine, job: ChatJob, cancel: CancelToken | None = None) -> AssistResult:
    """Any chat task: routed, verified, escalated (egress re-checked), recorded per attempt."""
    max_tokens = job.max_tokens or engine.config.assist.max_tokens
    request_id = new_request_id()
    messages = job.messages
    decision = engine.decide(
        RouteRequest(
            task=job.task,
            text="\n".join(m.content for m in messages),
            path=job.path,
            auto_apply=job.auto_apply,
            latency=job.latency,
            paths=job.paths,
            derived_from_kept_home=job.derived_from_kept_home,
        )
    )
    if decision.blocked:
        return blocked(engine, job, decision, request_id)
    sensitive_source = decision.sensitivity == "sensitive"
    policy = engine.policy
    deadline = time.monotonic() + policy.escalation.deadline_ms / 1000.0
    tiers: list[TierName] = [decision.tier] + ([decision.escalate_to] if decision.escalate_to else [])
    attempts: list[Attempt] = []
    best: str | None = None
    best_tier: TierName = LOCAL
    failed_checks: list[str] = []
    low_confidence = False
    current = messages
    index = 0

    def fall_back_local() -> None:
        if LOCAL not in tiers[index + 1 :] and best is None:
            tiers.append(LOCAL)

    while index < len(tiers) and len(attempts) < policy.escalation.max_attempts:
        tier = tiers[index]
        gated = gate(engine, job, tier, current, decision)
        if gated.messages is None:
            decision = decision.model_copy(update={"reasons": [*decision.reasons, *gated.reasons]})
            sensitive_source = True  # the answer stays the local one: made from what may not go
            break
        outgoing = gated.messages
        fits, reservation = await engine.reserve_budget(tier, outgoing, max_tokens)
        if not fits:
            decision = decision.model_copy(
                update={"reasons": [*decision.reasons, f"budget: the daily cap leaves no room for a {tier} call"]}
            )
            fall_back_local()
            index += 1
            continue
        started = time.perf_counter()
        remaining = max(deadline - time.monotonic(), 0.5)
        try:
            generation, attempt = await engine.chat_on(
                tier,
                outgoing,
                max_tokens,
                cancel,
                time_limit_s=remaining if tier == LOCAL else None,
                document=job.document if outgoing is messages else None,
            )
        except asyncio.CancelledError:
            attempts.append(
                Attempt(
                    tier,
                    decision.backend,
                    decision.model,
                    "cancelled",
                    Usage(),
                    (time.perf_counter() - started) * 1000.0,
                )
            )
            engine.settle(request_id, len(attempts), job.task, attempts[-1], decision, reservation)
            raise
        except (BackendError, OSError) as error:
            attempts.append(engine.failed_attempt(tier, error, started))
            engine.settle(request_id, len(attempts), job.task, attempts[-1], decision, reservation)
            if tier != LOCAL:
                fall_back_local()  # a remote failure falls back to the local model
            index += 1
            continue
        text, failed_checks = judge(engine, job, generation.text, generation.stop_reason)
        if text is not None and (best is None or not failed_checks):
            best, best_tier = text, tier
        has_next = index + 1 < len(tiers) and len(attempts) + 1 < policy.escalation.max_attempts
        if failed_checks and has_next and time.monotonic() < deadline:
            attempt = dataclasses.replace(
                attempt, outcome="escalated", escalation_reason="verify_failed:" + "+".join(failed_checks)
            )
            attempts.append(attempt)
            engine.settle(request_id, len(attempts), job.task, attempt, decision, reservation)
            current = job.retry(text or "", failed_checks)
            index += 1
            continue
        if failed_checks:
            attempt = dataclasses.replace(attempt, outcome="low_confidence")
            low_confidence = True
        attempts.append(attempt)
        engine.settle(request_id, len(attempts), job.task, attempt, decision, reservation)
        break
    if best is not None and failed_checks and attempts and attempts[-1].outcome != "low_confidence":
        low_confidence = True
    failure = None
    if best is None and attempts and all(a.outcome in ("failed", "cancelled") for a in attempts):
        kinds = ", ".join(f"{a.tier}: {a.error_kind or a.outcome}" for a in attempts)
        failure = f"no tier could answer ({kinds})"
    kept_home = (
        best is not None and (sensitive_source or job.derived_from_kept_home) and policy.keeps_data_home(best_tier)
    )
    return AssistResult(
        best, decision, attempts, request_id, low_confidence=low_confidence, error=failure, kept_home=kept_home
    )
