"""What the engine and the features need of a local model, wherever it runs.

Two classes speak it: `LlamaCppBackend` (llama.cpp in this process) and the engine process's
client (`engine_host.client.EngineBackend`, the default: one process per user and model,
shared by every editor window, the CLI and the git hook).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

from local_models.fim import FimTokens
from lsp_server.backends.base import CancelToken, ChatMessage, ChatRequest, Generation, GenerationRequest

# How long a cancelled generation is waited for, so that its caller can report what it did.
CANCEL_GRACE_S = 5.0

T = TypeVar("T")


class LocalBackend(Protocol):
    name: str
    model_name: str
    model_path: Path | None
    catalog_entry: Any  # the catalog's entry for the model (FIM fallback), set while resolving
    fim: FimTokens | None
    bos: int | None
    n_ctx: int
    load_seconds: float | None

    @property
    def ready(self) -> bool: ...

    @property
    def load_failed(self) -> bool: ...

    @property
    def has_chat_template(self) -> bool: ...

    def start_loading(self) -> Future[None]: ...

    def load(self) -> None: ...

    async def wait_ready(self, timeout: float | None = None) -> None: ...

    def tokenize_text(self, text: str) -> list[int]: ...

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str: ...

    async def chat_tokens_async(self, messages: list[ChatMessage]) -> tuple[list[int], tuple[str, ...]]: ...

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation: ...

    async def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation: ...

    def generate_blocking(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation: ...

    def forget_cache(self) -> None:
        """Drop what the KV cache holds: the next prompt is read from its first token."""
        ...

    def close(self) -> None: ...


async def await_generation(
    waiting: asyncio.Future[T], token: CancelToken, finish: Callable[[T], Generation]
) -> Generation:
    """`finish` of what `waiting` (a generation running elsewhere) gives. When the awaiting task
    is cancelled, the generation is cancelled too and, as it stops within one token, waited for
    a moment: what it had done goes to `token.generation`, for the caller's report."""
    try:
        return finish(await asyncio.shield(waiting))
    except asyncio.CancelledError:
        token.cancel()
        try:
            token.generation = finish(await asyncio.wait_for(asyncio.shield(waiting), CANCEL_GRACE_S))
        except Exception:
            pass
        raise


__all__ = ["CANCEL_GRACE_S", "LocalBackend", "await_generation"]
