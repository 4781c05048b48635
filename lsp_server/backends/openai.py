"""The in-house tier (and OpenAI-compatible frontier endpoints): the OpenAI HTTP API.

Speaks `POST {base}/chat/completions` and `POST {base}/completions` with `stream: true`,
which vLLM, SGLang, llama.cpp's server, Ollama and LiteLLM all serve. `base_url` ends with
the API version (`http://host:8000/v1`), as in the OpenAI SDKs.
"""

from __future__ import annotations

import json
from typing import Any

from lsp_server.backends.base import CancelToken, ChatRequest, Generation, StopReason, TextCompletionRequest
from lsp_server.backends.http.client import HttpBackend
from lsp_server.backends.http.errors import error_type_from_body
from lsp_server.backends.http.sse import SseEvent
from lsp_server.backends.http.stream import BadShape, CallSpec, GenerationStream, StreamErrorEvent, int_or_none

_FINISH: dict[str, StopReason] = {"stop": "eos", "length": "max_tokens", "eos": "eos"}


class _OpenAIParser:
    """Chunks of `chat.completion.chunk` (field `delta.content`) or `text_completion` (field `text`)."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.finished = False
        self.stop_reason: StopReason = "eos"
        self.prompt_tokens: int | None = None
        self.cached_prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.content_events = 0
        self._finish_seen = False

    def on_event(self, event: SseEvent) -> str:
        if event.is_done:
            self.finished = True
            return ""
        chunk = _json_object(event.data)
        if "error" in chunk:  # some servers report mid-stream failures as a data chunk
            raise StreamErrorEvent(error_type_from_body(chunk))
        self._usage(chunk.get("usage"))
        choices = chunk.get("choices") or []  # the usage chunk has none (or null, for some servers)
        if not isinstance(choices, list):
            raise BadShape("choices")
        text = ""
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            text += self._text(choice.get("delta") if self.chat else choice)
            self._finish(choice.get("finish_reason"))
        return text

    def on_body(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise BadShape("body")
        self._usage(body.get("usage"))
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BadShape("choices")
        choice = choices[0]
        text = self._text(choice.get("message") if self.chat else choice)
        self._finish(choice.get("finish_reason"))
        self.finished = True
        return text

    def _text(self, holder: Any) -> str:
        if holder is None:
            return ""
        if not isinstance(holder, dict):
            raise BadShape("delta")
        value = holder.get("content" if self.chat else "text")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise BadShape("content")
        if value or "role" not in holder:  # the opening role chunk carries "" but no token
            self.content_events += 1
        return value

    def _finish(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self.stop_reason = _FINISH.get(reason, "eos")
            self._finish_seen = True

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int_or_none(usage.get("prompt_tokens"))
            self.completion_tokens = int_or_none(usage.get("completion_tokens"))
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                self.cached_prompt_tokens = int_or_none(details.get("cached_tokens"))

    def whole_at_eof(self) -> bool:
        # A server that closes after `finish_reason` but before `[DONE]` still sent the whole answer.
        return self._finish_seen


def _json_object(data: str) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise BadShape("chunk")
    return value


class OpenAICompatBackend(HttpBackend):
    """Any server of the OpenAI HTTP API; the key (if any) goes in `Authorization: Bearer`."""

    name = "openai"

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    # -- chat ----------------------------------------------------------------------

    def _chat_spec(self, request: ChatRequest) -> CallSpec:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            # Ask for a last chunk with usage; servers that do not know the option ignore it.
            "stream_options": {"include_usage": True},
        }
        return CallSpec(
            path="/chat/completions",
            payload=payload,
            parser_factory=lambda: _OpenAIParser(chat=True),
            stop=request.stop,
            time_limit_s=request.time_limit_s,
            max_tokens=request.max_tokens,
            prompt_chars=sum(len(m.content) for m in request.messages),
        )

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation:
        return await self._collect(self._chat_spec(request), cancel)

    def stream_chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> GenerationStream:
        """Text deltas as they arrive (an AsyncIterator[str]); `.generation` is set at the end.

        Nothing is retried once a delta has been handed out; break early with `await stream.aclose()`.
        """
        return self._stream(self._chat_spec(request), cancel, restartable=False)

    # -- raw text completion (FIM prompts) ------------------------------------------

    def _completion_spec(self, request: TextCompletionRequest) -> CallSpec:
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.suffix is not None:
            payload["suffix"] = request.suffix
        if request.stop_sequences:
            payload["stop"] = list(request.stop_sequences)
        return CallSpec(
            path="/completions",
            payload=payload,
            parser_factory=lambda: _OpenAIParser(chat=False),
            stop=request.stop,
            time_limit_s=request.time_limit_s,
            max_tokens=request.max_tokens,
            prompt_chars=len(request.prompt) + len(request.suffix or ""),
        )

    async def complete_text(self, request: TextCompletionRequest, cancel: CancelToken | None = None) -> Generation:
        return await self._collect(self._completion_spec(request), cancel)

    def stream_text(self, request: TextCompletionRequest, cancel: CancelToken | None = None) -> GenerationStream:
        return self._stream(self._completion_spec(request), cancel, restartable=False)
