"""Reading LSP messages off a byte stream without ever losing the stream.

pygls's own loop expects every frame to be perfect: a wrong Content-Length or a body
without a trailing newline glues the next header to garbage, and from then on every
message is dropped. This loop finds headers anywhere in a line, recovers the message
at the start of an over-long frame and re-reads the rest, and answers what it cannot
parse with a JSON-RPC error instead of a pop-up in the editor.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any, Awaitable, Callable, Protocol

from lsprotocol.types import ResponseError

log = logging.getLogger(__name__)

CONTENT_LENGTH = re.compile(rb"Content-Length:[ \t]*(\d+)", re.IGNORECASE)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # beyond this a frame is skipped, not buffered

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class ByteReader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


class PushbackReader:
    """A reader that can be handed bytes back (the part of a frame that was the next message)."""

    def __init__(self, reader: ByteReader) -> None:
        self.reader = reader
        self.pending = b""

    def unread(self, data: bytes) -> None:
        self.pending = data + self.pending

    async def readline(self) -> bytes:
        if self.pending:
            index = self.pending.find(b"\n")
            if index >= 0:
                line, self.pending = self.pending[: index + 1], self.pending[index + 1 :]
                return line
            line, self.pending = self.pending, b""
            return line + await self.reader.readline()
        return await self.reader.readline()

    async def readexactly(self, n: int) -> bytes:
        taken, self.pending = self.pending[:n], self.pending[n:]
        missing = n - len(taken)
        if missing <= 0:
            return taken
        chunk = await self.reader.readexactly(missing)
        # pygls's stdin reader returns short reads at EOF instead of raising
        return taken + (chunk or b"")


async def serve_stream(
    stop_event: threading.Event, reader: ByteReader, protocol: Any, on_message: Callable[[Any, bytes], None]
) -> None:
    """Read frames until EOF or stop; hand each body to `on_message(protocol, body)`."""
    stream = PushbackReader(reader)
    length: int | None = None
    while not stop_event.is_set():
        line = await stream.readline()
        if not line:
            break
        found = CONTENT_LENGTH.search(line)
        if found:
            length = int(found.group(1))
            continue
        if line.strip() or length is None:
            continue  # other headers, or garbage between frames
        if length > MAX_MESSAGE_BYTES:
            log.warning("skipping a %d-byte message (limit %d)", length, MAX_MESSAGE_BYTES)
            remaining = length
            while remaining > 0:
                chunk = await stream.readexactly(min(remaining, 1 << 20))
                if not chunk:
                    return
                remaining -= len(chunk)
            send_error(protocol, None, INVALID_REQUEST, f"message larger than {MAX_MESSAGE_BYTES} bytes")
            length = None
            continue
        body = await stream.readexactly(length)
        length = None
        if not body:
            break
        next_header = CONTENT_LENGTH.search(body)
        if next_header is not None and not _is_json(body):
            # The frame said it was longer than it was: keep the message at its start,
            # give the following frame back to the reader.
            start = (
                body.rfind(b"\n", 0, next_header.start()) + 1
                if b"\n" in body[: next_header.start()]
                else next_header.start()
            )
            stream.unread(body[start:])
            body = body[:start]
        on_message(protocol, body)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def send_error(protocol: Any, msg_id: Any, code: int, message: str) -> None:
    try:
        if msg_id is None:  # JSON-RPC wants an explicit null id when the request's id is unknown
            protocol._send_data({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}})
            return
        protocol._send_response(msg_id, None, ResponseError(code=code, message=message))
    except Exception:  # the connection may be gone; nothing more to do
        log.debug("could not send an error response", exc_info=True)


def leading_json(body: bytes) -> tuple[Any, bytes] | None:
    """The JSON value at the start of `body`, if there is one, and what follows it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return None
    offset = len(text) - len(text.lstrip()) + end
    return value, text[offset:].encode("utf-8")
