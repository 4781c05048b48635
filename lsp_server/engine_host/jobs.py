"""The engine's job queue: real requests before warm-ups and speculation, oldest first.

Generations and warm-ups run one at a time on the engine's model thread. A job that nobody
is waiting for yet (a warm-up, a speculative completion) steps aside when a real request
arrives: a warm-up between two slices of its prompt, a background generation at its next
token. For tests of the machinery, an `Injection` makes the engine raise a signal itself.
"""

from __future__ import annotations

import faulthandler
import heapq
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lsp_server.backends.base import CancelToken, StopCheck
from lsp_server.engine_host.protocol import Forget, Generate, Warm
from lsp_server.engine_host.supervisor import ARMED_ENV

if TYPE_CHECKING:
    from lsp_server.engine_host.session import Connection

REAL, WARM = 0, 1  # queue priorities
INJECT_AFTER_TOKENS = 2


@dataclass(order=True)
class Job:
    priority: int
    seq: int
    connection: Connection = field(compare=False)
    request: Generate | Warm | Forget = field(compare=False)
    cancel: CancelToken = field(compare=False, default_factory=CancelToken)
    submitted: float = field(compare=False, default_factory=time.perf_counter)


class JobQueue:
    def __init__(self) -> None:
        self._heap: list[Job] = []
        self._ready = threading.Condition()
        self._seq = itertools.count()

    def put(self, connection: Any, request: Generate | Warm | Forget) -> Job:
        real = isinstance(request, Forget) or (isinstance(request, Generate) and not request.background)
        job = Job(REAL if real else WARM, next(self._seq), connection, request)
        with self._ready:
            heapq.heappush(self._heap, job)
            self._ready.notify()
        return job

    def take(self) -> Job:
        with self._ready:
            while not self._heap:
                self._ready.wait()
            return heapq.heappop(self._heap)

    def real_waiting(self) -> bool:
        heap = self._heap
        return bool(heap) and heap[0].priority == REAL

    def __len__(self) -> int:
        return len(self._heap)


def yield_to_requests(queue: JobQueue, cancel: CancelToken, inner: StopCheck | None) -> StopCheck:
    """A background generation stops (as cancelled) at the first token after a request arrives."""

    def check(text: str) -> int | None:
        if queue.real_waiting():
            cancel.cancel()
        return inner(text) if inner is not None else None

    return check


class Injection:
    """A signal this process raises itself at a phase, for tests of crash handling.

    `NINETYTEN_ENGINE_INJECT_ARMED=SIGNAL@load|generation` (set by the supervisor from
    `NINETYTEN_ENGINE_INJECT`): at load, from inside llama.cpp's model loader (its log
    callback); in a generation, after its second token."""

    def __init__(self, value: str) -> None:
        name, _, phase = value.partition("@")
        self.signal = getattr(signal, name.strip().upper())
        self.phase = phase.strip() or "generation"

    def fire(self) -> None:
        faulthandler.disable()  # the test wants the bare signal, not a traceback first
        os.kill(os.getpid(), self.signal)
        time.sleep(5)  # a signal whose default is not to die (SIGCHLD...) is not a crash: say so
        os._exit(70)

    @classmethod
    def from_env(cls) -> Injection | None:
        value = os.environ.get(ARMED_ENV, "").strip()
        return cls(value) if value else None


def crash_after(tokens: int, injection: Injection, inner: StopCheck | None) -> StopCheck:
    seen = 0

    def check(text: str) -> int | None:
        nonlocal seen
        seen += 1
        if seen >= tokens:
            injection.fire()
        return inner(text) if inner is not None else None

    return check
