"""Inline completions on an engine: the local FIM task, routed and escalated by the engine.

The engine knows nothing of prompts; a `Completer` hands it a `CompletionJob` made of this
feature's pieces: the local task (prompt, stop rules, post-processing), the routing
window and the remote `<CURSOR>` prompt.
"""

from __future__ import annotations

import asyncio

from lsp_server.backends.base import CancelToken
from lsp_server.completion.prompt import CompletionInput
from lsp_server.completion.remote_prompt import remote_messages, route_window
from lsp_server.completion.task import CompletionOutcome, CompletionTask
from lsp_server.engine.core import Engine
from lsp_server.engine.jobs import CompletionJob
from lsp_server.engine.results import CompletionResult


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

    def job(self, inp: CompletionInput) -> CompletionJob:
        async def run_local(cancel: CancelToken | None) -> CompletionOutcome:
            return await self.task.run(inp, cancel)

        return CompletionJob(
            path=inp.path,
            run_local=run_local,
            route_window=lambda: route_window(inp),
            remote_messages=lambda: remote_messages(inp),
        )

    async def complete(
        self, inp: CompletionInput, cancel: CancelToken | None = None, *, speculative: bool = False
    ) -> CompletionResult:
        return await self.engine.complete(self.job(inp), cancel, speculative=speculative)

    def complete_blocking(self, inp: CompletionInput) -> CompletionResult:
        return asyncio.run(self.complete(inp))

    def cached(self, inp: CompletionInput, text: str, started: float, *, typed: int = 0) -> CompletionResult:
        return self.engine.cached_completion(inp.path, text, started, typed=typed)
