"""Asking a tier for the text at a task's cursor, the way the language server does.

The pipeline variant goes through the completion feature's `Completer` (local tier: the same
CompletionTask, prompt builder, stop rules and post-processing the server runs) or
through the engine's completion escalation (remote tiers: the same prompt and clean-up
the server sends a stronger tier). The raw variant is the local model alone: a plain
FIM prompt (or the plain prefix for a model without FIM tokens), greedy generation up to
the token cap, no stop rules, no post-processing.

The engine gets no ledger: evaluation runs never count against a budget or a report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lsp_server.backends.base import GenerationRequest, StopCheck
from lsp_server.backends.llama_cpp.chat_template import stop_at_strings
from lsp_server.completion.complete import Completer
from lsp_server.completion.prompt import CompletionInput
from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.engine.observers import AttemptLog
from lsp_server.eval.humaneval import InfillTask
from lsp_server.routing.policy import LoadedPolicy, Policy, Rule
from lsp_server.routing.router import Decision
from lsp_server.tiers import TierName


class EvalError(Exception):
    """The evaluation cannot run as asked (a tier the policy lacks, a model that will not load)."""


@dataclass
class Produced:
    """A tier's answer at one cursor, and what it took."""

    text: str | None
    tier: str
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    stop_reason: str = ""
    mean_logprob: float | None = None
    min_logprob: float | None = None
    error: str | None = None
    context_snippets: int = 0


def forced_policy(policy: Policy, tier: TierName) -> Policy:
    """The team's policy with completions sent to `tier` and nowhere else.

    Remote tiers are reached the way the server reaches them for a completion: as the
    escalation target of a local rule.
    """
    if tier != "local":
        if policy.tier(tier) is None:
            raise EvalError(f"the policy has no tiers.{tier}; configure it (see `ninetyten policy show`)")
        if policy.offline:
            raise EvalError(f"the policy is offline: nothing may go to the {tier} tier")
    rule = Rule(
        name=f"eval: completions on {tier}",
        task=["completion"],
        route="local",
        escalate_to=None if tier == "local" else tier,
    )
    return policy.model_copy(update={"rules": [rule]})


def task_input(task: InfillTask) -> CompletionInput:
    line, character = task.cursor
    return CompletionInput(
        path=task.problem_id.replace("/", "_") + ".py", text=task.document, line=line, character=character
    )


def model_label(engine: Engine, tier: TierName) -> str:
    """The model a tier's answers come from, as a report names it."""
    if tier == "local":
        return engine.local.model_name
    backend = engine.state.remote.get(tier)
    return backend.model if backend else tier


