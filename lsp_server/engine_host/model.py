"""The model as the engine process drives it: load, generate, warm up, and swap KV states.

The loading and the token-by-token generation loop are the in-process backend's own
(`LlamaCppBackend`): the same stop rules, cancel checks, time box, prefix reuse and
speculative decoding (prompt lookup, a draft model loaded beside the model) run on both
sides of the process boundary. This adds what only a shared engine needs: evaluating
a prompt without generating (warm-up), and saving and restoring the KV state of one
client's prompt so that several clients take turns on one context without evicting each
other (see slots.py).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Callable

from lsp_server.backends.base import CancelToken, Generation, GenerationRequest
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend
from lsp_server.engine_host.slots import SavedState

# A warm-up reads its prompt in slices this small, so that a real request waits at most
# one slice for it to step aside.
WARM_SLICE = 64


class HostedModel(LlamaCppBackend):
    """`LlamaCppBackend`, driven from the engine's own model thread instead of an executor."""

    def load_here(self) -> None:
        self._load()

    def generate_here(self, request: GenerationRequest, cancel: CancelToken, submitted: float) -> Generation:
        return self._generate_sync(request, cancel, submitted)

    def prefill(self, tokens: list[int], should_stop: Callable[[], bool]) -> int:
        """Evaluate `tokens` into the KV cache (reusing what is there); how many were evaluated."""
        llm = self.llm
        if not tokens or len(tokens) > self.n_ctx:
            return 0
        reused = self._reuse_prefix(tokens)
        pending = tokens[reused:]
        done = 0
        for start in range(0, len(pending), WARM_SLICE):
            if should_stop():
                break
            piece = pending[start : start + WARM_SLICE]
            llm.eval(piece)
            done += len(piece)
        return done

    # -- KV states -------------------------------------------------------------------

    def cached_tokens(self) -> list[int]:
        llm = self.llm
        return [int(t) for t in llm.input_ids[: llm.n_tokens]]

    def save_state(self, path: Path) -> SavedState | None:
        """Write the context's KV cells to `path`; None when it holds nothing (or the write failed)."""
        import llama_cpp

        llm = self.llm
        count = llm.n_tokens
        if count == 0:
            return None
        tokens = self.cached_tokens()
        written = llama_cpp.llama_state_seq_save_file(
            llm._ctx.ctx, str(path).encode(), 0, (llama_cpp.llama_token * count)(*tokens), count
        )
        if written <= 0:
            path.unlink(missing_ok=True)
            return None
        return SavedState(tokens, path, int(written))

    def clear_state(self) -> None:
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(0, 0, -1)
        llm.n_tokens = 0

    def restore_state(self, saved: SavedState) -> bool:
        import llama_cpp

        llm = self.llm
        self.clear_state()
        capacity = len(saved.tokens)
        tokens = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(
            llm._ctx.ctx, str(saved.path).encode(), 0, tokens, capacity, ctypes.byref(count)
        )
        if read <= 0 or list(tokens[: count.value]) != saved.tokens:
            self.clear_state()
            return False
        llm.input_ids[:capacity] = saved.tokens
        llm.n_tokens = capacity
        return True
