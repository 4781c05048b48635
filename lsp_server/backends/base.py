"""What every backend speaks: a generation request in, a generation with usage out."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol

StopReason = Literal["eos", "stop_rule", "max_tokens", "time_limit", "cancelled", "context_full"]

# Called with the text generated so far; returns the index to cut it at to stop.
StopCheck = Callable[[str], "int | None"]


class BackendError(Exception):
    """A backend could not serve a request; the message is safe to show a user."""


class CancelToken:
    """Set from the event loop, read by the generating thread between tokens."""

    def __init__(self) -> None:
        self._event = threading.Event()
        # What the generation had done when it stopped, for the ledger and the client.
        self.generation: Generation | None = None

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class GenerationRequest:
    prompt_tokens: list[int]
    max_tokens: int = 64
    time_limit_s: float | None = None
    stop: StopCheck | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served from the KV cache
    completion_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    queue_ms: float = 0.0  # waiting for the worker thread

    @property
    def total_ms(self) -> float:
        return self.queue_ms + self.prompt_ms + self.generation_ms


@dataclass
class Generation:
    text: str
    stop_reason: StopReason
    usage: Usage
    token_logprobs: list[float] = field(default_factory=list)

    @property
    def mean_logprob(self) -> float | None:
        if not self.token_logprobs:
            return None
        return math.fsum(self.token_logprobs) / len(self.token_logprobs)

    @property
    def min_logprob(self) -> float | None:
        return min(self.token_logprobs) if self.token_logprobs else None


class Backend(Protocol):
    name: str
    model_name: str

    async def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Generation: ...
