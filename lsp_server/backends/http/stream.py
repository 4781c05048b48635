"""One provider's reading of its stream, and the stream of deltas a caller iterates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from lsp_server.backends.base import (
    Generation,
    StopCheck,
    StopReason,
    Usage,
)
from lsp_server.backends.http.sse import SseEvent

# -- usage ---------------------------------------------------------------------


@dataclass
class RemoteUsage(Usage):
    """Usage as a remote tier reports it; `estimated` when some counts are ours, not the provider's."""

    estimated: bool = False


class StreamParser(Protocol):
    """One provider's reading of its stream."""

    finished: bool  # the final event arrived (or enough to know the answer is whole)
    stop_reason: StopReason
    prompt_tokens: int | None
    cached_prompt_tokens: int | None
    completion_tokens: int | None
    content_events: int  # events that carried generated text, even empty: about one token each

    def on_event(self, event: SseEvent) -> str:
        """Take one event; return its text delta ("" for none). Raise ProviderError on an error event."""
        ...

    def on_body(self, body: Any) -> str:
        """Take a whole, non-streamed JSON response; return its text."""
        ...

    def whole_at_eof(self) -> bool:
        """The stream ended without its final event: is the answer nonetheless complete?"""
        ...


class BadShape(Exception):
    """A parser found JSON of an unexpected shape; HttpBackend turns it into bad_response."""


class StreamErrorEvent(Exception):
    """A parser met the provider's own error event; HttpBackend maps its type to a kind."""

    def __init__(self, error_type: str | None) -> None:
        super().__init__(error_type)
        self.error_type = error_type


# What a parser may raise on JSON it cannot read (JSONDecodeError is a ValueError).
SHAPE_ERRORS = (ValueError, BadShape, KeyError, TypeError, IndexError, AttributeError)


@dataclass
class CallSpec:
    path: str
    payload: dict[str, Any]
    parser_factory: Callable[[], StreamParser]
    stop: StopCheck | None
    time_limit_s: float | None
    prompt_chars: int
    max_tokens: int


@dataclass
class CallAttempt:
    parser: StreamParser
    text: str = ""
    emitted: int = 0  # characters of `text` handed to the caller
    deltas: int = 0
    started: float = 0.0
    first_delta: float | None = None
    stop_reason: StopReason | None = None
    got_response: bool = False


class GenerationStream:
    """Text deltas of one remote generation; `generation` is set once it ends."""

    def __init__(self, run: Callable[[GenerationStream], AsyncGenerator[str, None]]) -> None:
        self.generation: Generation | None = None
        self.partial_text = ""  # what the caller has seen so far
        self._iterator = run(self)

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> str:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        """Stop early: closes the HTTP stream (callers that break out of the loop should call this)."""
        await self._iterator.aclose()


async def within_deadline(deadline: float | None, awaitable: Any) -> Any:
    """Await with an optional loop-time deadline (raises TimeoutError)."""
    if deadline is None:
        return await awaitable
    async with asyncio.timeout_at(deadline):
        return await awaitable


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
