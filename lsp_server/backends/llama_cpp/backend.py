"""The local tier: llama.cpp in-process through llama-cpp-python.

One `Llama` per model, driven from one dedicated worker thread: llama.cpp contexts
are not thread-safe, and pygls reads stdin through its own thread pool, so model
work must never run there. The generation loop is ours (decoding.py) so that a cancel
flag, stop rules, a time box and token log-probabilities are all checked between two
tokens, and so that the KV cache is reused for the longest common prefix of consecutive
prompts. Requests that ask for it are decoded speculatively where that is exact
(speculative.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from local_models.fim import FimTokens
from lsp_server.backends.base import (
    BackendError,
    CancelToken,
    ChatMessage,
    ChatRequest,
    Generation,
    GenerationRequest,
    Usage,
)
from lsp_server.backends.llama_cpp.chat_template import chat_prompt, run_chat
from lsp_server.backends.llama_cpp.decoding import Output, decode_greedy, decode_speculative
from lsp_server.backends.llama_cpp.native import construct_llama, native_log_line
from lsp_server.backends.llama_cpp.settings import LlamaSettings, default_threads
from lsp_server.backends.llama_cpp.speculative import DraftModel, exact_rows, same_vocabulary
from lsp_server.backends.local import await_generation

log = logging.getLogger(__name__)


# Prompt tokens are fed in slices this size so a cancel lands between slices.
PROMPT_SLICE = 256


__all__ = ["LlamaCppBackend", "LlamaSettings", "default_threads", "native_log_line"]


class LlamaCppBackend:
    """Owns the model, its context and the thread that drives them."""

    name = "llama_cpp"

    def __init__(self, settings: LlamaSettings, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.settings = settings
        # What the time box and the timings read; a test injects its own to drive the time box.
        self.clock = clock
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
        # Speculative decoding: rows per batch that decode exactly as alone (1: none), the draft
        # model, and why speculation is off when it was asked for.
        self.exact_rows = 1
        self.draft: DraftModel | None = None
        self.speculation_note: str | None = None

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
        from local_models.fim import detect_fim_tokens, special_token_ids

        started = time.perf_counter()
        model = self.settings.model
        path = model if isinstance(model, Path) else model()
        self.model_path, self.model_name = path, path.name
        wants_drafts = self.settings.prompt_lookup or self.settings.draft_model is not None
        llm = self._construct(path, repack=not wants_drafts)
        if wants_drafts:
            self.exact_rows = exact_rows(llm, self.settings.max_draft + 1)
            if self.exact_rows < 2:
                self.speculation_note = (
                    "off: llama.cpp computes a token differently in a batch than alone "
                    "for this model and build, so drafts could change answers"
                )
                log.info("speculative decoding for %s is %s", path.name, self.speculation_note)
                del llm  # the drafts cannot be used: take the faster repacked weights after all
                llm = self._construct(path, repack=True)
            elif self.settings.draft_model is not None:
                self._load_draft(llm)
        self._llm = llm
        self.n_ctx = llm.n_ctx()
        self.fim = detect_fim_tokens(llm, self.catalog_entry)
        self.stop_tokens = special_token_ids(llm)
        add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "true") != "false"
        self.bos = llm.token_bos() if add_bos and llm.token_bos() >= 0 else None
        self.load_seconds = time.perf_counter() - started
        log.info(
            "loaded %s in %.2fs (fim=%s, exact rows=%d)",
            path.name,
            self.load_seconds,
            self.fim is not None,
            self.exact_rows,
        )

    def _construct(self, path: Path, *, repack: bool) -> Any:
        settings = self.settings
        return construct_llama(
            path,
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            threads=settings.n_threads or default_threads(),
            gpu_layers=settings.n_gpu_layers,
            repack=repack,
        )

    def _load_draft(self, llm: Any) -> None:
        """The draft model beside the model; a wrong one is a note, not a failure."""
        source = self.settings.draft_model
        assert source is not None
        try:
            path = source if isinstance(source, Path) else source()
            draft = self._construct(path, repack=True)  # its numbers never reach an answer
        except Exception as error:  # ModelError, BackendError: the model still serves, without drafts
            self.speculation_note = f"no draft model: {error}"
            log.warning("%s", self.speculation_note)
            return
        mismatch = same_vocabulary(llm, draft)
        if mismatch is not None:
            self.speculation_note = f"draft model {path.name} not used: {mismatch}"
            log.warning("%s", self.speculation_note)
            return
        self.draft = DraftModel(draft)

    @property
    def speculates(self) -> bool:
        """Whether requests that ask for drafts get them (checked exact, something to draft from)."""
        return self.exact_rows >= 2 and (self.settings.prompt_lookup or self.draft is not None)

    @property
    def llm(self) -> Any:
        if self._llm is None:
            raise BackendError("the local model is not loaded yet")
        return self._llm

    # -- tokenizing ----------------------------------------------------------

    def tokenize_text(self, text: str) -> list[int]:
        """Plain text: no BOS, and `<|...|>` read as text, never as a control token."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def tokenize_many(self, texts: list[str], special: list[bool] | None = None) -> list[list[int]]:
        """Each text without BOS; `special[i]`: `<|...|>` in text i may be a control token."""
        llm = self.llm
        flags = special or [False] * len(texts)
        return [llm.tokenize(text.encode("utf-8"), add_bos=False, special=flag) for text, flag in zip(texts, flags)]

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        """`special`: control tokens as their markup (`<|fim_prefix|>`), for showing a prompt."""
        return self.llm.detokenize(tokens, special=special).decode("utf-8", errors="replace")

    def special_text(self, token: int) -> str:
        """A vocabulary token's markup (`<bos>`); "" for a token the model has none of (-1)."""
        return self.detokenize([token], special=True) if token >= 0 else ""

    @property
    def chat_template(self) -> str | None:
        """The model file's own chat template (untrusted: see chat_template.py)."""
        return self.llm.metadata.get("tokenizer.chat_template") or None

    @property
    def has_chat_template(self) -> bool:
        return self.chat_template is not None

    def chat_tokens(self, messages: list[ChatMessage]) -> tuple[list[int], tuple[str, ...]]:
        """The model's chat template around the messages (contents tokenized as plain
        text), and the strings that end the answer when the template has no end token.

        The template comes from the model file: the first time a shape of conversation is
        rendered this waits for a sandboxed child process. Use `chat_tokens_async` on the
        event loop."""
        llm = self.llm
        return chat_prompt(
            self.chat_template,
            messages,
            self.tokenize_many,
            bos=self.bos,
            bos_text=self.special_text(llm.token_bos()),
            eos_text=self.special_text(llm.token_eos()),
        )

    async def chat_tokens_async(self, messages: list[ChatMessage]) -> tuple[list[int], tuple[str, ...]]:
        """`chat_tokens` on a worker thread: a slow or hostile template never stalls the event loop."""
        return await asyncio.to_thread(self.chat_tokens, messages)

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation:
        return await run_chat(self, request, cancel)

    # -- generating ----------------------------------------------------------

    async def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation:
        """Run a generation on the worker thread; cancelling the awaiting task stops it."""
        token = cancel or CancelToken()
        submitted = self.clock()
        future = asyncio.wrap_future(self._executor.submit(self._generate_sync, request, token, submitted))
        return await await_generation(future, token, lambda generation: generation)

    def generate_blocking(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation:
        return self._executor.submit(self._generate_sync, request, cancel or CancelToken(), self.clock()).result()

    def _generate_sync(self, request: GenerationRequest, cancel: CancelToken, submitted: float) -> Generation:
        llm = self.llm
        started = self.clock()
        usage = Usage(queue_ms=(started - submitted) * 1000.0)
        tokens = list(request.prompt_tokens)
        if not tokens:
            raise BackendError("empty prompt")
        if cancel.cancelled:
            return Generation("", "cancelled", usage)
        tokens += request.forced
        max_new = min(request.max_tokens, self.n_ctx - len(tokens))
        if max_new <= 0:
            raise BackendError(f"prompt of {len(tokens)} tokens does not fit the {self.n_ctx}-token context")

        reused = self._reuse_prefix(tokens)
        usage.prompt_tokens = len(tokens)
        usage.cached_prompt_tokens = reused
        pending = tokens[reused:]
        for start in range(0, len(pending), PROMPT_SLICE):
            if cancel.cancelled:
                usage.prompt_ms = (self.clock() - started) * 1000.0
                return Generation("", "cancelled", usage)
            llm.eval(pending[start : start + PROMPT_SLICE])
        prompt_done = self.clock()
        usage.prompt_ms = (prompt_done - started) * 1000.0
        # The time box limits generation, not reading the prompt: a cold prompt of a thousand
        # tokens on a slow CPU would otherwise leave no time for a single useful token, and
        # the prompt it read stays in the KV cache for the next request anyway.
        deadline = prompt_done + request.time_limit_s if request.time_limit_s else None

        out = Output(self, request, max_new, cancel, deadline)
        if request.speculate and self.speculates:
            decode_speculative(self, out, tokens, usage)
        else:
            decode_greedy(self, out)
        usage.completion_tokens = out.generated
        usage.generation_ms = (self.clock() - prompt_done) * 1000.0
        return out.generation(usage)

    def truncate(self, n_tokens: int) -> None:
        """Forget what the cache holds after the first `n_tokens` (rejected drafts)."""
        llm = self.llm
        if llm.n_tokens > n_tokens:
            llm._ctx.kv_cache_seq_rm(-1, n_tokens, -1)
            llm.n_tokens = n_tokens

    def common_prefix(self, tokens: list[int]) -> int:
        """How many of `tokens` the KV cache holds already, from the first."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens]
        limit = min(len(cached), len(tokens))
        if limit == 0:
            return 0
        mismatch = np.nonzero(cached[:limit] != np.asarray(tokens[:limit], dtype=cached.dtype))[0]
        return int(mismatch[0]) if mismatch.size else limit

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the cached tokens shared with this prompt; return how many."""
        llm = self._llm
        # Decode at least one token so the logits belong to this prompt.
        common = min(self.common_prefix(tokens), len(tokens) - 1)
        if common > 0 and llm._ctx.kv_cache_seq_rm(-1, common, -1):
            llm.n_tokens = common
            return common
        llm.n_tokens = 0
        return 0

    def forget_cache(self) -> None:
        """Drop the KV cache: the next prompt is evaluated from its first token (benchmarks
        compare runs that way; a cached prefix can change a model's numbers in the last bits)."""

        def clear() -> None:
            if self._llm is not None:
                self.truncate(0)

        self._executor.submit(clear).result()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
