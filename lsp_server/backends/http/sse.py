"""Server-Sent Events, as both providers stream them."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    event: str  # "message" when the server named none, as the SSE spec says
    data: str
    id: str | None = None

    @property
    def is_done(self) -> bool:
        """OpenAI's end-of-stream sentinel."""
        return self.data.strip() == "[DONE]"


class SseDecoder:
    """Line-at-a-time SSE decoder (WHATWG event-stream rules, minus `retry`)."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._last_id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        """Take one line (without its line break); return an event when a blank line ends one."""
        line = line.rstrip("\r\n")
        if not line:
            event = None
            if self._data:
                event = SseEvent(self._event or "message", "\n".join(self._data), self._last_id)
            self._event, self._data = None, []
            return event
        if line.startswith(":"):  # comment: keep-alives, proxies' notes
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    decoder = SseDecoder()
    for line in lines:
        if (event := decoder.feed(line)) is not None:
            yield event


async def aiter_sse(lines: AsyncIterable[str]) -> AsyncIterator[SseEvent]:
    """Events from e.g. `httpx.Response.aiter_lines()`; an event cut off by EOF is dropped."""
    decoder = SseDecoder()
    async for line in lines:
        if (event := decoder.feed(line)) is not None:
            yield event
