"""An inline completion from decision to text: local first, escalated only when allowed.

The completion feature supplies the prompts (a `CompletionJob`); this module decides,
runs, escalates and records. Escalation is a step that returns what it did
(`Escalation`), it changes nothing it is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsp_server.backends.base import BackendError, CancelToken, ChatMessage, Usage
from lsp_server.engine.jobs import CompletionJob
from lsp_server.engine.request_ids import new_request_id
from lsp_server.engine.results import Attempt, CompletionResult
from lsp_server.routing.escalation import completion_confident
from lsp_server.routing.router import Decision, RouteRequest, check_egress, decide, redact_for
from lsp_server.sensitivity.findings import SensitivityReport
from lsp_server.tiers import LOCAL

if TYPE_CHECKING:
    from lsp_server.engine.core import Engine


class _NoScan:
    """Stands in for the scanner when a decision cannot send anything out."""

    def scan(self, text: str, path: str | None = None) -> SensitivityReport:
        return SensitivityReport(())

    def scan_paths(self, text: str, paths):
        return {path: self.scan(text, path) for path in paths}


NO_SCAN = _NoScan()

# Speculative completions never leave the machine and are not requests yet.
LOCAL_ONLY = Decision(
    task="completion",
    tier=LOCAL,
    backend="llama_cpp",
    model="local",
    reasons=["speculative: prepared locally for after an accept"],
)


@dataclass(frozen=True)
class Escalation:
    """What asking a stronger tier gave: its text (None when it could not or might not) and its attempt."""

    text: str | None
    attempt: Attempt | None = None


def completion_decision(engine: Engine, job: CompletionJob) -> Decision:
    policy = engine.policy
    quick = decide(
        policy,
        RouteRequest(task="completion", path=job.path),
        NO_SCAN,  # type: ignore[arg-type]
        unavailable=engine.state.unavailable(),
    )
    if quick.tier == LOCAL and quick.escalate_to is None:
        return quick  # nothing can leave the machine: skip the content scan
    return engine.decide(RouteRequest(task="completion", text=job.route_window(), path=job.path))


async def complete(
    engine: Engine, job: CompletionJob, cancel: CancelToken | None = None, *, speculative: bool = False
) -> CompletionResult:
    """A speculative completion (prepared before anyone asked) stays local and writes no
    ledger row; the row is written when it is served from the cache."""
    started = time.perf_counter()
    request_id = new_request_id()
    # The decision needs the content only when it could leave the machine.
    decision = LOCAL_ONLY if speculative else completion_decision(engine, job)
    waited_ms = 0.0
    local = engine.local
    try:
        await engine.wait_ready()
        waited_ms = (time.perf_counter() - started) * 1000.0
        outcome = await job.run_local(cancel)
    except asyncio.CancelledError:
        # $/cancelRequest: the attempt still gets its row, with what it had done.
        done = cancel.generation if cancel is not None else None
        if not speculative:
            engine.settle(
                request_id,
                1,
                "completion",
                Attempt(
                    LOCAL,
                    local.name,
                    local.model_name,
                    "cancelled",
                    done.usage if done is not None else Usage(),
                    (time.perf_counter() - started) * 1000.0,
                ),
                decision,
            )
        raise
    except (BackendError, OSError) as error:
        # The engine died under this request, or refused it: the failure gets its row too.
        if not speculative:
            engine.settle(
                request_id, 1, "completion", engine.failed_attempt(LOCAL, error, started, local=local), decision
            )
        raise
    generation = outcome.generation
    text = outcome.text
    attempt = Attempt(
        LOCAL,
        local.name,
        local.model_name,
        "cancelled" if generation.stop_reason == "cancelled" else "ok",
        generation.usage,
        (time.perf_counter() - started) * 1000.0,
    )
    escalation = engine.policy.escalation
    escalated = low_confidence = False
    target = decision.escalate_to
    if (
        text is not None
        and target
        and not completion_confident(
            generation.mean_logprob,
            escalation.completion_min_mean_logprob,
            token_logprobs=generation.token_logprobs,
            min_token_threshold=escalation.completion_min_token_logprob,
        )
    ):
        engine.settle(
            request_id,
            1,
            "completion",
            dataclasses.replace(attempt, outcome="escalated", escalation_reason="low_confidence"),
            decision,
        )
        remote = await escalate_completion(engine, job, decision, request_id)
        if remote.text is not None:
            text, escalated = remote.text, True
        else:
            low_confidence = True
    elif not speculative:
        engine.settle(request_id, 1, "completion", attempt, decision)
    backend = engine.state.remote.get(target) if escalated and target is not None else None
    return CompletionResult(
        text=text,
        tier=target if escalated and target is not None else LOCAL,
        backend=backend.name if backend else local.name,
        model=backend.model if backend else local.model_name,
        usage=generation.usage,
        stop_reason=generation.stop_reason,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        mean_logprob=generation.mean_logprob,
        min_logprob=generation.min_logprob,
        prompt_mode=outcome.mode,
        extra={"build_ms": outcome.build_ms, "waited_for_model_ms": waited_ms},
        escalated=escalated,
        low_confidence=low_confidence,
        request_id=request_id,
        alternatives=[] if escalated else list(outcome.alternatives),
    )


def cached_completion(
    engine: Engine, path: str, text: str, started: float, *, typed: int = 0, alternatives: tuple[str, ...] = ()
) -> CompletionResult:
    """A suggestion served from the cache: no model ran, but it is a request like any other."""
    request_id = new_request_id()
    decision = decide(
        engine.policy,
        RouteRequest(task="completion", path=path),
        NO_SCAN,  # type: ignore[arg-type]
        unavailable=engine.state.unavailable(),
    )
    latency_ms = (time.perf_counter() - started) * 1000.0
    model = engine.local.model_name
    engine.settle(request_id, 1, "completion", Attempt(LOCAL, "cache", model, "ok", Usage(), latency_ms), decision)
    return CompletionResult(
        text=text,
        tier=LOCAL,
        backend="cache",
        model=model,
        usage=Usage(),
        stop_reason="cache",
        latency_ms=latency_ms,
        prompt_mode="cache",
        extra={"typed_through": float(typed)},
        request_id=request_id,
        alternatives=list(alternatives),
    )


async def escalate_completion(engine: Engine, job: CompletionJob, decision: Decision, request_id: str) -> Escalation:
    """Ask the decision's stronger tier for the text at the cursor (the attempt is number 2)."""
    target = decision.escalate_to
    assert target is not None
    prompt = job.remote_prompt(target)
    messages: list[ChatMessage] = prompt.messages
    if prompt.withheld is not None:  # the remote attempt's row says what of the context stayed home
        decision = decision.model_copy(update={"reasons": [*decision.reasons, prompt.withheld]})
    egress = check_egress(engine.policy, messages[-1].content, job.path, target, engine.state.scanner)
    if not egress.allowed:
        return Escalation(None)
    if egress.redact or decision.redact:
        messages = [ChatMessage(m.role, redact_for(engine.state.scanner, m.content, [job.path])) for m in messages]
    max_tokens = engine.config.completion.max_tokens
    fits, reservation = await engine.reserve_budget(target, messages, max_tokens)
    if not fits:
        return Escalation(None)
    started = time.perf_counter()
    try:
        generation, attempt = await engine.chat_on(target, messages, max_tokens, None)
    except (BackendError, OSError) as error:
        failed = engine.failed_attempt(target, error, started)
        engine.settle(request_id, 2, "completion", failed, decision, reservation)
        return Escalation(None, failed)
    engine.settle(request_id, 2, "completion", attempt, decision, reservation)
    return Escalation(generation.text.strip("\n") or None, attempt)
