"""The frontier tier over Anthropic's Messages API (`POST {base}/v1/messages`, streamed).

Stream events, in the documented order: `message_start` (input token count),
then per content block `content_block_start`, `content_block_delta`s, `content_block_stop`,
then `message_delta` (stop reason, output token count) and `message_stop`. `ping` may
appear anywhere, and `error` (e.g. `overloaded_error`) may replace the rest of a stream.
Unknown event and delta types are skipped: the API adds new ones over time.
"""

from __future__ import annotations

import json
from typing import Any

from lsp_server.backends.base import CancelToken, ChatRequest, Generation, StopReason
from lsp_server.backends.http.client import HttpBackend
from lsp_server.backends.http.errors import error_type_from_body
from lsp_server.backends.http.sse import SseEvent
from lsp_server.backends.http.stream import BadShape, CallSpec, GenerationStream, StreamErrorEvent, int_or_none

ANTHROPIC_VERSION = "2023-06-01"

_STOP: dict[str, StopReason] = {
    "end_turn": "eos",
    "stop_sequence": "eos",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "context_full",
}


class _MessagesParser:
    def __init__(self) -> None:
        self.finished = False
        self.stop_reason: StopReason = "eos"
        self.prompt_tokens: int | None = None
        self.cached_prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.content_events = 0
        self._stop_seen = False

    def on_event(self, event: SseEvent) -> str:
        data = json.loads(event.data)
        if not isinstance(data, dict):
            raise BadShape("event")
        # The JSON `type` is authoritative; the SSE event name repeats it.
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            delta = data["delta"]
            if not isinstance(delta, dict):
                raise BadShape("delta")
            if delta.get("type") == "text_delta":
                self.content_events += 1
                return _text(delta.get("text"))
            return ""  # tool input, thinking, signatures: not text for the user
        if kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "text":
                return _text(block.get("text"))
            return ""
        if kind == "message_start":
            message = data["message"]
            if not isinstance(message, dict):
                raise BadShape("message")
            self._input_usage(message.get("usage"))
        elif kind == "message_delta":
            self._stop(data.get("delta", {}).get("stop_reason"))
            usage = data.get("usage")
            if isinstance(usage, dict):
                self.completion_tokens = int_or_none(usage.get("output_tokens")) or self.completion_tokens
                if "input_tokens" in usage:  # newer servers repeat the totals here
                    self._input_usage(usage)
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise StreamErrorEvent(error_type_from_body(data))
        return ""  # ping, content_block_stop, anything new

    def on_body(self, body: Any) -> str:
        if not isinstance(body, dict) or body.get("type") == "error":
            raise BadShape("message")
        content = body["content"]
        if not isinstance(content, list):
            raise BadShape("content")
        text = "".join(
            _text(block.get("text")) for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
        self._input_usage(body.get("usage"))
        usage = body.get("usage")
        if isinstance(usage, dict):
            self.completion_tokens = int_or_none(usage.get("output_tokens"))
        self._stop(body.get("stop_reason"))
        self.finished = True
        return text

    def whole_at_eof(self) -> bool:
        # `message_delta` carries the stop reason: after it only `message_stop` is missing.
        return self._stop_seen

    def _stop(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self.stop_reason = _STOP.get(reason, "eos")
            self._stop_seen = True

    def _input_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        fresh = int_or_none(usage.get("input_tokens"))
        if fresh is None:
            return
        # `input_tokens` excludes prompt caching; the prompt is all three together.
        written = int_or_none(usage.get("cache_creation_input_tokens")) or 0
        read = int_or_none(usage.get("cache_read_input_tokens")) or 0
        self.prompt_tokens = fresh + written + read
        self.cached_prompt_tokens = read


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadShape("text")
    return value


class AnthropicBackend(HttpBackend):
    """Anthropic's Messages API; the key goes in `x-api-key`."""

    name = "anthropic"

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if key:
            headers["x-api-key"] = key
        return headers

    def _spec(self, request: ChatRequest) -> CallSpec:
        # Messages API: the system prompt is a top-level field, not a message.
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
            "temperature": request.temperature,
            "stream": True,
        }
        if system:
            payload["system"] = system
        return CallSpec(
            # Tolerate a base URL given with the version, as some gateways document it.
            path="/messages" if self.base_url.endswith("/v1") else "/v1/messages",
            payload=payload,
            parser_factory=_MessagesParser,
            stop=request.stop,
            time_limit_s=request.time_limit_s,
            max_tokens=request.max_tokens,
            prompt_chars=sum(len(m.content) for m in request.messages),
        )

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation:
        return await self._collect(self._spec(request), cancel)

    def stream_chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> GenerationStream:
        """Text deltas as they arrive (an AsyncIterator[str]); `.generation` is set at the end.

        Nothing is retried once a delta has been handed out; break early with `await stream.aclose()`.
        """
        return self._stream(self._spec(request), cancel, restartable=False)
