"""Inline completions on an engine: the local FIM task, routed and escalated by the engine.

The engine knows nothing of prompts; a `Completer` hands it a `CompletionJob` made of this
feature's pieces: the local task (prompt, stop rules, post-processing, alternatives), the
routing window and the remote `<CURSOR>` prompt. What is shown is the feature's call too: the
quiet gate holds back an unsure suggestion made while typing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import Future
from typing import Any

from lsp_server.backends.base import CancelToken
from lsp_server.completion.prompt import CompletionInput
from lsp_server.completion.quiet_gate import QuietGate
from lsp_server.completion.remote_prompt import remote_prompt, route_window
from lsp_server.completion.task import CompletionOutcome, CompletionTask
from lsp_server.context.snippets import gate_from_scanner
from lsp_server.engine.core import Engine
from lsp_server.engine.jobs import CompletionJob, RemoteCompletionPrompt
from lsp_server.engine.results import CompletionResult
from lsp_server.tiers import TierName


class Completer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._task: CompletionTask | None = None

    @property
    def task(self) -> CompletionTask:
        """Built on first use: the local model's tokenizer and FIM tokens are known once it loaded."""
        if self._task is None:
            self._task = CompletionTask(self.engine.local, self.engine.config.completion)
        return self._task

    def job(self, inp: CompletionInput, *, alternatives: bool = False, background: bool = False) -> CompletionJob:
        async def run_local(cancel: CancelToken | None) -> CompletionOutcome:
            return await self.task.run(inp, cancel, alternatives=alternatives, background=background)

        def remote(target: TierName) -> RemoteCompletionPrompt:
            # Context from other files goes to a tier that keeps data home as it is; to any
            # other, only what the sensitivity gate lets leave.
            home = self.engine.policy.keeps_data_home(target)
            return remote_prompt(inp, None if home else gate_from_scanner(self.engine.state.scanner))

        return CompletionJob(
            path=inp.path,
            run_local=run_local,
            route_window=lambda: route_window(inp),
            remote_prompt=remote,
        )

    async def complete(
        self,
        inp: CompletionInput,
        cancel: CancelToken | None = None,
        *,
        speculative: bool = False,
        alternatives: bool = False,
        quiet: bool = False,
    ) -> CompletionResult:
        """With `quiet` (a request made while typing), a local suggestion the quiet gate holds
        back comes back without text (`quiet` set): the attempt is still recorded."""
        job = self.job(inp, alternatives=alternatives, background=speculative)
        result = await self.engine.complete(job, cancel, speculative=speculative)
        config = self.engine.config.completion
        if (
            quiet
            and config.quiet
            and result.text is not None
            and not result.escalated
            and QuietGate(config.quiet_below).holds_back(result.mean_logprob)
        ):
            return dataclasses.replace(result, text=None, alternatives=[], quiet=True)
        return result

    @property
    def can_warm(self) -> bool:
        """Whether the local model can read a prompt ahead of a request (not in-process)."""
        return getattr(self.engine.local, "warm", None) is not None

    def warm(self, inp: CompletionInput) -> Future[Any] | None:
        """Have the local model read the prompt for this cursor ahead of the first request (at
        lower priority than requests); None when the model is not ready or cannot (in-process)."""
        local = self.engine.local
        if not self.can_warm or not local.ready:
            return None
        future: Future[Any] | None = local.warm(self.task.builder.build(inp).tokens)  # type: ignore[attr-defined]
        return future

    def complete_blocking(self, inp: CompletionInput) -> CompletionResult:
        return asyncio.run(self.complete(inp))

    def cached(
        self, inp: CompletionInput, text: str, started: float, *, typed: int = 0, alternatives: tuple[str, ...] = ()
    ) -> CompletionResult:
        return self.engine.cached_completion(inp.path, text, started, typed=typed, alternatives=alternatives)
