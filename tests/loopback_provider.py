"""A real HTTP server on 127.0.0.1 that speaks the providers' documented protocols.

One server answers both APIs:
- Anthropic Messages: `POST /v1/messages` (JSON, or SSE with `stream: true`);
- OpenAI: `POST /v1/chat/completions`, `POST /v1/completions` (JSON, or SSE `data:` chunks
  ending with `data: [DONE]`), and `GET /v1/models`.

Every request is recorded as received (headers included, key values too, so a test can
check that a key went to this host and no other). Faults make it misbehave the way real
providers do; set one for every request (`provider.fault = "status:503"`) or queue one per
request (`provider.queue("status:429", "ok")`, used first-in first-out before the default):

    ok                 answer normally (streams are chunked, HTTP/1.1)
    status:<code>      an error status with the provider's error JSON; 429 sends
                       `Retry-After: <provider.retry_after>` (default "1")
    timeout            read the request, then never answer (for `provider.hang_s`)
    malformed_json     200 with a broken JSON body / SSE data line
    stream_cut         a few chunks (`provider.cut_after`), then drop the connection mid-body
    stream_end_early   a few chunks, then end the body cleanly without the final event
    stream_error       a few chunks, then the provider's in-stream error event
                       (Anthropic `overloaded_error`, OpenAI `{"error": ...}` chunk)
    slow_stream        each chunk after `provider.chunk_delay_s` (default 0.2 s)
    hold               wait until `provider.release()` (or close), then answer normally
    disconnect         close the connection without any response
    redirect:<url>     307 to <url> (a client must not follow it with its key)
    ignore_stream      answer `stream: true` with one JSON body, as some gateways do
    malformed_body     a broken JSON body even when a stream was asked for

A refused connection is a port nobody listens on: `unused_port()`. A TLS failure is an
`https://` URL pointed at this plain-HTTP server (`provider.https_url`).

What the server saw of each exchange, for tests that must not measure time: `in_flight` and
`max_in_flight` (requests being answered at once), and `ending(n)` for request number n:
whether the answer was written whole or the client hung up first, and how many text chunks
went out (`None` while it is still being answered).

Usable outside pytest as a context manager: `with LoopbackProvider() as provider: ...`.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FAULTS", "Ending", "LoopbackProvider", "RecordedRequest", "loopback_provider", "unused_port"]

FAULTS = (
    "ok",
    "status:<code>",
    "timeout",
    "malformed_json",
    "stream_cut",
    "stream_end_early",
    "stream_error",
    "slow_stream",
    "hold",
    "disconnect",
    "redirect:<url>",
    "ignore_stream",
    "malformed_body",
)

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "service_unavailable",
    529: "overloaded",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; values as sent (keys included)
    body: Any  # parsed JSON, or None
    raw: bytes
    fault: str  # what the server did with it
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Ending:
    """How the server's side of one exchange ended."""

    client_gone: bool  # the client closed the connection before the answer was written whole
    chunks: int  # text chunks written (streams), before the end or the hang-up


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (the OS just handed it out and it was closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _default_reply(request: RecordedRequest) -> str:
    return f"loopback reply to {_prompt_chars(request.body)} chars"


def _prompt_chars(body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    total = 0
    if isinstance(body.get("system"), str):
        total += len(body["system"])
    for message in body.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            total += len(message["content"])
    if isinstance(body.get("prompt"), str):
        total += len(body["prompt"])
    if isinstance(body.get("suffix"), str):
        total += len(body["suffix"])
    return total


def _pieces(text: str) -> list[str]:
    """The reply in streaming chunks, one word (with its trailing space) each: ~one token."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64
    provider: LoopbackProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-stream on purpose (stop rules, cancel, timeouts): not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackProvider:
    """Threaded loopback server for both provider APIs; see the module docstring."""

    def __init__(self, *, reply: str | Callable[[RecordedRequest], str] | None = None, host: str = "127.0.0.1") -> None:
        self.reply = reply
        self.host = host
        self.fault = "ok"
        self.retry_after: str | None = "1"
        self.chunk_delay_s = 0.2  # slow_stream
        self.hang_s = 60.0  # timeout
        self.cut_after = 2  # content chunks before stream_cut / stream_end_early / stream_error
        self.send_usage = True  # OpenAI: honour stream_options.include_usage
        self.model_ids = ["loopback-model"]
        self._faults: deque[str] = deque()
        self._requests: list[RecordedRequest] = []
        self._endings: dict[int, Ending] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server((self.host, 0), _Handler)
        server.provider = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-provider", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()  # releases handlers stuck in `timeout` / `slow_stream` / `hold`
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base for Anthropic (`AnthropicBackend(provider.url, ...)`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base for OpenAI-compatible clients, `/v1` included."""
        return f"{self.url}/v1"

    @property
    def https_url(self) -> str:
        """The same port over https: the TLS handshake fails against this plain server."""
        return f"https://{self.host}:{self.port}"

    # -- faults and records -----------------------------------------------------------

    def queue(self, *faults: str) -> None:
        """Faults for the next requests, in order; `self.fault` applies once they are used up."""
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> str:
        with self._lock:
            return self._faults.popleft() if self._faults else self.fault

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._endings.clear()
            self._faults.clear()

    def release(self) -> None:
        """Let every `hold` request (those waiting now and any later one) be answered."""
        self._released.set()

    def ending(self, index: int) -> Ending | None:
        """How request number `index` (0-based, arrival order) ended; None while it is being answered."""
        with self._lock:
            return self._endings.get(index)

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[RecordedRequest]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if len(self.requests) >= count:
                break
            time.sleep(0.01)
        return self.requests

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return len(self._requests) - 1

    def _ended(self, index: int, ending: Ending) -> None:
        with self._lock:
            self._endings[index] = ending
            self.in_flight -= 1

    def reply_for(self, request: RecordedRequest) -> str:
        if callable(self.reply):
            return self.reply(request)
        return self.reply if self.reply is not None else _default_reply(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like real providers
    server: _Server
    timeout = 30  # idle keep-alive connections end on their own
    chunks_sent = 0  # text chunks of the answer being written

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests assert on logs

    @property
    def provider(self) -> LoopbackProvider:
        return self.server.provider

    # -- dispatch ----------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "loopback"} for m in self.provider.model_ids]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        fault = self.provider._next_fault()
        record = RecordedRequest(
            method="POST",
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
            fault=fault,
        )
        index = self.provider._record(record)
        self.chunks_sent = 0
        api = {"/v1/messages": "anthropic", "/v1/chat/completions": "chat", "/v1/completions": "text"}.get(path)
        client_gone = False
        try:
            if api is None:
                self._json(404, {"error": {"message": "not found", "type": "not_found_error"}})
            elif not isinstance(body, dict):
                self._error(api, 400, "body is not a JSON object")
            else:
                self._serve(api, record, fault)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client hung up (stop rule, cancel): fine
            client_gone = True
        finally:
            self.provider._ended(index, Ending(client_gone=client_gone, chunks=self.chunks_sent))

    def _serve(self, api: str, record: RecordedRequest, fault: str) -> None:
        provider = self.provider
        if fault.startswith("status:"):
            self._error(api, int(fault.split(":", 1)[1]), "loopback fault", record)
            return
        if fault.startswith("redirect:"):
            self.send_response(307)
            self.send_header("location", fault.split(":", 1)[1])
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if fault == "timeout":
            provider._stopping.wait(provider.hang_s)
            self._drop()
            return
        if fault == "hold":
            while not provider._released.wait(0.05) and not provider._stopping.is_set():
                pass
        if fault == "disconnect":
            self._drop()
            return
        text = provider.reply_for(record)
        pieces = _pieces(text)
        max_tokens = record.body.get("max_tokens")
        truncated = isinstance(max_tokens, int) and 0 < max_tokens < len(pieces)
        if truncated:
            pieces = pieces[:max_tokens]
        usage = (max(1, _prompt_chars(record.body) // 4), len(pieces))
        if not record.body.get("stream") or fault in ("ignore_stream", "malformed_body"):
            if fault in ("malformed_json", "malformed_body"):
                self._raw(200, "application/json", b'{"id": "broken", "choices": [')
            else:
                self._json(200, _whole(api, record, "".join(pieces), truncated, usage))
            return
        self._stream(api, record, pieces, truncated, usage, fault)

    # -- streaming ---------------------------------------------------------------------

    def _stream(
        self, api: str, record: RecordedRequest, pieces: list[str], truncated: bool, usage: tuple[int, int], fault: str
    ) -> None:
        provider = self.provider
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        events = _anthropic_events if api == "anthropic" else _openai_events
        delay = provider.chunk_delay_s if fault == "slow_stream" else 0.0
        cut = fault in ("stream_cut", "stream_end_early", "stream_error")
        for sent, is_piece, frame in events(api, record, pieces, truncated, usage, provider):
            if cut and sent >= provider.cut_after:
                if fault == "stream_cut":
                    self._drop()  # mid-body: no terminating chunk
                    return
                if fault == "stream_error":
                    self._chunk(_stream_error(api))
                break
            if fault == "malformed_json" and is_piece and sent == 1:
                frame = _BROKEN[api == "anthropic"]
            if delay and is_piece and provider._stopping.wait(delay):
                self._drop()
                return
            self._chunk(frame)
            self.chunks_sent += is_piece
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- low level -----------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _raw(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, "application/json", json.dumps(payload).encode(), headers)

    def _error(self, api: str, status: int, message: str, record: RecordedRequest | None = None) -> None:
        if status == 401 and record is not None:
            # Like OpenAI, echo the key that was sent: a client must never repeat the message.
            sent = record.headers.get("x-api-key") or record.headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {sent}"
        headers: dict[str, str] = {}
        if status == 429 and self.provider.retry_after is not None:
            headers["retry-after"] = self.provider.retry_after
        if api == "anthropic":
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
            }
        else:
            payload = {
                "error": {
                    "message": message,
                    "type": _OPENAI_ERROR_TYPES.get(status, "server_error"),
                    "param": None,
                    "code": None,
                }
            }
        self._json(status, payload, headers)


# -- protocol bodies -----------------------------------------------------------------------


# What `malformed_json` sends instead of the second content chunk.
_BROKEN = {
    False: b'data: {"choices": [{"delta": {"content": "unterminated\n\n',
    True: b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {\n\n',
}


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n".encode()


def _anthropic_events(
    api: str,
    record: RecordedRequest,
    pieces: list[str],
    truncated: bool,
    usage: tuple[int, int],
    provider: LoopbackProvider,
) -> Iterator[tuple[int, bool, bytes]]:
    """(content chunks sent before it, is a content chunk, frame), in the documented Messages order."""
    model = record.body.get("model", "loopback-model")
    yield (
        0,
        False,
        _sse(
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_loopback_{len(provider.requests)}",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage[0], "output_tokens": 1},
                },
            },
            "message_start",
        ),
    )
    yield (
        0,
        False,
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
    )
    yield 0, False, _sse({"type": "ping"}, "ping")
    for n, piece in enumerate(pieces):
        yield (
            n,
            True,
            _sse(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                "content_block_delta",
            ),
        )
    done = len(pieces)
    yield done, False, _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield (
        done,
        False,
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens" if truncated else "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage[1]},
            },
            "message_delta",
        ),
    )
    yield done, False, _sse({"type": "message_stop"}, "message_stop")


