"""The local tier served by the user's engine process: `EngineBackend`.

`EngineBackend` stands where the in-process `LlamaCppBackend` stands (backends/local.py):
the completion task, the chat tasks and the eval harness call the same methods (tokenize,
generate, chat...) and the work happens in the engine process. What a native crash there
means here:

- every request in flight fails at once with `EngineCrashed`, naming the signal and what
  the engine was doing (read from the supervisor's status file), well within a second;
- the user is told once (`on_notice`), not once per request, until a generation succeeds
  again;
- the next request reconnects: the supervisor has restarted the engine meanwhile, so the
  request waits for the model to load, like the first one did;
- a model that crashed the engine three times in a row while loading is refused with a
  message naming the file, and the user is told that too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from local_models.fim import FimTokens
from lsp_server.backends.base import BackendError, CancelToken, ChatMessage, ChatRequest, Generation, GenerationRequest
from lsp_server.backends.llama_cpp.chat_template import chat_prompt, run_chat
from lsp_server.backends.llama_cpp.settings import LlamaSettings
from lsp_server.backends.local import LocalBackend, await_generation
from lsp_server.backends.portable import to_data
from lsp_server.engine_host.connection import (
    EngineConnection,
    EngineCrashed,
    EngineUnavailable,
    ModelMarkedBad,
    attach,
    crash_of,
)
from lsp_server.engine_host.notices import Notice, Notices
from lsp_server.engine_host.protocol import (
    Cancel,
    Detokenize,
    EngineInfo,
    Forget,
    Generate,
    Hello,
    Reply,
    Tokenize,
    Warm,
)
from lsp_server.engine_host.runtime import EnginePaths, EngineSpec, spec_for

log = logging.getLogger(__name__)

ENGINE_ENV = "NINETYTEN_ENGINE"  # "in-process" keeps llama.cpp in the calling process


# -- the backend ---------------------------------------------------------------------------


class EngineBackend:
    """The local tier, served by the shared engine process."""

    name = "llama_cpp"

    def __init__(
        self,
        settings: LlamaSettings,
        *,
        on_notice: Notice | None = None,
        client: str = "",
        connect_timeout_s: float = 300.0,
        runtime_directory: Path | None = None,
    ) -> None:
        self.settings = settings
        self.client_label = f"{Path(sys.argv[0]).name} pid {os.getpid()}" + (f" ({client})" if client else "")
        self.connect_timeout_s = connect_timeout_s
        self._runtime_directory = runtime_directory
        self.model_path: Path | None = settings.model if isinstance(settings.model, Path) else None
        self.model_name = self.model_path.name if self.model_path else "(resolving)"
        self.catalog_entry: Any = None
        self.fim: FimTokens | None = None
        self.bos: int | None = None
        self.n_ctx = settings.n_ctx
        self.load_seconds: float | None = None
        self.info: EngineInfo | None = None
        # Speculative decoding in the engine: rows per batch checked exact there (1: none), and why
        # requests that ask for drafts get none.
        self.exact_rows = 1
        self.speculation_note: str | None = None
        self.spec: EngineSpec | None = None
        self.paths: EnginePaths | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ninetyten-engine-connect")
        self._load_future: Future[None] | None = None
        self._connection: EngineConnection | None = None
        self._state_lock = threading.Lock()
        self._closing = False
        self.notices = Notices(on_notice)

    # -- connecting ------------------------------------------------------------------

    def start_loading(self) -> Future[None]:
        """Connect to the engine (starting it when needed) and wait for the model; idempotent
        until the connection is lost, after which the next call reconnects."""
        with self._state_lock:
            future = self._load_future
            if future is None or (future.done() and self._reconnect_after(future)):
                future = self._load_future = self._executor.submit(self._connect)
            return future

    def _reconnect_after(self, attempt: Future[None]) -> bool:
        """A finished attempt is tried again when the engine died or went away since (the
        supervisor restarts it); not when the model failed to load or is marked bad."""
        error = attempt.exception()
        if error is None:
            return self._connection is None or self._connection.closed
        return isinstance(error, (EngineCrashed, EngineUnavailable))

    def load(self) -> None:
        self.start_loading().result()

    @property
    def ready(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.closed and self.info is not None and self.info.state == "ready"

    @property
    def load_failed(self) -> bool:
        future = self._load_future
        return future is not None and future.done() and future.exception() is not None

    async def wait_ready(self, timeout: float | None = None) -> None:
        future = asyncio.wrap_future(self.start_loading())
        await asyncio.wait_for(asyncio.shield(future), timeout)

    def _spec(self) -> tuple[EngineSpec, EnginePaths]:
        if self.spec is None or self.paths is None:
            model = self.settings.model
            path = model if isinstance(model, Path) else model()  # may set catalog_entry
            self.model_path, self.model_name = path, path.name
            self.spec, note = spec_for(self.settings, path, getattr(self.catalog_entry, "id", None))
            if note is not None:  # the model still serves, without drafts, as in-process
                self.speculation_note = note
                log.warning("%s", note)
            self.paths = EnginePaths(self.spec.key(), self._runtime_directory)
        return self.spec, self.paths

    def _connect(self) -> None:
        """One attempt to reach a ready engine. A crash while loading fails it at once (the
        requests waiting for the model get their empty answer); the next request tries again,
        by then on the engine the supervisor restarted."""
        spec, paths = self._spec()
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            try:
                self._attach_once(spec, paths, deadline)
                return
            except ModelMarkedBad as error:
                self.notices.marked_bad(str(error))
                raise
            except EngineUnavailable:
                # Connected just as an idle engine exited, or it is being started: again.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _attach_once(self, spec: EngineSpec, paths: EnginePaths, deadline: float) -> None:
        sock = attach(spec, paths)
        connection = EngineConnection(sock, self._on_lost)
        self._connection = connection
        reply = connection.request(
            lambda number: Hello(id=number, client=self.client_label), timeout=max(deadline - time.monotonic(), 1.0)
        )
        info = reply.info
        assert info is not None
        connection.info = info
        if info.state == "loading":
            info = connection.loaded.result(timeout=max(deadline - time.monotonic(), 1.0))
        if info.state == "failed":
            raise BackendError(info.error or f"the local engine could not load {spec.model.path}")
        self._apply(info)
        connection.info = info
        log.info("attached to the local engine (pid %d, %s)", info.pid, paths.socket)

    def _apply(self, info: EngineInfo) -> None:
        self.info = info
        self.n_ctx = info.n_ctx or self.n_ctx
        self.bos = info.bos
        self.load_seconds = info.load_seconds
        fim = info.fim
        self.fim = FimTokens(**fim.model_dump()) if fim is not None else None
        self.exact_rows = info.exact_rows
        if info.speculation_note:
            self.speculation_note = info.speculation_note
        if (self.settings.prompt_lookup or self.settings.draft_model is not None) and self.speculation_note:
            log.info("speculative decoding for %s: %s", self.model_name, self.speculation_note)

    def _on_lost(self, connection: EngineConnection, pending: list[Future[Reply]]) -> None:
        if connection.closing or self._closing:
            error: BackendError = EngineUnavailable("the connection to the local engine was closed")
            crash = None
        else:
            info = connection.info
            crash = crash_of(self.paths, info.pid if info else None) if self.paths is not None else None
            if crash is not None:
                error = EngineCrashed(f"the local engine crashed: {crash.describe()}", crash)
            else:  # stopped (`ninetyten engine stop`), or its supervisor was killed
                error = EngineUnavailable("the local engine went away")
        if not connection.loaded.done():
            connection.loaded.set_exception(error)
        for future in pending:
            if not future.done():
                future.set_exception(error)
        if crash is not None:
            self.notices.crashed(crash, self.model_path.name if self.model_path else "the model")

    # -- the model's vocabulary ------------------------------------------------------

    def _live(self) -> EngineConnection:
        connection = self._connection
        if connection is None or connection.closed or not self.ready:
            raise EngineUnavailable("the local engine is not connected")
        return connection

    def tokenize_text(self, text: str) -> list[int]:
        """Plain text: no BOS, and `<|...|>` read as text, never as a control token."""
        return self.tokenize_many([text])[0]

    def tokenize_many(self, texts: list[str], special: list[bool] | None = None) -> list[list[int]]:
        if not texts:
            return []
        reply = self._live().request(lambda number: Tokenize(id=number, texts=texts, special=special))
        assert reply.tokens is not None
        return reply.tokens

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        reply = self._live().request(lambda number: Detokenize(id=number, tokens=tokens, special=special))
        return reply.text or ""

    def forget_cache(self) -> None:
        """Drop this client's KV state in the engine: its next prompt is read from the first token."""
        self._live().request(lambda number: Forget(id=number))

    @property
    def has_chat_template(self) -> bool:
        return bool(self.info and self.info.chat_template)

    def chat_tokens(self, messages: list[ChatMessage]) -> tuple[list[int], tuple[str, ...]]:
        """As `LlamaCppBackend.chat_tokens`: the template is rendered here (sandboxed), the
        pieces are tokenized by the engine in one round trip."""
        info = self.info
        if info is None:
            raise EngineUnavailable("the local engine is not connected")
        return chat_prompt(
            info.chat_template,
            messages,
            self.tokenize_many,
            bos=self.bos,
            bos_text=info.bos_text,
            eos_text=info.eos_text,
        )

    async def chat_tokens_async(self, messages: list[ChatMessage]) -> tuple[list[int], tuple[str, ...]]:
        return await asyncio.to_thread(self.chat_tokens, messages)

    # -- generating --------------------------------------------------------------------

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation:
        return await run_chat(self, request, cancel)

    def _submit(self, request: GenerationRequest, token: CancelToken) -> tuple[Future[Reply], Callable[[], None]]:
        if not request.prompt_tokens:
            raise BackendError("empty prompt")
        connection = self._live()
        # NotPortable: a rule the engine cannot run is refused, never dropped.
        stop, first_text_ok = to_data(request.stop), to_data(request.first_text_ok)
        number, future = connection.call(
            lambda n: Generate(
                id=n,
                tokens=list(request.prompt_tokens),
                max_tokens=request.max_tokens,
                time_limit_s=request.time_limit_s,
                stop=stop,
                background=request.background,
                speculate=request.speculate,
                forced=list(request.forced),
                fork_below=request.fork_below,
                fork_width=request.fork_width,
                first_text_ok=first_text_ok,
                heal=request.heal,
            )
        )
        remove = token.on_cancel(lambda: connection.send(lambda n: Cancel(id=n, target=number)))
        return future, remove

    def _result(self, reply: Reply) -> Generation:
        if reply.error is not None:
            raise BackendError(reply.error)
        assert reply.generation is not None
        generation = reply.generation.generation()
        if generation.stop_reason != "cancelled":
            self.notices.worked()
        return generation

    async def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation:
        """A generation in the engine; cancelling the awaiting task (or the token) stops it
        within one token."""
        token = cancel or CancelToken()
        future, remove = self._submit(request, token)
        try:
            return await await_generation(asyncio.wrap_future(future), token, self._result)
        finally:
            remove()

    def generate_blocking(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation:
        token = cancel or CancelToken()
        future, remove = self._submit(request, token)
        try:
            return self._result(future.result())
        finally:
            remove()

    def warm(self, tokens: list[int]) -> Future[Reply] | None:
        """Have the engine read `tokens` into this client's KV cache when it is otherwise idle."""
        if not tokens or not self.ready:
            return None
        try:
            _, future = self._live().call(lambda n: Warm(id=n, tokens=list(tokens)))
        except BackendError:
            return None
        return future

    def close(self) -> None:
        self._closing = True
        connection = self._connection
        if connection is not None:
            connection.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


def local_backend(
    settings: LlamaSettings, mode: str = "shared", *, on_notice: Notice | None = None, client: str = ""
) -> LocalBackend:
    """The local tier's backend: the shared engine, or llama.cpp in this process when asked
    (`engine = "in-process"` in the settings, or NINETYTEN_ENGINE=in-process)."""
    chosen = os.environ.get(ENGINE_ENV, "").strip() or mode
    if chosen == "in-process":
        from lsp_server.backends.llama_cpp.backend import LlamaCppBackend

        return LlamaCppBackend(settings)
    return EngineBackend(settings, on_notice=on_notice, client=client)
