"""The one place a request becomes an answer: model, task and (later) routing together.

The LSP server and the CLI both talk to an `Engine`; neither knows how a model runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from local_models import ResolvedModel, resolve_model

from .backends.base import CancelToken, Usage
from .backends.llama_cpp import LlamaCppBackend, LlamaSettings
from .config import ServerConfig
from .tasks.completion import CompletionTask
from .tasks.completion_prompt import CompletionInput

log = logging.getLogger(__name__)


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

    def summary(self) -> dict[str, object]:
        """The content-free description sent to clients and printed by the CLI."""
        return {
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
            **{key: round(value, 1) for key, value in self.extra.items()},
        }


class Engine:
    """Owns the local model and the tasks that use it."""

    def __init__(self, config: ServerConfig, *, explicit_model: str | None = None, progress: bool = False) -> None:
        self.config = config
        self.explicit_model = explicit_model  # --model beats NINETYTEN_MODEL beats config.model
        self.model: ResolvedModel | None = None
        self._progress = progress
        self.local = LlamaCppBackend(LlamaSettings(model=self._resolve, n_ctx=config.n_ctx, n_threads=config.threads))
        self._completion: CompletionTask | None = None

    def _resolve(self) -> Path:
        # Runs on the model thread: the embedded model may need assembling first.
        self.model = resolve_model(self.explicit_model, self.config.model, progress=self._progress)
        self.local.catalog_entry = self.model.entry
        return self.model.path

    def start(self) -> None:
        self.local.start_loading()

    async def wait_ready(self, timeout: float | None = None) -> None:
        await self.local.wait_ready(timeout if timeout is not None else self.config.load_timeout_s)

    def completion_task(self) -> CompletionTask:
        if self._completion is None:
            self._completion = CompletionTask(self.local, self.config.completion)
        return self._completion

    async def complete(self, inp: CompletionInput, cancel: CancelToken | None = None) -> CompletionResult:
        started = time.perf_counter()
        await self.wait_ready()
        waited_ms = (time.perf_counter() - started) * 1000.0
        outcome = await self.completion_task().run(inp, cancel)
        generation = outcome.generation
        return CompletionResult(
            text=outcome.text,
            tier="local",
            backend=self.local.name,
            model=self.local.model_name,
            usage=generation.usage,
            stop_reason=generation.stop_reason,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            mean_logprob=generation.mean_logprob,
            prompt_mode=outcome.prompt.mode,
            extra={"build_ms": outcome.build_ms, "waited_for_model_ms": waited_ms},
        )

    def complete_blocking(self, inp: CompletionInput) -> CompletionResult:
        return asyncio.run(self.complete(inp))

    def close(self) -> None:
        self.local.close()