def _openai_events(
    api: str,
    record: RecordedRequest,
    pieces: list[str],
    truncated: bool,
    usage: tuple[int, int],
    provider: LoopbackProvider,
) -> Iterator[tuple[int, bool, bytes]]:
    model = record.body.get("model", "loopback-model")
    chat = api == "chat"
    base = {
        "id": f"cmpl-loopback-{len(provider.requests)}",
        "created": int(time.time()),
        "model": model,
        "object": "chat.completion.chunk" if chat else "text_completion",
    }

    def choice(text: str | None, finish: str | None) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            return {"index": 0, "delta": delta, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    yield 0, False, b": loopback keep-alive\n\n"  # an SSE comment, as some gateways send
    if chat:
        yield (
            0,
            False,
            _sse(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                }
            ),
        )
    for n, piece in enumerate(pieces):
        yield n, True, _sse({**base, "choices": [choice(piece, None)]})
    done = len(pieces)
    yield done, False, _sse({**base, "choices": [choice(None, "length" if truncated else "stop")]})
    options = record.body.get("stream_options")
    if provider.send_usage and isinstance(options, dict) and options.get("include_usage"):
        yield (
            done,
            False,
            _sse(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": usage[0],
                        "completion_tokens": usage[1],
                        "total_tokens": usage[0] + usage[1],
                    },
                }
            ),
        )
    yield done, False, _sse("[DONE]")


def _stream_error(api: str) -> bytes:
    if api == "anthropic":
        return _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    return _sse({"error": {"message": "The server had an error", "type": "server_error"}})


def _whole(api: str, record: RecordedRequest, text: str, truncated: bool, usage: tuple[int, int]) -> dict[str, Any]:
    model = record.body.get("model", "loopback-model")
    if api == "anthropic":
        return {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if truncated else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
    finish = "length" if truncated else "stop"
    counts = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    if api == "chat":
        return {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": counts,
        }
    return {
        "id": "cmpl-loopback",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        "usage": counts,
    }


try:  # the fixture exists only where pytest does: the class is reused outside tests
    import pytest

    @pytest.fixture
    def loopback_provider() -> Iterator[LoopbackProvider]:
        with LoopbackProvider() as provider:
            yield provider

except ImportError:  # pragma: no cover
    pass
