"""The engine process: one llama.cpp model, served to every client of one user.

Started by the supervisor (supervisor.py, through worker.py) with the listening socket
already bound; it loads the model once (with its draft model, when speculative decoding
names one) and serves clients over that socket until it has had no client for
the idle period. Threads:

- the main thread accepts connections (only from this user: SO_PEERCRED);
- one thread per connection (session.py) reads its requests: tokenizing is answered at
  once, generations and warm-ups go to the queue (jobs.py), a cancel flips the job's flag;
- the model thread loads the model, then runs the queue: real requests before warm-ups,
  oldest first; a warm-up steps aside between two slices of its prompt when a real
  request arrives, and what it has read stays in the cache. A cancel is seen between two
  tokens.

Each client has its own KV-cache slot (slots.py). The process tells the supervisor what
it is doing on a pipe (`loading`, `ready`, `busy`, `idle`...), so that when it dies the
supervisor can say whether it died loading the model or generating.

For tests of the machinery, an `Injection` (jobs.py) makes this process raise a signal
itself: at load, from inside llama.cpp's model loader (its log callback); in a
generation, after its second token.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Literal, NoReturn, TextIO

from lsp_server.backends.base import BackendError, GenerationRequest
from lsp_server.backends.llama_cpp import native
from lsp_server.backends.llama_cpp.settings import LlamaSettings
from lsp_server.backends.portable import from_data
from lsp_server.engine_host.jobs import INJECT_AFTER_TOKENS, Injection, Job, JobQueue, crash_after, yield_to_requests
from lsp_server.engine_host.model import HostedModel
from lsp_server.engine_host.protocol import (
    Detokenize,
    EngineInfo,
    Event,
    FimIds,
    Forget,
    GenerationData,
    Reply,
    Tokenize,
    Warm,
)
from lsp_server.engine_host.runtime import EngineSpec, state_dir
from lsp_server.engine_host.session import Connection, peer_uid
from lsp_server.engine_host.slots import DEFAULT_LIMIT_BYTES, Slots
from lsp_server.llama_build.selftest import parse_load_log

log = logging.getLogger(__name__)


class Daemon:
    def __init__(
        self,
        spec: EngineSpec,
        listener: socket.socket,
        report: TextIO | None = None,
        *,
        injection: Injection | None = None,
        slot_limit_bytes: int = DEFAULT_LIMIT_BYTES,
    ) -> None:
        self.spec = spec
        self.listener = listener
        self._report = report
        self._report_lock = threading.Lock()
        self.injection = injection
        draft = spec.draft_model
        settings = LlamaSettings(
            model=Path(spec.model.path),
            n_ctx=spec.n_ctx,
            n_threads=spec.threads,
            n_gpu_layers=spec.gpu_layers,
            prompt_lookup=spec.prompt_lookup,
            draft_model=Path(draft.path) if draft is not None else None,
            max_draft=spec.max_draft,
        )
        self.model = HostedModel(settings)
        if spec.catalog_id:
            from local_models import get_entry

            try:
                self.model.catalog_entry = get_entry(spec.catalog_id)
            except Exception:
                log.warning("catalog id %s is unknown; FIM detection uses the file only", spec.catalog_id)
        self.slots = Slots(self.model, state_dir(spec.key()), slot_limit_bytes)
        self.queue = JobQueue()
        self.loaded = threading.Event()
        self.load_error: str | None = None
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._last_client_left = time.monotonic()
        self._departed: list[str] = []  # appended by connection threads, drained by the model thread
        self.served = 0
        self.running: str | None = None  # "generation" or "warm" while a job runs
        self.current: Job | None = None
        self._load_complaint = ""
        self.offloaded: str | None = None  # llama.cpp's "N/M" layers on the GPU, when it said
        self.warmed_tokens = 0
        self.started_at = time.time()

    # -- to the supervisor -------------------------------------------------------------

    def tell(self, what: str) -> None:
        if self._report is None:
            return
        with self._report_lock:
            try:
                self._report.write(what + "\n")
                self._report.flush()
            except (OSError, ValueError):
                pass

    # -- what clients ask ------------------------------------------------------------

    def _state(self) -> Literal["loading", "ready", "failed"]:
        if not self.loaded.is_set():
            return "loading"
        return "failed" if self.load_error is not None else "ready"

    def info(self) -> EngineInfo:
        model = self.model
        state = self._state()
        if state == "loading":
            return EngineInfo(
                state="loading", pid=os.getpid(), model_path=self.spec.model.path, clients=len(self._connections)
            )
        if state == "failed":
            return EngineInfo(
                state="failed",
                pid=os.getpid(),
                model_path=self.spec.model.path,
                error=self.load_error,
                clients=len(self._connections),
            )
        llm = model.llm
        fim = model.fim
        return EngineInfo(
            state="ready",
            pid=os.getpid(),
            model_path=self.spec.model.path,
            n_ctx=model.n_ctx,
            fim=FimIds(**dataclasses.asdict(fim)) if fim else None,
            bos=model.bos,
            chat_template=model.chat_template,
            bos_text=model.special_text(llm.token_bos()),
            eos_text=model.special_text(llm.token_eos()),
            load_seconds=model.load_seconds,
            clients=len(self._connections),
            exact_rows=model.exact_rows,
            speculation_note=model.speculation_note,
        )

    def _wait_loaded(self, request_id: int) -> Reply | None:
        self.loaded.wait()
        if self.load_error is not None:
            return Reply(id=request_id, error=self.load_error)
        return None

    def tokenize(self, request: Tokenize) -> Reply:
        failed = self._wait_loaded(request.id)
        if failed is not None:
            return failed
        if request.special and len(request.special) != len(request.texts):
            return Reply(id=request.id, error="tokenize: one 'special' flag per text")
        return Reply(id=request.id, tokens=self.model.tokenize_many(request.texts, request.special))

    def detokenize(self, request: Detokenize) -> Reply:
        failed = self._wait_loaded(request.id)
        if failed is not None:
            return failed
        n_vocab = self.model.llm.n_vocab()
        if any(not 0 <= token < n_vocab for token in request.tokens):
            return Reply(id=request.id, error=f"detokenize: a token outside the vocabulary of {n_vocab}")
        return Reply(id=request.id, text=self.model.detokenize(request.tokens, special=request.special))

    def status(self) -> dict[str, Any]:
        with self._lock:
            clients = sorted(c.label or c.client_id for c in self._connections)
        return {
            "pid": os.getpid(),
            "model": self.spec.model.path,
            "state": self._state(),
            "clients": clients,
            "queued": len(self.queue),
            "running": self.running,
            "served": self.served,
            "warmed_tokens": self.warmed_tokens,
            "slots": self.slots.describe(),
            "gpu_layers_offloaded": self.offloaded,
            "n_ctx": self.model.n_ctx,
            "started_at": self.started_at,
        }

    # -- connections -------------------------------------------------------------------

    def serve_forever(self) -> None:
        threading.Thread(target=self._model_thread, name="engine-model", daemon=True).start()
        threading.Thread(target=self._idle_watch, name="engine-idle", daemon=True).start()
        uid = os.getuid()
        while True:
            try:
                sock, _ = self.listener.accept()
            except InterruptedError:
                continue
            except OSError as error:
                log.error("the engine's socket failed: %s", error)
                self.exit(1)
            peer = peer_uid(sock)
            if peer is not None and peer != uid:
                log.warning("refused a connection from uid %d", peer)
                sock.close()
                continue
            connection = Connection(sock, self, next(self._numbers))
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=connection.serve, name=connection.client_id, daemon=True).start()

    def exit(self, code: int) -> NoReturn:
        """End the process now (threads and all), leaving no saved prompt state behind."""
        self.slots.close()
        logging.shutdown()
        os._exit(code)

    def closed(self, connection: Connection) -> None:
        for job in list(connection.jobs.values()):
            job.cancel.cancel()
        with self._lock:
            self._connections.discard(connection)
            if not self._connections:
                self._last_client_left = time.monotonic()
        # The model thread owns the slots; it forgets the client when it next runs.
        self._departed.append(connection.client_id)

    def broadcast(self, event: Event) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.send(event)

    def _idle_watch(self) -> None:
        idle_s = self.spec.idle_s
        while True:
            time.sleep(min(0.5, idle_s / 4))
            with self._lock:
                empty = not self._connections
                since = time.monotonic() - self._last_client_left
            if empty and since >= idle_s and not len(self.queue):
                log.info("no client for %.0f s: exiting", since)
                self.tell("exit-idle")
                self.exit(0)

    # -- the model thread --------------------------------------------------------------

    def _native_log(self, text: str, loading: bool) -> None:
        if not loading:
            return
        if self.injection is not None and self.injection.phase == "load":
            self.injection.fire()
        # While loading, llama.cpp's lines describe the file; its complaint about a damaged
        # one is more precise than the exception that follows.
        line = text.strip()
        if line and any(word in line.lower() for word in ("error", "failed", "invalid", "corrupt")):
            self._load_complaint = line[:300]
        offloaded, _ = parse_load_log(line)
        if offloaded:
            self.offloaded = offloaded

    def _model_thread(self) -> None:
        self.tell("loading")
        native.native_log_hook = self._native_log
        try:
            self.model.load_here()
        except Exception as error:  # a load error is a message for every client, not a crash
            self.load_error = (
                str(error)
                if isinstance(error, BackendError)
                else f"llama.cpp could not load {self.spec.model.path}: {error}"
            )
            if self._load_complaint and self._load_complaint not in self.load_error:
                self.load_error += f" ({self._load_complaint})"
            log.error("%s", self.load_error)
            self.loaded.set()
            self.tell("failed " + self.load_error.replace("\n", " "))
            self.broadcast(Event(event="loaded", info=self.info()))
            return
        finally:
            native.native_log_hook = None
        self._first_decode()
        self.loaded.set()
        self.tell("ready")
        self.broadcast(Event(event="loaded", info=self.info()))
        while True:
            job = self.queue.take()
            while self._departed:
                self.slots.client_left(self._departed.pop())
            self.running = "warm" if isinstance(job.request, Warm) else "generation"
            self.current = job
            try:
                self._run(job)
            except Exception:  # one bad job must not end the engine
                log.exception("a job failed")
                job.connection.send(Reply(id=job.request.id, error="the engine failed on this request"))
            finally:
                self.running = self.current = None
                job.connection.finished(job)

    def _first_decode(self) -> None:
        """The first decode on a new context is slow (threads start, buffers are first touched):
        pay for it before saying "ready", not in the first request."""
        try:
            bos = self.model.bos if self.model.bos is not None else self.model.llm.token_bos()
            self.model.prefill([max(bos, 0)], lambda: False)
            self.model.clear_state()
        except Exception:
            log.debug("the first decode failed", exc_info=True)

    def _run(self, job: Job) -> None:
        request = job.request
        connection = job.connection
        if isinstance(request, Warm):
            if job.cancel.cancelled or len(request.tokens) > self.model.n_ctx:
                connection.send(Reply(id=request.id, warmed=0))
                return
            self.slots.activate(connection.client_id, request.tokens)
            self.tell("busy")
            done = self.model.prefill(request.tokens, lambda: job.cancel.cancelled or self.queue.real_waiting())
            self.tell("idle")
            self.warmed_tokens += done
            connection.send(Reply(id=request.id, warmed=done))
            return
        if isinstance(request, Forget):
            self.slots.activate(connection.client_id, [])
            self.model.clear_state()
            connection.send(Reply(id=request.id, warmed=0))
            return
        try:
            stop = from_data(request.stop)
            first_text_ok = from_data(request.first_text_ok)
        except BackendError as error:
            connection.send(Reply(id=request.id, error=str(error)))
            return
        if request.background:
            stop = yield_to_requests(self.queue, job.cancel, stop)
        if self.injection is not None and self.injection.phase == "generation":
            stop = crash_after(INJECT_AFTER_TOKENS, self.injection, stop)
        self.slots.activate(connection.client_id, request.tokens)
        self.tell("busy")
        try:
            generation = self.model.generate_here(
                GenerationRequest(
                    prompt_tokens=list(request.tokens),
                    max_tokens=request.max_tokens,
                    time_limit_s=request.time_limit_s,
                    stop=stop,
                    speculate=request.speculate,
                    forced=list(request.forced),
                    fork_below=request.fork_below,
                    fork_width=request.fork_width,
                    first_text_ok=first_text_ok,
                    heal=request.heal,
                ),
                job.cancel,
                job.submitted,
            )
        except BackendError as error:
            self.tell("idle")
            connection.send(Reply(id=request.id, error=str(error)))
            return
        self.tell("idle")
        if self.served == 0:
            self.tell("served")
        self.served += 1
        connection.send(Reply(id=request.id, generation=GenerationData.of(generation)))
