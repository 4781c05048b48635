"""The one place a request becomes an answer: policy, router, backends, tasks, ledger.

The LSP server, the CLI and the git hook all talk to an `Engine`; none of them knows
how a model runs or where a request goes.

Data flows one way: decide -> attempt on a tier -> check -> maybe escalate (after the
sensitivity gate runs again on what the escalation would send) -> ledger row per attempt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

from local_models import ResolvedModel, resolve_model

from lsp_server.backends.base import (
    BackendError,
    CancelToken,
    ChatMessage,
    ChatRequest,
    Generation,
    GenerationRequest,
    ProviderError,
    Usage,
)
from lsp_server.backends.llama_cpp.chat_template import stop_at_strings, stop_on_repetition
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings
from lsp_server.config import ServerConfig
from lsp_server.ledger import Ledger, LedgerError, LedgerRow, LedgerSink, Outcome, safe_reason, utc_midnight
from lsp_server.ledger.prices import Counterfactual, counterfactual
from lsp_server.ledger.reservations import BudgetHold
from lsp_server.routing.escalation import completion_confident, verify
from lsp_server.routing.policy import LatencyClass, LoadedPolicy, Policy, TaskType, TierName, load_policy
from lsp_server.routing.router import Decision, RouteRequest, check_egress, decide, redact_for
from lsp_server.routing.signals import estimate_tokens
from lsp_server.routing.runtime import PolicyState
from lsp_server.assist.prompts import AssistInput, messages_for
from lsp_server.assist.prompts import postprocess as assist_postprocess
from lsp_server.completion.task import CompletionTask
from lsp_server.engine.document import DocumentPrompt
from lsp_server.completion.prompt import CompletionInput, split_at_cursor

log = logging.getLogger(__name__)

@dataclass
class Attempt:
    """One try on one tier: what the ledger records, and what the client is told."""

    tier: TierName
    backend: str
    model: str
    outcome: Outcome
    usage: Usage
    latency_ms: float
    cost_usd: float = 0.0
    frontier_cost_usd: float = 0.0
    escalation_reason: str | None = None
    error_kind: str | None = None


@dataclass
class CompletionResult:
    """What an editor shows, plus where it came from; no LSP types here."""

    text: str | None
    tier: str
    backend: str
    model: str
    usage: Usage
    stop_reason: str
    latency_ms: float
    mean_logprob: float | None = None
    prompt_mode: str = "fim"
    extra: dict[str, float] = field(default_factory=dict)
    escalated: bool = False
    low_confidence: bool = False
    request_id: str = ""

    def summary(self) -> dict[str, object]:
        """The content-free description sent to clients and printed by the CLI."""
        return {
            "request_id": self.request_id,
            "tier": self.tier,
            "backend": self.backend,
            "model": self.model,
            "prompt_tokens": self.usage.prompt_tokens,
            "cached_prompt_tokens": self.usage.cached_prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "latency_ms": round(self.latency_ms, 1),
            "generation_ms": round(self.usage.generation_ms, 1),
            "stop_reason": self.stop_reason,
            "prompt_mode": self.prompt_mode,
            "mean_logprob": None if self.mean_logprob is None else round(self.mean_logprob, 4),
            "escalated": self.escalated,
            "low_confidence": self.low_confidence,
            **{key: round(value, 1) for key, value in self.extra.items()},
        }


@dataclass
class AssistResult:
    """The answer to explain / refactor / ask, with the decision and every attempt."""

    text: str | None
    decision: Decision
    attempts: list[Attempt]
    request_id: str
    low_confidence: bool = False
    error: str | None = None  # set when the policy refused the request
    # The answer was written at home from content that had to stay home: what is made from it
    # (a merge of explanations, a commit message) must stay home too.
    kept_home: bool = False

    @property
    def final(self) -> Attempt | None:
        served = [a for a in self.attempts if a.outcome in ("ok", "low_confidence")]
        return served[-1] if served else (self.attempts[-1] if self.attempts else None)

    def usage_summary(self) -> dict[str, object]:
        return {
            "prompt_tokens": sum(a.usage.prompt_tokens for a in self.attempts),
            "completion_tokens": sum(a.usage.completion_tokens for a in self.attempts),
            "latency_ms": round(sum(a.latency_ms for a in self.attempts), 1),
            "cost_usd": round(sum(a.cost_usd for a in self.attempts), 6),
            "attempts": [
                {"tier": a.tier, "model": a.model, "outcome": a.outcome, "escalation_reason": a.escalation_reason,
                 "error_kind": a.error_kind, "latency_ms": round(a.latency_ms, 1)}
                for a in self.attempts
            ],
        }

    def to_json(self) -> dict[str, object]:
        final = self.final
        return {
            "text": self.text,
            "tier": final.tier if final else None,
            "model": final.model if final else None,
            "low_confidence": self.low_confidence,
            "error": self.error,
            "decision": self.decision.model_dump(mode="json"),
            "usage": self.usage_summary(),
        }


@dataclass
class ChatJob:
    """A chat task as the engine runs it: messages plus what a good answer means."""

    task: TaskType
    messages: list[ChatMessage]
    path: str | None = None
    kind: Literal["code", "prose"] = "prose"
    language: str | None = None
    original_length: int | None = None
    postprocess: Callable[[str], str] = str.strip
    # Messages for the next tier after a draft failed its checks (the draft goes along).
    retry_messages: Callable[[str, list[str]], list[ChatMessage]] | None = None
    extra_check: Callable[[str], list[str]] | None = None  # task-specific format checks
    # For a local base model without a chat template: a document it continues instead.
    document: DocumentPrompt | None = None
    auto_apply: bool = False
    latency: LatencyClass | None = None
    max_tokens: int | None = None
    # Every file the content comes from (a diff chunk: old and new names too); `path` is one of them.
    paths: tuple[str, ...] = ()
    # Made from answers that were kept home (see AssistResult.kept_home): it stays home.
    derived_from_kept_home: bool = False

    @property
    def all_paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in (self.path, *self.paths) if p))

    def retry(self, draft: str, failed: list[str]) -> list[ChatMessage]:
        if self.retry_messages is not None:
            return self.retry_messages(draft, failed)
        note = ", ".join(failed) or "low confidence"
        return [*self.messages, ChatMessage("assistant", draft),
                ChatMessage("user", f"That answer failed automatic checks ({note}). Please answer again, correctly.")]


_REQUEST_PREFIX = uuid.uuid4().hex[:12]
_request_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique across processes without a syscall per request (uuid4 reads the OS's entropy)."""
    return f"{_REQUEST_PREFIX}-{next(_request_counter):x}"


