"""The one place a request becomes an answer: policy, router, backends, checks, observers.

The LSP server, the CLI and the git hook all talk to an `Engine`; none of them knows
how a model runs or where a request goes.

Data flows one way: decide -> attempt on a tier -> check -> maybe escalate (after the
sensitivity gate runs again on what the escalation would send) -> every observer hears
about each settled attempt (the ledger writes one row per attempt).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from local_models import ResolvedModel, resolve_model
from local_models.resolve import CHAT_MODEL_ENV
from lsp_server.backends.base import CancelToken, ChatMessage, ChatRequest, Generation, ProviderError, Usage
from lsp_server.backends.llama_cpp.settings import LlamaSettings
from lsp_server.backends.local import LocalBackend
from lsp_server.config import ServerConfig
from lsp_server.engine import chat, completion
from lsp_server.engine.document import DocumentPrompt
from lsp_server.engine.jobs import ChatJob, CompletionJob
from lsp_server.engine.ledger_recorder import LedgerRecorder, price_costs
from lsp_server.engine.local_chat import continue_document, fit_messages
from lsp_server.engine.local_tier import LocalModelNames, local_model_names
from lsp_server.engine.local_tier import Task as LocalTask
from lsp_server.engine.observers import AttemptEvent, AttemptObserver
from lsp_server.engine.results import AssistResult, Attempt, CompletionResult
from lsp_server.engine_host.client import local_backend
from lsp_server.engine_host.notices import Notice
from lsp_server.ledger import Ledger, LedgerError, LedgerSink, PartialAccept, safe_reason, utc_midnight
from lsp_server.ledger.reservations import BudgetHold
from lsp_server.routing.policy import LoadedPolicy, Policy, TaskType
from lsp_server.routing.policy_lookup import load_policy
from lsp_server.routing.router import Decision, RouteRequest, decide
from lsp_server.routing.runtime import PolicyState
from lsp_server.tiers import LOCAL, TierName
from lsp_server.token_estimate import estimate_tokens

log = logging.getLogger(__name__)


class Engine:
    """Owns the local models, the policy in force, the remote tiers and the attempt observers.

    `local` (the completion model) is injected when given (another way to run the local
    model); by default it is the user's shared engine process for the model the settings and
    the policy name (engine_host/; llama.cpp in this process with `engine = "in-process"`).
    The chat tasks have a model of their own when one is named (engine/local_tier.py), in an
    engine of its own; otherwise `local` serves them too.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        explicit_model: str | None = None,
        explicit_chat_model: str | None = None,
        policy: LoadedPolicy | None = None,
        ledger: Ledger | None = None,
        progress: bool = False,
        on_remote_unreachable: Callable[[TierName, str], None] | None = None,
        on_local_notice: Notice | None = None,
        local: LocalBackend | None = None,
    ) -> None:
        self.config = config
        self.explicit_model = explicit_model  # --model beats NINETYTEN_MODEL beats settings beats policy
        self.explicit_chat_model = explicit_chat_model  # the same for the chat model (local_tier.py)
        self.model: ResolvedModel | None = None
        self.chat_model: ResolvedModel | None = None  # set when a chat model of its own is resolved
        self._progress = progress
        self._loaded = policy or load_policy(None, None)
        self.forced_offline = False  # the editor's "Toggle offline", on top of the policy
        self.state = PolicyState.build(self._loaded)
        self.sink = LedgerSink(ledger)
        self.recorder = LedgerRecorder(self.sink, lambda: self.policy)
        self.observers: list[AttemptObserver] = [self.recorder]
        self.on_remote_unreachable = on_remote_unreachable
        self.on_local_notice = on_local_notice  # the local engine crashed, or a model is marked bad
        self.names = self._model_names()
        self.local: LocalBackend = local if local is not None else self._new_local("completion")
        # The chat tasks' own model, when one is named; None: the completion model serves them.
        self._chat_local = self._new_local("chat") if self.names.separate_chat else None

    # -- setup ---------------------------------------------------------------------

    def _model_names(self) -> LocalModelNames:
        return local_model_names(
            self.config,
            self.policy.tier(LOCAL),
            explicit_completion=self.explicit_model,
            explicit_chat=self.explicit_chat_model,
        )

    def _new_local(self, task: LocalTask) -> LocalBackend:
        """A backend for one task's model; the file is found (maybe assembled) on its own thread."""
        backend: LocalBackend

        def resolve() -> Path:
            names = self.names
            if task == "completion":
                resolved = self.model = resolve_model(self.explicit_model, names.completion, progress=self._progress)
            else:
                resolved = self.chat_model = resolve_model(
                    self.explicit_chat_model, names.chat, progress=self._progress, env_var=CHAT_MODEL_ENV
                )
            backend.catalog_entry = resolved.entry
            return resolved.path

        # Whichever model answers the chat tasks gets their speculative decoding settings.
        chat_tasks = task == "chat" or not self.names.separate_chat
        draft = self.names.draft if chat_tasks else None
        settings = LlamaSettings(
            model=resolve,
            n_ctx=self.config.n_ctx,
            n_threads=self.config.threads,
            n_gpu_layers=self.config.gpu_layers,
            prompt_lookup=chat_tasks and self.config.assist.prompt_lookup,
            draft_model=(lambda: resolve_model(draft, None, progress=False).path) if draft else None,
            max_draft=self.config.assist.draft_tokens,
        )
        # Speculative decoding runs where the model runs: in the engine process by default.
        backend = local_backend(settings, self.config.engine, on_notice=self.on_local_notice, client=task)
        return backend

    @property
    def chat_local(self) -> LocalBackend:
        """The local model that answers explain, refactor, ask and commit messages."""
        return self._chat_local or self.local

    def reload_local_models(self) -> list[LocalTask]:
        """Follow a changed choice of models (the user's `use`): each task whose model is named
        differently now gets a new backend, loading in the background, and the old one is let go
        (a generation running on it finishes first). Returns the tasks that changed."""
        before, after = self.names, self._model_names()
        self.names = after
        changed: list[LocalTask] = []

        def shared_draft(names: LocalModelNames) -> str | None:  # carried by the completion model
            return None if names.separate_chat else names.draft

        if (after.completion, after.explicit_completion, shared_draft(after)) != (
            before.completion,
            before.explicit_completion,
            shared_draft(before),
        ):
            old, self.local = self.local, self._new_local("completion")
            self.model = None
            self.local.start_loading()
            old.close()
            changed.append("completion")
        chat_names = (after.separate_chat, after.chat, after.explicit_chat, after.draft)
        if chat_names != (before.separate_chat, before.chat, before.explicit_chat, before.draft) or changed:
            old_chat = self._chat_local
            self._chat_local = self._new_local("chat") if after.separate_chat else None
            self.chat_model = None
            if self._chat_local is not None:
                self._chat_local.start_loading()
            if old_chat is not None:
                old_chat.close()
            changed.append("chat")
        return changed

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

    def start(self, *, chat_only: bool = False) -> None:
        """Load the local models in the background; `chat_only` for the explain CLI and the hook."""
        chat = self._chat_local
        if chat_only:
            self.chat_local.start_loading()
            return
        loading = self.local.start_loading()
        if chat is not None:
            # After the completion model: two loads at once would only compete for the same cores.
            loading.add_done_callback(lambda _: chat.start_loading() if chat is self._chat_local else None)

    async def wait_ready(self, timeout: float | None = None) -> None:
        if self.local.ready:
            return  # the common case: no future wrapping on every keystroke
        await self.local.wait_ready(timeout if timeout is not None else self.config.load_timeout_s)

    async def wait_chat_ready(self, timeout: float | None = None) -> None:
        backend = self.chat_local
        if not backend.ready:
            await backend.wait_ready(timeout if timeout is not None else self.config.load_timeout_s)

    # -- observers -----------------------------------------------------------------

    def subscribe(self, observer: AttemptObserver) -> Callable[[], None]:
        """Hear about every settled attempt from now on; returns the unsubscribe call."""
        self.observers.append(observer)
        return lambda: self.observers.remove(observer)

    def settle(
        self,
        request_id: str,
        number: int,
        task: TaskType,
        attempt: Attempt,
        decision: Decision,
        reservation: BudgetHold | None = None,
    ) -> None:
        """An attempt's outcome is known: every observer hears of it once."""
        event = AttemptEvent(request_id, number, task, attempt, decision, reservation)
        for observer in self.observers:
            observer.attempt_settled(event)

    def savings_today_usd(self) -> float:
        return self.recorder.savings_today_usd()

    def feedback(
        self,
        request_id: str,
        *,
        shown: bool | None = None,
        accepted: bool | None = None,
        partial: PartialAccept | None = None,
    ) -> None:
        """Shown/accepted (or what a partial accept kept) for a completion, written on the ledger
        thread after its row."""
        self.sink.call(lambda ledger: ledger.mark_feedback(request_id, shown=shown, accepted=accepted, partial=partial))

    # -- routing and budget --------------------------------------------------------

    def spend_today_usd(self) -> float:
        ledger = self.sink.reader
        if ledger is None:
            return 0.0
        try:
            return ledger.spend_usd(utc_midnight()) + self.sink.pending_cost_usd
        except LedgerError:
            # Spend that cannot be read is treated as the cap reached: paid tiers stay off.
            caps = [c for c in (self.policy.budget.daily_usd, self.policy.budget.team_daily_usd) if c is not None]
            return max(caps) if caps else 0.0

    async def reserve_budget(
        self, tier: TierName, messages: list[ChatMessage], max_tokens: int
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
        budget = state.policy.budget
        capped = budget.daily_usd is not None or budget.team_daily_usd is not None
        spend = self.spend_today_usd() if capped else 0.0
        # The team's spend as last read from the team ledger: never a network round trip here.
        team_spend = self.sink.team_spend_today_usd() if budget.team_daily_usd is not None else None
        return decide(
            state.policy,
            request,
            state.scanner if scan else None,
            spend_today_usd=spend,
            team_spend_today_usd=team_spend,
            unavailable=state.unavailable(),
        )

    # -- one attempt on one tier ---------------------------------------------------

    async def chat_on(
        self,
        tier: TierName,
        messages: list[ChatMessage],
        max_tokens: int,
        cancel: CancelToken | None,
        time_limit_s: float | None = None,
        document: DocumentPrompt | None = None,
    ) -> tuple[Generation, Attempt]:
        started = time.perf_counter()
        request = ChatRequest(messages, max_tokens=max_tokens, time_limit_s=time_limit_s)
        if tier == LOCAL:
            await self.wait_chat_ready()
            local = self.chat_local
            backend_name, model = local.name, local.model_name
            request.speculate = True  # drafts where the local model checks them exactly
            if document is not None and not local.has_chat_template:
                generation = await continue_document(local, document, max_tokens, time_limit_s, cancel)
            else:
                request.messages = await fit_messages(local, messages, max_tokens)
                generation = await local.chat(request, cancel)
        else:
            backend = self.state.remote[tier]
            backend_name, model = backend.name, backend.model
            generation = await backend.chat(request, cancel)
        cost, frontier_cost = price_costs(self.policy, tier, generation.usage)
        attempt = Attempt(
            tier,
            backend_name,
            model,
            "ok",
            generation.usage,
            (time.perf_counter() - started) * 1000.0,
            cost,
            frontier_cost,
        )
        return generation, attempt

    def failed_attempt(
        self, tier: TierName, error: Exception, started: float, *, local: LocalBackend | None = None
    ) -> Attempt:
        """`local`: the local model that failed when it is not the chat model (the completion model)."""
        backend = self.state.remote.get(tier) if tier != LOCAL else None
        if local is None:
            local = self.chat_local
        kind = getattr(error, "kind", None) or type(error).__name__  # EngineCrashed has one too
        if isinstance(error, ProviderError) and self.on_remote_unreachable is not None:
            self.on_remote_unreachable(tier, str(error))  # the user hears once per tier (the server de-duplicates)
        return Attempt(
            tier,
            backend.name if backend else local.name,
            backend.model if backend else local.model_name,
            "failed",
            Usage(),
            (time.perf_counter() - started) * 1000.0,
            error_kind=safe_reason(kind).replace(" ", "_"),
        )

    # -- requests ------------------------------------------------------------------

    async def run_chat(self, job: ChatJob, *, cancel: CancelToken | None = None) -> AssistResult:
        """Any chat task: routed, verified, escalated (egress re-checked), recorded per attempt."""
        return await chat.run_chat(self, job, cancel)

    async def complete(
        self, job: CompletionJob, cancel: CancelToken | None = None, *, speculative: bool = False
    ) -> CompletionResult:
        """An inline completion: local first; escalated only when the policy allows it."""
        return await completion.complete(self, job, cancel, speculative=speculative)

    def cached_completion(
        self, path: str, text: str, started: float, *, typed: int = 0, alternatives: tuple[str, ...] = ()
    ) -> CompletionResult:
        return completion.cached_completion(self, path, text, started, typed=typed, alternatives=alternatives)

    def completion_decision(self, job: CompletionJob) -> Decision:
        return completion.completion_decision(self, job)

    async def escalate_completion(
        self, job: CompletionJob, decision: Decision, request_id: str
    ) -> completion.Escalation:
        return await completion.escalate_completion(self, job, decision, request_id)

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self.sink.close()
        self._close_local()

    async def aclose(self) -> None:
        self.sink.close()
        await self.state.aclose()
        self._close_local()

    def _close_local(self) -> None:
        self.local.close()
        if self._chat_local is not None:
            self._chat_local.close()
