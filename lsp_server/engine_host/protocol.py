"""What travels between a client (language server, CLI, git hook) and the engine process.

Frames: a 4-byte big-endian length, then one JSON object. A client sends requests, each
with an `id` of its choosing; the engine answers each with a `Reply` carrying the same
`id` (a generation's reply comes when it ends), and pushes `Event`s (the model finished
loading, or failed to) to every client. Only `cancel` gets no reply: the generation it
names ends with stop reason "cancelled" instead.

Token lists travel as JSON arrays; a keystroke's prompt is a few kilobytes, far below
what one decode step costs.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from local_models.fim import FimSource
from lsp_server.backends.base import Fork, Generation, Usage
from lsp_server.engine_host.runtime import PROTOCOL_VERSION

MAX_FRAME = 64 << 20
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame that is not a message of this protocol."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests (client -> engine) ------------------------------------------------------


class Hello(_Message):
    op: Literal["hello"] = "hello"
    id: int
    protocol: int = PROTOCOL_VERSION
    client: str = Field("", max_length=200)  # what the user reads in `ninetyten engine status`


class Tokenize(_Message):
    op: Literal["tokenize"] = "tokenize"
    id: int
    texts: list[str]
    # Per text: read `<|...|>` as control tokens (chat template markup) or as plain text.
    special: list[bool] | None = None


class Detokenize(_Message):
    op: Literal["detokenize"] = "detokenize"
    id: int
    tokens: list[int]
    special: bool = False


class Generate(_Message):
    op: Literal["generate"] = "generate"
    id: int
    tokens: list[int] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    time_limit_s: float | None = Field(None, gt=0)
    # The stop rule as data (backends/portable.py): rebuilt in the engine, run between two tokens.
    stop: dict[str, Any] | None = None
    background: bool = False  # runs after real requests, and stops when one arrives
    speculate: bool = False  # drafts where the engine's model checks them exactly
    # Alternatives (GenerationRequest): tokens taken as generated, where to record a fork, and
    # which texts the first token may have (portable data, like `stop`).
    forced: list[int] = Field(default_factory=list)
    fork_below: float | None = None
    fork_width: int = Field(0, ge=0, le=64)
    first_text_ok: dict[str, Any] | None = None
    heal: str = Field("", max_length=256)  # token healing (GenerationRequest.heal)


class Warm(_Message):
    """Evaluate a prompt ahead of time, when nothing more urgent waits; nothing is generated."""

    op: Literal["warm"] = "warm"
    id: int
    tokens: list[int] = Field(min_length=1)


class Forget(_Message):
    """Drop this client's KV state: its next prompt is read from the first token."""

    op: Literal["forget"] = "forget"
    id: int


class Cancel(_Message):
    op: Literal["cancel"] = "cancel"
    id: int
    target: int


class Status(_Message):
    op: Literal["status"] = "status"
    id: int


Request = Annotated[
    Union[Hello, Tokenize, Detokenize, Generate, Warm, Forget, Cancel, Status], Field(discriminator="op")
]
_requests: TypeAdapter[Any] = TypeAdapter(Request)


# -- replies and events (engine -> client) ---------------------------------------------


class FimIds(_Message):
    prefix: int
    suffix: int
    middle: int
    pad: int | None = None
    repo_name: int | None = None
    file_sep: int | None = None
    source: FimSource = "metadata"


class EngineInfo(_Message):
    """What a client needs to know about the loaded model, and the engine's state."""

    state: Literal["loading", "ready", "failed"]
    pid: int
    model_path: str
    n_ctx: int = 0
    fim: FimIds | None = None
    bos: int | None = None
    chat_template: str | None = None
    bos_text: str = ""
    eos_text: str = ""
    load_seconds: float | None = None
    error: str | None = None
    clients: int = 0
    # Speculative decoding: rows per batch that decode exactly as alone (1: none), and why
    # requests that ask for drafts get none, when they get none.
    exact_rows: int = 1
    speculation_note: str | None = None


class UsageData(_Message):
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    queue_ms: float = 0.0
    draft_tokens: int = 0
    accepted_tokens: int = 0

    @classmethod
    def of(cls, usage: Usage) -> "UsageData":
        return cls(**dataclasses.asdict(usage))

    def usage(self) -> Usage:
        return Usage(**self.model_dump())


class ForkData(_Message):
    step: int
    alternatives: list[tuple[int, float]]


class GenerationData(_Message):
    text: str
    stop_reason: Literal["eos", "stop_rule", "max_tokens", "time_limit", "cancelled", "context_full"]
    usage: UsageData
    token_logprobs: list[float] = Field(default_factory=list)
    tokens: list[int] = Field(default_factory=list)
    fork: ForkData | None = None

    @classmethod
    def of(cls, generation: Generation) -> "GenerationData":
        fork = generation.fork
        return cls(
            text=generation.text,
            stop_reason=generation.stop_reason,
            usage=UsageData.of(generation.usage),
            token_logprobs=generation.token_logprobs,
            tokens=generation.tokens,
            fork=ForkData(step=fork.step, alternatives=list(fork.alternatives)) if fork is not None else None,
        )

    def generation(self) -> Generation:
        fork = Fork(self.fork.step, tuple(self.fork.alternatives)) if self.fork is not None else None
        return Generation(
            self.text, self.stop_reason, self.usage.usage(), list(self.token_logprobs), list(self.tokens), fork
        )


class Reply(_Message):
    id: int
    error: str | None = None
    info: EngineInfo | None = None
    tokens: list[list[int]] | None = None
    text: str | None = None
    generation: GenerationData | None = None
    warmed: int | None = None  # prompt tokens a warm-up evaluated (the rest were cached)
    status: dict[str, Any] | None = None


class Event(_Message):
    event: Literal["loaded"]
    info: EngineInfo


_incoming: TypeAdapter[Any] = TypeAdapter(Union[Reply, Event])


# -- frames ---------------------------------------------------------------------------


def encode(message: BaseModel) -> bytes:
    body = message.model_dump_json(exclude_none=True).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def parse_request(body: bytes) -> Any:
    try:
        return _requests.validate_json(body)
    except ValueError as error:
        raise ProtocolError(f"not a request: {_first_line(error)}") from None


def parse_incoming(body: bytes) -> Reply | Event:
    try:
        return _incoming.validate_json(body)
    except ValueError as error:
        raise ProtocolError(f"not a reply: {_first_line(error)}") from None


def request_id(body: bytes) -> int | None:
    """The id of a request that failed validation, so that its error still reaches the caller."""
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


class FrameReader:
    """Reads whole frames from a blocking socket; None at the end of the stream."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            chunk = self._sock.recv(max(65536, size - len(self._buffer)))
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def read(self) -> bytes | None:
        if not self._fill(_HEADER.size):
            return None
        (length,) = _HEADER.unpack_from(self._buffer)
        if length > MAX_FRAME:
            raise ProtocolError(f"a frame of {length} bytes is over the {MAX_FRAME}-byte limit")
        if not self._fill(_HEADER.size + length):
            return None
        body = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
        del self._buffer[: _HEADER.size + length]
        return body