class Engine:
    """Owns the local model, the policy in force, the remote tiers and the ledger."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        explicit_model: str | None = None,
        policy: LoadedPolicy | None = None,
        ledger: Ledger | None = None,
        progress: bool = False,
        on_remote_unreachable: Callable[[TierName, str], None] | None = None,
    ) -> None:
        self.config = config
        self.explicit_model = explicit_model  # --model beats NINETYTEN_MODEL beats settings beats policy
        self.model: ResolvedModel | None = None
        self._progress = progress
        self._loaded = policy or load_policy(None, None)
        self.forced_offline = False  # the editor's "Toggle offline", on top of the policy
        self.state = PolicyState.build(self._loaded)
        self.sink = LedgerSink(ledger)
        self._savings_day: datetime | None = None
        self._savings_usd = 0.0
        self.on_remote_unreachable = on_remote_unreachable
        self.local = LlamaCppBackend(LlamaSettings(model=self._resolve, n_ctx=config.n_ctx, n_threads=config.threads,
                                                    n_gpu_layers=config.gpu_layers))
        self._completion: CompletionTask | None = None

    # -- setup ---------------------------------------------------------------------

    def _resolve(self) -> Path:
        # Runs on the model thread: the embedded model may need assembling first.
        configured = self.config.model
        if configured is None:
            local = self.policy.tier("local")
            configured = local.model if local is not None and local.model != "default" else None
        self.model = resolve_model(self.explicit_model, configured, progress=self._progress)
        self.local.catalog_entry = self.model.entry
        return self.model.path

    @property
    def policy(self) -> Policy:
        return self.state.policy

    def set_policy(self, loaded: LoadedPolicy) -> None:
        """Swap in a new policy (hot reload); requests in flight finish on the old one."""
        self._loaded = loaded
        self._rebuild_state()

    def set_offline(self, offline: bool) -> None:
        """Force offline on top of whatever the policy says (survives policy reloads)."""
        self.forced_offline = offline
        self._rebuild_state()

    def _rebuild_state(self) -> None:
        loaded = self._loaded
        if self.forced_offline and not loaded.policy.offline:
            loaded = dataclasses.replace(loaded, policy=loaded.policy.model_copy(update={"offline": True}))
        old = self.state
        self.state = PolicyState.build(loaded)
        old.close_soon()

    def savings_today_usd(self) -> float:
        """Frontier cost avoided since UTC midnight: read once a day, then kept up to date."""
        day = utc_midnight()
        if self._savings_day != day:
            self._savings_day, self._savings_usd = day, 0.0
            ledger = self.sink.reader
            if ledger is not None:
                try:
                    self._savings_usd = ledger.savings_usd(day) + self.sink.pending_savings_usd
                except LedgerError:
                    log.debug("savings unreadable", exc_info=True)
        return self._savings_usd

    def feedback(self, request_id: str, *, shown: bool | None = None, accepted: bool | None = None) -> None:
        """Shown/accepted for a completion, written on the ledger thread after its row."""
        self.sink.call(lambda ledger: ledger.mark_feedback(request_id, shown=shown, accepted=accepted))

    def start(self) -> None:
        self.local.start_loading()

    async def wait_ready(self, timeout: float | None = None) -> None:
        if self.local.ready:
            return  # the common case: no future wrapping on every keystroke
        await self.local.wait_ready(timeout if timeout is not None else self.config.load_timeout_s)

    def completion_task(self) -> CompletionTask:
        if self._completion is None:
            self._completion = CompletionTask(self.local, self.config.completion)
        return self._completion

    def spend_today_usd(self) -> float:
        ledger = self.sink.reader
        if ledger is None:
            return 0.0
        try:
            return ledger.spend_usd(utc_midnight()) + self.sink.pending_cost_usd
        except LedgerError:
            # Spend that cannot be read is treated as the cap reached: paid tiers stay off.
            cap = self.policy.budget.daily_usd
            return cap if cap is not None else 0.0

    async def reserve_budget(self, tier: TierName, messages: list[ChatMessage], max_tokens: int
                             ) -> tuple[bool, BudgetHold | None]:
        """Hold the worst-case cost of a paid call against the caps in force (this developer's,
        the team's), atomically across requests, processes and developers; (False, None) when
        it does not fit."""
        policy = self.policy
        config = policy.tier(tier)
        if config is None or not config.price.paid:
            return True, None
        estimate = config.price.cost(estimate_tokens("\n".join(m.content for m in messages)), max_tokens)
        return await asyncio.to_thread(self.sink.reserve, estimate, policy.budget)

    def decide(self, request: RouteRequest, *, scan: bool = True) -> Decision:
        state = self.state
        paid_possible = self.policy.budget.daily_usd is not None
        spend = self.spend_today_usd() if paid_possible else 0.0
        return decide(state.policy, request, state.scanner if scan else None, spend_today_usd=spend,
                      unavailable=state.unavailable())

    # -- bookkeeping ---------------------------------------------------------------

    def _price_costs(self, tier: TierName, usage: Usage) -> tuple[float, float]:
        policy = self.policy
        config = policy.tier(tier)
        cost = config.price.cost(usage.prompt_tokens, usage.completion_tokens) if config else 0.0
        frontier_cost = self._counterfactual().price.cost(usage.prompt_tokens, usage.completion_tokens)
        return cost, frontier_cost

    def _counterfactual(self) -> Counterfactual:
        frontier = self.policy.tier("frontier")
        return counterfactual(frontier.price if frontier else None, self.policy.savings.reference_price)

    def _record(self, request_id: str, number: int, task: TaskType, attempt: Attempt, decision: Decision,
                reservation: BudgetHold | None = None) -> None:
        # Every attempt gets its counterfactual, local completions too: the savings are the point.
        counterfactual = self._counterfactual()
        frontier_cost = counterfactual.price.cost(attempt.usage.prompt_tokens, attempt.usage.completion_tokens)
        values = dict(
            request_id=request_id,
            attempt=number,
            task=task,
            tier=attempt.tier,
            backend=attempt.backend,
            model=Path(attempt.model).name or "unknown",
            prompt_tokens=attempt.usage.prompt_tokens,
            completion_tokens=attempt.usage.completion_tokens,
            cached_tokens=attempt.usage.cached_prompt_tokens,
            latency_ms=max(attempt.latency_ms, 0.0),
            cost_usd=attempt.cost_usd,
            frontier_cost_usd=frontier_cost,
            frontier_price=counterfactual.code,
            outcome=attempt.outcome,
            escalated=attempt.outcome == "escalated",
            escalation_reason=attempt.escalation_reason,
            error_kind=attempt.error_kind,
            policy_hash=decision.policy_hash or None,
            reasons=list(decision.reasons[:32]),
        )
        self.savings_today_usd()  # start today's running total before this row is queued
        self._savings_usd += frontier_cost - attempt.cost_usd
        values["ts"] = datetime.now(timezone.utc)
        # Reason texts are scrubbed before they touch the disk (the journal); the row is
        # built and validated on the ledger thread, off the request path.
        values["reasons"] = [safe_reason(r) for r in values["reasons"]]
        self.sink.put(lambda: LedgerRow(**values), reservation, journal=values)

    # -- running one attempt on a tier --------------------------------------------

    async def _chat_on(self, tier: TierName, messages: list[ChatMessage], max_tokens: int,
                       cancel: CancelToken | None, time_limit_s: float | None = None,
                       document: DocumentPrompt | None = None) -> tuple[Generation, Attempt]:
        started = time.perf_counter()
        if tier == "local":
            await self.wait_ready()
            backend_name, model = self.local.name, self.local.model_name
            if document is not None and not self.local.has_chat_template:
                generation = await self._continue_document(document, max_tokens, time_limit_s, cancel)
            else:
                messages = await self._fit_local(messages, max_tokens)
                generation = await self.local.chat(
                    ChatRequest(messages, max_tokens=max_tokens, time_limit_s=time_limit_s), cancel)
        else:
            backend = self.state.remote[tier]
            backend_name, model = backend.name, backend.model
            generation = await backend.chat(ChatRequest(messages, max_tokens=max_tokens, time_limit_s=time_limit_s),
                                            cancel)
        usage = generation.usage
        cost, frontier_cost = self._price_costs(tier, usage)
        attempt = Attempt(tier, backend_name, model, "ok", usage, (time.perf_counter() - started) * 1000.0,
                          cost, frontier_cost)
        return generation, attempt

    async def _continue_document(self, document: DocumentPrompt, max_tokens: int, time_limit_s: float | None,
                                 cancel: CancelToken | None) -> Generation:
        """A base model (no chat template) continues a document instead of following a chat."""
        backend = self.local
        max_tokens = min(max_tokens, document.max_tokens or max_tokens)
        budget = backend.n_ctx - max_tokens - 8
        head = [backend.bos] if backend.bos is not None else []
        tokens = head + backend.tokenize_text(document.text)
        if len(tokens) > budget:  # keep the end: it holds the cue the model continues from
            tokens = head + tokens[len(tokens) - budget + len(head):]
        generation = await backend.generate(GenerationRequest(
            prompt_tokens=tokens, max_tokens=max_tokens, time_limit_s=time_limit_s,
            stop=stop_on_repetition(_stop_at_blank_line(document.stops))), cancel)
        generation.text = document.answer_prefix + generation.text
        return generation

    async def _fit_local(self, messages: list[ChatMessage], max_tokens: int) -> list[ChatMessage]:
        """Shorten the longest message (its middle) until the prompt fits the local context."""
        budget = self.local.n_ctx - max_tokens - 8
        for _ in range(8):
            prompt, _stops = await self.local.chat_tokens_async(messages)
            if len(prompt) <= budget:
                return messages
            longest = max(range(len(messages)), key=lambda i: len(messages[i].content))
            content = messages[longest].content
            keep = max(int(len(content) * budget / len(prompt) * 0.9) - 40, 0)
            head, tail = content[: keep // 2], content[len(content) - keep // 2 :] if keep else ""
            shortened = f"{head}\n[... {len(content) - keep} characters left out to fit the local model ...]\n{tail}"
            messages = [*messages[:longest], ChatMessage(messages[longest].role, shortened), *messages[longest + 1 :]]
        return messages

    def _failed_attempt(self, tier: TierName, error: Exception, started: float) -> Attempt:
        backend = self.state.remote.get(tier) if tier != "local" else None
        kind = error.kind if isinstance(error, ProviderError) else type(error).__name__
        if isinstance(error, ProviderError):  # the user hears once per tier (the server de-duplicates)
            if self.on_remote_unreachable is not None:
                self.on_remote_unreachable(tier, str(error))
        return Attempt(tier, backend.name if backend else self.local.name,
                       backend.model if backend else self.local.model_name, "failed", Usage(),
                       (time.perf_counter() - started) * 1000.0, error_kind=safe_reason(kind).replace(" ", "_"))

    # -- tasks ---------------------------------------------------------------------

    async def assist(self, inp: AssistInput, *, cancel: CancelToken | None = None, auto_apply: bool = False,
                     latency: LatencyClass | None = None, max_tokens: int | None = None) -> AssistResult:
        """Explain, refactor or ask about a piece of code."""
        return await self.run_chat(ChatJob(
            task=inp.task,
            messages=messages_for(inp),
            path=inp.path,
            kind="code" if inp.task == "refactor" else "prose",
            language=inp.language,
            original_length=len(inp.code),
            postprocess=lambda text: assist_postprocess(inp, text),
            auto_apply=auto_apply,
            latency=latency,
            max_tokens=max_tokens,
        ), cancel=cancel)

    async def run_chat(self, job: "ChatJob", *, cancel: CancelToken | None = None) -> AssistResult:
        """Any chat task: routed, verified, escalated (egress re-checked), recorded per attempt."""
        max_tokens = job.max_tokens or self.config.assist.max_tokens
        request_id = new_request_id()
        messages = job.messages
        payload = "\n".join(m.content for m in messages)
        decision = self.decide(RouteRequest(task=job.task, text=payload, path=job.path, auto_apply=job.auto_apply,
                                            latency=job.latency, paths=job.paths,
                                            derived_from_kept_home=job.derived_from_kept_home))
        sensitive_source = decision.sensitivity == "sensitive"
        attempts: list[Attempt] = []
        if decision.blocked:
            attempt = Attempt(decision.tier, decision.backend, decision.model, "blocked", Usage(), 0.0)
            self._record(request_id, 1, job.task, attempt, decision)
            return AssistResult(None, decision, [attempt], request_id, error="blocked by policy: " + decision.reasons[-1])

        policy = self.policy
        deadline = time.monotonic() + policy.escalation.deadline_ms / 1000.0
        checks = policy.escalation.verify
        tiers: list[TierName] = [decision.tier]
        if decision.escalate_to:
            tiers.append(decision.escalate_to)

        best: str | None = None
        best_tier: TierName = "local"
        failed_checks: list[str] = []
        low_confidence = False
        tier_index = 0
        current_messages = messages
        while tier_index < len(tiers) and len(attempts) < policy.escalation.max_attempts:
            tier = tiers[tier_index]
            outgoing = current_messages
            if tier != "local" and not policy.keeps_data_home(tier):
                egress = check_egress(policy, "\n".join(m.content for m in outgoing), job.path, tier,
                                      self.state.scanner, paths=job.paths,
                                      derived_from_kept_home=job.derived_from_kept_home)
                if not egress.allowed:
                    decision.reasons.extend(egress.reasons)
                    sensitive_source = True  # the answer stays the local one: made from what may not go
                    break
                if egress.redact or decision.redact:
                    paths = job.all_paths or (None,)
                    outgoing = [ChatMessage(m.role, redact_for(self.state.scanner, m.content, paths))
                                for m in outgoing]
            fits, reservation = await self.reserve_budget(tier, outgoing, max_tokens)
            if not fits:
                decision.reasons.append(f"budget: the daily cap leaves no room for a {tier} call")
                if "local" not in tiers[tier_index + 1:] and best is None:
                    tiers.append("local")
                tier_index += 1
                continue
            started = time.perf_counter()
            remaining = max(deadline - time.monotonic(), 0.5)
            try:
                generation, attempt = await self._chat_on(tier, outgoing, max_tokens, cancel,
                                                          time_limit_s=remaining if tier == "local" else None,
                                                          document=job.document if outgoing is messages else None)
            except asyncio.CancelledError:
                attempts.append(Attempt(tier, decision.backend, decision.model, "cancelled", Usage(),
                                        (time.perf_counter() - started) * 1000.0))
                self._record(request_id, len(attempts), job.task, attempts[-1], decision, reservation)
                raise
            except (BackendError, OSError) as error:
                attempt = self._failed_attempt(tier, error, started)
                attempts.append(attempt)
                self._record(request_id, len(attempts), job.task, attempt, decision, reservation)
                if tier != "local" and "local" not in tiers[tier_index + 1:] and best is None:
                    tiers.append("local")  # a remote failure falls back to the local model
                tier_index += 1
                continue
            text = job.postprocess(generation.text) if generation.stop_reason != "cancelled" else None
            failed_checks = verify(text, checks, kind=job.kind, language=job.language,
                                   original_length=job.original_length)
            if job.extra_check is not None and text is not None:
                failed_checks += job.extra_check(text)
            attempts.append(attempt)
            if text is not None and (best is None or not failed_checks):
                best, best_tier = text, tier
            has_next = tier_index + 1 < len(tiers) and len(attempts) < policy.escalation.max_attempts
            if failed_checks and has_next and time.monotonic() < deadline:
                attempt.outcome = "escalated"
                attempt.escalation_reason = "verify_failed:" + "+".join(failed_checks)
                self._record(request_id, len(attempts), job.task, attempt, decision, reservation)
                current_messages = job.retry(text or "", failed_checks)
                tier_index += 1
                continue
            if failed_checks:
                attempt.outcome = "low_confidence"
                low_confidence = True
            self._record(request_id, len(attempts), job.task, attempt, decision, reservation)
            break
        if best is not None and failed_checks and attempts and attempts[-1].outcome != "low_confidence":
            low_confidence = True
        error = None
        if best is None and attempts and all(a.outcome in ("failed", "cancelled") for a in attempts):
            kinds = ", ".join(f"{a.tier}: {a.error_kind or a.outcome}" for a in attempts)
            error = f"no tier could answer ({kinds})"
        kept_home = best is not None and (sensitive_source or job.derived_from_kept_home) and \
            policy.keeps_data_home(best_tier)
        return AssistResult(best, decision, attempts, request_id, low_confidence=low_confidence, error=error,
                            kept_home=kept_home)

    async def complete(self, inp: CompletionInput, cancel: CancelToken | None = None, *,
                       speculative: bool = False) -> CompletionResult:
        """An inline completion: local first; escalated only when the policy allows it.

        A speculative completion (prepared before anyone asked) stays local and writes no
        ledger row; the row is written when it is served from the cache.
        """
        started = time.perf_counter()
        request_id = new_request_id()
        # The decision needs the content only when it could leave the machine.
        decision = _LOCAL_ONLY if speculative else self._completion_decision(inp)
        await self.wait_ready()
        waited_ms = (time.perf_counter() - started) * 1000.0
        try:
            outcome = await self.completion_task().run(inp, cancel)
        except asyncio.CancelledError:
            # $/cancelRequest: the attempt still gets its row, with what it had done.
            done = cancel.generation if cancel is not None else None
            usage = done.usage if done is not None else Usage()
            if not speculative:
                self._record(request_id, 1, "completion",
                             Attempt("local", self.local.name, self.local.model_name, "cancelled", usage,
                                     (time.perf_counter() - started) * 1000.0), decision)
            raise
        generation = outcome.generation
        text = outcome.text
        usage = generation.usage
        attempt = Attempt("local", self.local.name, self.local.model_name,
                          "cancelled" if generation.stop_reason == "cancelled" else "ok", usage,
                          (time.perf_counter() - started) * 1000.0)
        escalated = low_confidence = False
        escalation = self.policy.escalation
        if (text is not None and decision.escalate_to
                and not completion_confident(generation.mean_logprob, escalation.completion_min_mean_logprob,
                                             token_logprobs=generation.token_logprobs,
                                             min_token_threshold=escalation.completion_min_token_logprob)):
            remote_text = await self._escalate_completion(inp, decision, request_id, attempt)
            if remote_text is not None:
                text, escalated = remote_text, True
            else:
                low_confidence = True
        elif not speculative:
            self._record(request_id, 1, "completion", attempt, decision)
        final_tier = decision.escalate_to if escalated else "local"
        backend = self.state.remote.get(final_tier) if final_tier != "local" else None  # type: ignore[arg-type]
        return CompletionResult(
            text=text,
            tier=final_tier or "local",
            backend=backend.name if backend else self.local.name,
            model=backend.model if backend else self.local.model_name,
            usage=usage,
            stop_reason=generation.stop_reason,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            mean_logprob=generation.mean_logprob,
            prompt_mode=outcome.prompt.mode,
            extra={"build_ms": outcome.build_ms, "waited_for_model_ms": waited_ms},
            escalated=escalated,
            low_confidence=low_confidence,
            request_id=request_id,
        )

    def cached_completion(self, inp: CompletionInput, text: str, started: float, *, typed: int = 0
                          ) -> CompletionResult:
        """A suggestion served from the cache: no model ran, but it is a request like any other."""
        request_id = new_request_id()
        decision = decide(self.policy, RouteRequest(task="completion", path=inp.path), _NO_SCAN,
                          unavailable=self.state.unavailable())
        latency_ms = (time.perf_counter() - started) * 1000.0
        attempt = Attempt("local", "cache", self.local.model_name, "ok", Usage(), latency_ms)
        self._record(request_id, 1, "completion", attempt, decision)
        return CompletionResult(
            text=text, tier="local", backend="cache", model=self.local.model_name, usage=Usage(),
            stop_reason="cache", latency_ms=latency_ms, prompt_mode="cache",
            extra={"typed_through": float(typed)}, request_id=request_id)

    def _completion_decision(self, inp: CompletionInput) -> Decision:
        policy = self.policy
        quick = decide(policy, RouteRequest(task="completion", path=inp.path), _NO_SCAN,
                       unavailable=self.state.unavailable())
        if quick.tier == "local" and quick.escalate_to is None:
            return quick  # nothing can leave the machine: skip the content scan
        before, line_prefix, line_suffix, after = split_at_cursor(inp)
        window = "".join(before[-60:]) + line_prefix + line_suffix + "\n" + "".join(after[:30])
        return self.decide(RouteRequest(task="completion", text=window, path=inp.path))

    async def _escalate_completion(self, inp: CompletionInput, decision: Decision, request_id: str,
                                   local_attempt: Attempt) -> str | None:
        """Ask a stronger tier for the text at the cursor; None when it cannot or may not."""
        target = decision.escalate_to
        assert target is not None
        before, line_prefix, line_suffix, after = split_at_cursor(inp)
        prefix = "".join(before[-80:]) + line_prefix
        suffix = line_suffix + ("\n" if after else "") + "".join(after[:40])
        messages = [
            ChatMessage("system", "You complete code. Reply with only the text to insert at <CURSOR>, no fences."),
            ChatMessage("user", f"File: {inp.path}\n\n{prefix}<CURSOR>{suffix}"),
        ]
        local_attempt.outcome = "escalated"
        local_attempt.escalation_reason = "low_confidence"
        self._record(request_id, 1, "completion", local_attempt, decision)
        egress = check_egress(self.policy, messages[1].content, inp.path, target, self.state.scanner)
        if not egress.allowed:
            return None
        if egress.redact or decision.redact:
            messages = [ChatMessage(m.role, redact_for(self.state.scanner, m.content, [inp.path]))
                        for m in messages]
        fits, reservation = await self.reserve_budget(target, messages, self.config.completion.max_tokens)
        if not fits:
            return None
        started = time.perf_counter()
        try:
            generation, attempt = await self._chat_on(target, messages, self.config.completion.max_tokens, None)
        except (BackendError, OSError) as error:
            self._record(request_id, 2, "completion", self._failed_attempt(target, error, started), decision,
                         reservation)
            return None
        self._record(request_id, 2, "completion", attempt, decision, reservation)
        text = generation.text.strip("\n")
        return text or None

    # -- lifecycle -----------------------------------------------------------------

    def complete_blocking(self, inp: CompletionInput) -> CompletionResult:
        return asyncio.run(self.complete(inp))

    def close(self) -> None:
        self.sink.close()
        self.local.close()

    async def aclose(self) -> None:
        self.sink.close()
        await self.state.aclose()
        self.local.close()


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _stop_at_blank_line(stops: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """Stop strings, where "\n\n" also means a line holding only spaces (small models write those)."""
    plain = stop_at_strings(tuple(stop for stop in stops if stop != "\n\n"))
    if "\n\n" not in stops:
        return plain

    def check(text: str) -> int | None:
        match = _BLANK_LINE.search(text.lstrip("\n"))
        if match:
            return match.start() + (len(text) - len(text.lstrip("\n")))
        return plain(text) if plain is not None else None

    return check


class _NoScan:
    """Stands in for the scanner when a decision cannot send anything out."""

    def scan(self, text: str, path: str | None = None):  # type: ignore[no-untyped-def]
        from lsp_server.sensitivity.scanner import SensitivityReport

        return SensitivityReport(())

    def scan_paths(self, text: str, paths):  # type: ignore[no-untyped-def]
        return {path: self.scan(text, path) for path in paths}


_NO_SCAN = _NoScan()


# Speculative completions never leave the machine and are not requests yet.
_LOCAL_ONLY = Decision(task="completion", tier="local", backend="llama_cpp", model="local",
                       reasons=["speculative: prepared locally for after an accept"])