@dataclass
class CompletionRunner:
    config: ServerConfig
    loaded: LoadedPolicy
    tier: TierName = "local"
    model: str | None = None
    progress: bool = False
    _engine: Engine | None = field(default=None, init=False)
    _completer: Completer | None = field(default=None, init=False)
    # The harness hears about every attempt the way the ledger does (usage, latency, cost).
    attempts: AttemptLog = field(default_factory=AttemptLog, init=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            forced = LoadedPolicy(forced_policy(self.loaded.policy, self.tier), self.loaded.source, self.loaded.path)
            self._engine = Engine(
                self.config, explicit_model=self.model, policy=forced, ledger=None, progress=self.progress
            )
            self._engine.subscribe(self.attempts)
        return self._engine

    @property
    def completer(self) -> Completer:
        if self._completer is None:
            self._completer = Completer(self.engine)
        return self._completer

    async def start(self) -> None:
        if self.tier != "local":
            return  # a remote tier's completions never touch the local model
        self.engine.start()
        await self.engine.wait_ready()

    @property
    def model_name(self) -> str:
        return model_label(self.engine, self.tier)

    @property
    def prompt_mode(self) -> str:
        if self.tier != "local":
            return "chat"
        return "fim" if self.engine.local.fim is not None else "prefix"

    async def pipeline(self, task: InfillTask) -> Produced:
        if self.tier == "local":
            return await self._local_pipeline(task)
        return await self._remote_pipeline(task)

    async def _local_pipeline(self, task: InfillTask) -> Produced:
        return await self.complete_input(task_input(task))

    @property
    def quiet_below(self) -> float | None:
        """The quiet gate's threshold as configured (None: the gate is off)."""
        completion = self.config.completion
        return completion.quiet_below if completion.quiet else None

    async def complete_input(self, inp: CompletionInput) -> Produced:
        """The local pipeline on any cursor (the quiet gate is applied by the caller, from the
        answer's mean log-probability, so that both sides of it are measured)."""
        result = await self.completer.complete(inp)
        return Produced(
            text=result.text,
            tier=result.tier,
            latency_ms=result.latency_ms,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            stop_reason=result.stop_reason,
            mean_logprob=result.mean_logprob,
            min_logprob=result.min_logprob,
            context_snippets=len(inp.extra),
        )

    async def raw_first_line(self, before: str) -> Produced:
        """llama.cpp's own first line on the plain prefix: the text before the cursor, greedy,
        cut at the first newline (no FIM, no context, no stop rules or clean-up)."""
        backend = self.engine.local
        tokens = ([backend.bos] if backend.bos is not None else []) + backend.tokenize_text(before)
        # Cut at the first newline; a portable rule, so that it runs in the engine process too.
        return await self._raw_generate(tokens, stop=stop_at_strings(("\n",)))

    async def _remote_pipeline(self, task: InfillTask) -> Produced:
        # Straight to the engine's escalation step: the prompt and clean-up a stronger tier
        # gets for a completion, without spending a local generation first.
        engine = self.engine
        job = self.completer.job(task_input(task))
        decision: Decision = engine.completion_decision(job)
        if decision.escalate_to != self.tier:
            return Produced(None, self.tier, 0.0, error="routing refused: " + "; ".join(decision.reasons[-2:]))
        self.attempts.clear()
        started = time.perf_counter()
        escalation = await engine.escalate_completion(job, decision, "eval")
        text = escalation.text
        remote = [a for a in self.attempts.attempts if a.tier == self.tier]
        attempt = remote[-1] if remote else None
        if attempt is None:
            return Produced(None, self.tier, (time.perf_counter() - started) * 1000.0, error="not sent (policy gate)")
        return Produced(
            text=text,
            tier=self.tier,
            latency_ms=attempt.latency_ms,
            prompt_tokens=attempt.usage.prompt_tokens,
            completion_tokens=attempt.usage.completion_tokens,
            cost_usd=attempt.cost_usd,
            stop_reason=attempt.outcome,
            error=attempt.error_kind if attempt.outcome == "failed" else None,
        )

    async def raw(self, task: InfillTask) -> Produced:
        """The bare model: plain FIM (or prefix) prompt, max_tokens, no stop rule, no clean-up."""
        backend = self.engine.local
        prefix = backend.tokenize_text(task.prefix)
        if backend.fim is not None:
            tokens = backend.fim.psm_prompt(prefix, backend.tokenize_text(task.suffix))
        else:
            tokens = ([backend.bos] if backend.bos is not None else []) + prefix
        return await self._raw_generate(tokens)

    async def _raw_generate(self, tokens: list[int], stop: StopCheck | None = None) -> Produced:
        """Greedy generation on a prompt cut to fit the context, reported as a local answer."""
        backend = self.engine.local
        max_tokens = self.config.completion.max_tokens
        room = backend.n_ctx - max_tokens - 1
        if len(tokens) > room:  # keep the end: the text nearest the cursor
            tokens = tokens[len(tokens) - room :]
        started = time.perf_counter()
        generation = await backend.generate(GenerationRequest(prompt_tokens=tokens, max_tokens=max_tokens, stop=stop))
        return Produced(
            text=generation.text,
            tier="local",
            latency_ms=(time.perf_counter() - started) * 1000.0,
            prompt_tokens=generation.usage.prompt_tokens,
            completion_tokens=generation.usage.completion_tokens,
            stop_reason=generation.stop_reason,
            mean_logprob=generation.mean_logprob,
            min_logprob=generation.min_logprob,
        )

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()
