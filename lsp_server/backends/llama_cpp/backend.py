"""The local tier: llama.cpp in-process through llama-cpp-python.

One `Llama` per model, driven from one dedicated worker thread: llama.cpp contexts
are not thread-safe, and pygls reads stdin through its own thread pool, so model
work must never run there. The generation loop is ours (greedy, token by token)
so that a cancel flag, stop rules, a time box and token log-probabilities are all
checked between two tokens, and so that the KV cache is reused for the longest
common prefix of consecutive prompts.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from local_models.fim import FimTokens
from lsp_server.backends.base import (
    BackendError,
    CancelToken,
    ChatMessage,
    ChatRequest,
    Generation,
    GenerationRequest,
    StopReason,
    Usage,
)
from lsp_server.backends.llama_cpp.chat_template import render_pieces, stop_at_strings, stop_on_repetition

log = logging.getLogger(__name__)
_native_log = logging.getLogger("ninetyten.llama_cpp")
_log_callback: Any = None


# Models being loaded right now: while one loads, llama.cpp's lines describe the file.
_loading = 0
_NATIVE_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_:]{0,80}):")


def native_log_line(text: str, loading: bool) -> str:
    """What a llama.cpp log line may say in our log.

    While a model loads its lines describe the model file (metadata, tensors, buffers);
    afterwards a line could carry part of a prompt or of generated text, so only the
    function that wrote it and its length are kept.
    """
    text = text.rstrip()
    if loading:
        return text
    found = _NATIVE_PREFIX.match(text)
    return f"{found.group(1) if found else 'llama.cpp'}: ({len(text)} characters withheld)"


def _route_native_log() -> None:
    """Send llama.cpp's own log lines to Python logging instead of stderr.

    llama-cpp-python maps ggml's log levels with an older numbering and prints
    warnings such as the SWA cache note straight to stderr, which ends up in
    commit hooks and terminals. Installed once; the callback must stay referenced.
    """
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if _native_log.isEnabledFor(logging.DEBUG):
            _native_log.debug("%s", native_log_line(text.decode("utf-8", "replace"), _loading > 0))

    _log_callback = forward
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


class _TemplateNotCompiled:
    """Stands in for llama-cpp-python's chat formatter while a model loads.

    `Llama()` compiles every chat template in the GGUF's metadata, in this process, for
    chat handlers ninetyten never uses: a broken or deeply nested template would stop the
    model from loading at all. Templates are rendered by chat_template.py instead,
    sandboxed and with limits, falling back to a plain layout.
    """

    def __init__(self, **_: Any) -> None:
        pass

    def to_chat_handler(self) -> None:
        return None


_formatter_swap = threading.Lock()


@contextlib.contextmanager
def _chat_templates_not_compiled() -> Iterator[None]:
    from llama_cpp import llama_chat_format

    with _formatter_swap:
        original = llama_chat_format.Jinja2ChatFormatter
        llama_chat_format.Jinja2ChatFormatter = _TemplateNotCompiled  # type: ignore[misc,assignment]
        try:
            yield
        finally:
            llama_chat_format.Jinja2ChatFormatter = original  # type: ignore[misc]


# Prompt tokens are fed in slices this size so a cancel lands between slices.
PROMPT_SLICE = 256
CANCEL_GRACE_S = 5.0


@dataclass(frozen=True)
class LlamaSettings:
    # A path, or a function that finds one (it may assemble a file: run it on the
    # model thread, not in the LSP initialize handler).
    model: Path | Callable[[], Path]
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = -1  # -1: every layer, when the build supports GPU offload; 0: none


def default_threads() -> int:
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(count, 8))


class LlamaCppBackend:
    """Owns the model, its context and the thread that drives them."""

    name = "llama_cpp"

    def __init__(self, settings: LlamaSettings, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.settings = settings
        # What the time box and the timings read; a test injects its own to drive the time box.
        self._clock = clock
        self.model_path: Path | None = settings.model if isinstance(settings.model, Path) else None
        self.model_name = self.model_path.name if self.model_path else "(resolving)"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ninetyten-llama")
        self._llm: Any = None
        self._load_future: Future[None] | None = None
        self.fim: FimTokens | None = None
        self.stop_tokens: frozenset[int] = frozenset()
        self.bos: int | None = None
        self.n_ctx = settings.n_ctx
        self.load_seconds: float | None = None
        self.catalog_entry: Any = None  # FIM template fallback when the GGUF has none

    # -- loading -------------------------------------------------------------

    def start_loading(self) -> Future[None]:
        """Load the model on the worker thread; idempotent."""
        if self._load_future is None:
            self._load_future = self._executor.submit(self._load)
        return self._load_future

    def load(self) -> None:
        """Load and wait (for the CLI and benchmarks)."""
        self.start_loading().result()

    @property
    def ready(self) -> bool:
        return self._load_future is not None and self._load_future.done() and self._load_future.exception() is None

    @property
    def load_failed(self) -> bool:
        future = self._load_future
        return future is not None and future.done() and future.exception() is not None

    async def wait_ready(self, timeout: float | None = None) -> None:
        future = asyncio.wrap_future(self.start_loading())
        await asyncio.wait_for(asyncio.shield(future), timeout)

    def _load(self) -> None:
        import llama_cpp

        from local_models.fim import detect_fim_tokens, special_token_ids

        global _loading
        _route_native_log()
        started = time.perf_counter()
        model = self.settings.model
        path = model if isinstance(model, Path) else model()
        self.model_path, self.model_name = path, path.name
        threads = self.settings.n_threads or default_threads()
        _loading += 1
        try:
            with _chat_templates_not_compiled():
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.settings.n_ctx,
                    n_batch=self.settings.n_batch,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=self.settings.n_gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0,
                    # Keep the whole window for models with sliding-window attention, or
                    # a shortened prompt could never reuse the cache.
                    swa_full=True,
                    logits_all=False,
                    verbose=False,
                )
        except Exception as exc:  # llama.cpp reports load failures as ValueError/RuntimeError
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        finally:
            _loading -= 1
        self._llm = llm
        self.n_ctx = llm.n_ctx()
        self.fim = detect_fim_tokens(llm, self.catalog_entry)
        self.stop_tokens = special_token_ids(llm)
        add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "true") != "false"
        self.bos = llm.token_bos() if add_bos and llm.token_bos() >= 0 else None
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s in %.2fs (fim=%s)", path.name, self.load_seconds, self.fim is not None)

    @property
    def llm(self) -> Any:
        if self._llm is None:
            raise BackendError("the local model is not loaded yet")
        return self._llm

    # -- tokenizing ----------------------------------------------------------

    def tokenize_text(self, text: str) -> list[int]:
        """Plain text: no BOS, and `<|...|>` read as text, never as a control token."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    @property
    def has_chat_template(self) -> bool:
        return bool(self.llm.metadata.get("tokenizer.chat_template"))

    def chat_tokens(self, messages: list[ChatMessage]) -> tuple[list[int], tuple[str, ...]]:
        """The model's chat template around the messages (contents tokenized as plain
        text), and the strings that end the answer when the template has no end token.

        The template comes from the model file: the first time a shape of conversation is
        rendered this waits for a sandboxed child process. Use `chat_tokens_async` on the
        event loop."""
        llm = self.llm
        template = llm.metadata.get("tokenizer.chat_template")

        def vocab_text(token: int) -> str:
            return llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

        rendered = render_pieces(
            template, messages, bos_token=vocab_text(llm.token_bos()), eos_token=vocab_text(llm.token_eos())
        )
        tokens: list[int] = []
        for piece in rendered.pieces:
            tokens += llm.tokenize(piece.text.encode("utf-8"), add_bos=False, special=not piece.is_content)
        if self.bos is not None and (not tokens or tokens[0] != self.bos):
            tokens.insert(0, self.bos)
        return tokens, rendered.stop_strings

    async def chat_tokens_async(self, messages: list[ChatMessage]) -> tuple[list[int], tuple[str, ...]]:
        """`chat_tokens` on a worker thread: a slow or hostile template never stalls the event loop."""
        return await asyncio.to_thread(self.chat_tokens, messages)

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation:
        prompt, stops = await self.chat_tokens_async(request.messages)
        return await self.generate(
            GenerationRequest(
                prompt_tokens=prompt,
                max_tokens=request.max_tokens,
                time_limit_s=request.time_limit_s,
                stop=stop_on_repetition(stop_at_strings(stops, request.stop)),
            ),
            cancel,
        )

    # -- generating ----------------------------------------------------------

    async def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation:
        """Run a generation on the worker thread; cancelling the awaiting task stops it."""
        token = cancel or CancelToken()
        submitted = self._clock()
        future = asyncio.wrap_future(self._executor.submit(self._generate_sync, request, token, submitted))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            token.cancel()
            # The worker stops within one token; wait for it so the caller can report it.
            try:
                token.generation = await asyncio.wait_for(asyncio.shield(future), CANCEL_GRACE_S)
            except Exception:
                pass
            raise

    def generate_blocking(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation:
        return self._executor.submit(self._generate_sync, request, cancel or CancelToken(), self._clock()).result()

    def _generate_sync(self, request: GenerationRequest, cancel: CancelToken, submitted: float) -> Generation:
        import llama_cpp

        llm = self.llm
        started = self._clock()
        usage = Usage(queue_ms=(started - submitted) * 1000.0)
        tokens = list(request.prompt_tokens)
        if not tokens:
            raise BackendError("empty prompt")
        if cancel.cancelled:
            return Generation("", "cancelled", usage)
        max_new = min(request.max_tokens, self.n_ctx - len(tokens))
        if max_new <= 0:
            raise BackendError(f"prompt of {len(tokens)} tokens does not fit the {self.n_ctx}-token context")

        deadline = started + request.time_limit_s if request.time_limit_s else None
        reused = self._reuse_prefix(tokens)
        usage.prompt_tokens = len(tokens)
        usage.cached_prompt_tokens = reused
        pending = tokens[reused:]
        for start in range(0, len(pending), PROMPT_SLICE):
            if cancel.cancelled:
                usage.prompt_ms = (self._clock() - started) * 1000.0
                return Generation("", "cancelled", usage)
            llm.eval(pending[start : start + PROMPT_SLICE])
        prompt_done = self._clock()
        usage.prompt_ms = (prompt_done - started) * 1000.0

        ctx = llm._ctx.ctx
        n_vocab = llm.n_vocab()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = ""
        logprobs: list[float] = []
        reason: StopReason = "max_tokens"
        generated = 0
        while True:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            token = int(np.argmax(logits))
            if token in self.stop_tokens:
                reason = "eos"
                break
            top = float(logits[token])
            logprobs.append(-float(np.log(np.exp(logits - top, dtype=np.float64).sum())))
            generated += 1
            text += decoder.decode(llm.detokenize([token]))
            if request.stop is not None:
                cut = request.stop(text)
                if cut is not None:
                    text = text[:cut]
                    reason = "stop_rule"
                    break
            if generated >= max_new:
                reason = "max_tokens"
                break
            if cancel.cancelled:
                reason = "cancelled"
                break
            if deadline is not None and self._clock() >= deadline:
                reason = "time_limit"
                break
            if llm.n_tokens >= self.n_ctx:
                reason = "context_full"
                break
            llm.eval([token])
        text += decoder.decode(b"", final=True)
        usage.completion_tokens = generated
        usage.generation_ms = (self._clock() - prompt_done) * 1000.0
        return Generation(text=text, stop_reason=reason, usage=usage, token_logprobs=logprobs)

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the cached tokens shared with this prompt; return how many."""
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens]
        limit = min(len(cached), len(tokens))
        if limit == 0:
            llm.n_tokens = 0
            return 0
        mismatch = np.nonzero(cached[:limit] != np.asarray(tokens[:limit], dtype=cached.dtype))[0]
        common = int(mismatch[0]) if mismatch.size else limit
        # Decode at least one token so the logits belong to this prompt.
        common = min(common, len(tokens) - 1)
        if common > 0 and llm._ctx.kv_cache_seq_rm(-1, common, -1):
            llm.n_tokens = common
            return common
        llm.n_tokens = 0
        return 0

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
