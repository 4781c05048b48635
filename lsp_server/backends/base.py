"""What every backend speaks: a generation request in, a generation with usage out."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Literal, Protocol

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
        # Told when the token is cancelled: a generation in another process is stopped by a message.
        self._listeners: list[Callable[[], None]] = []

    def cancel(self) -> None:
        self._event.set()
        for listener in list(self._listeners):
            listener()

    def on_cancel(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` when cancelled (at once if already); returns what removes it again."""
        self._listeners.append(listener)
        if self.cancelled:
            listener()

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class GenerationRequest:
    prompt_tokens: list[int]
    max_tokens: int = 64
    time_limit_s: float | None = None
    stop: StopCheck | None = None
    # Draft tokens (prompt lookup, a draft model) where the backend can check them exactly.
    speculate: bool = False
    # Tokens taken as already generated: evaluated after the prompt, and their text starts
    # the answer (what the stop rule sees). An alternative continues a fork this way.
    forced: list[int] = field(default_factory=list)
    # Record the first step whose chosen token's log-probability is below `fork_below`, with
    # up to `fork_width` runner-up tokens (see Fork): where the model was unsure.
    fork_below: float | None = None
    fork_width: int = 0
    # Which texts the first generated token may have (None: any); end-of-text is always allowed.
    first_text_ok: Callable[[str], bool] | None = None
    # Token healing: the text the prompt was cut short of (its end, left out so that the model
    # may choose the tokens that cover it, as it saw such text tokenized in training). The
    # generation must start with it; the answer is what comes after it.
    heal: str = ""
    # Work nobody asked for yet (a speculative completion): a shared engine runs it after real
    # requests and stops it when one arrives.
    background: bool = False


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass
class ChatRequest:
    """A chat-style request (explain, refactor, ask) for any tier."""

    messages: list[ChatMessage]
    max_tokens: int = 512
    temperature: float = 0.0
    time_limit_s: float | None = None
    stop: StopCheck | None = None
    speculate: bool = False  # the local model may draft tokens (the answer stays the same)


@dataclass
class TextCompletionRequest:
    """A raw text completion (FIM prompt as text) for OpenAI-compatible `/v1/completions`."""

    prompt: str
    suffix: str | None = None
    max_tokens: int = 64
    temperature: float = 0.0
    time_limit_s: float | None = None
    stop_sequences: list[str] = field(default_factory=list)
    stop: StopCheck | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served from the KV cache
    completion_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    queue_ms: float = 0.0  # waiting for the worker thread
    draft_tokens: int = 0  # speculative decoding: tokens drafted ...
    accepted_tokens: int = 0  # ... and kept (the model wrote them itself)

    @property
    def total_ms(self) -> float:
        return self.queue_ms + self.prompt_ms + self.generation_ms


@dataclass(frozen=True)
class Fork:
    """The first place a generation was unsure: after `step` generated tokens, the runner-up
    tokens and their log-probabilities (best first; end-of-text tokens excluded)."""

    step: int
    alternatives: tuple[tuple[int, float], ...]


@dataclass
class Generation:
    text: str
    stop_reason: StopReason
    usage: Usage
    token_logprobs: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # the generated ids (forced ones included)
    fork: Fork | None = None

    @property
    def mean_logprob(self) -> float | None:
        if not self.token_logprobs:
            return None
        return math.fsum(self.token_logprobs) / len(self.token_logprobs)

    @property
    def min_logprob(self) -> float | None:
        return min(self.token_logprobs) if self.token_logprobs else None


class Backend(Protocol):
    """The async interface every tier speaks. Remote backends raise ProviderError."""

    name: str
    model_name: str

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation: ...

    def stream_chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> AsyncIterator[str]: ...


ProviderErrorKind = Literal[
    "rate_limited",  # 429
    "overloaded",  # 529 / 503
    "server_error",  # other 5xx
    "timeout",
    "connection",  # refused, DNS, TLS
    "auth",  # 401/403: never retried
    "bad_request",  # other 4xx: never retried
    "bad_response",  # malformed JSON / unexpected shape
    "stream_cut",  # the stream ended before its final event
    "cooling_down",  # the tier failed repeatedly and is resting
    "missing_key",  # the policy names an env var that is not set
    "insecure_transport",  # a key would travel over plain http to another machine: nothing is sent
]


class ProviderError(BackendError):
    """A remote tier failed. The message never contains a key, a header or the prompt."""

    def __init__(
        self, kind: ProviderErrorKind, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.kind in ("rate_limited", "overloaded", "server_error", "timeout", "connection", "stream_cut")
