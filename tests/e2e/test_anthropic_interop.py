"""The Anthropic Messages client against a server this project did not write.

tests/loopback_provider.py speaks the Messages API as we read its documentation; so does our
client, and the same reading could be wrong on both sides. Here LiteLLM's proxy (a test
dependency) serves `/v1/messages` and translates it to an OpenAI-compatible model:
llama-cpp-python's own server on a tiny generated GGUF, all on loopback and offline.

What the client makes of each answer is checked against the proxy's own JSON, read with
nothing but httpx: greedy decoding makes both answers to the same request the same.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from lsp_server.backends.anthropic import ANTHROPIC_VERSION, AnthropicBackend
from lsp_server.backends.base import ChatMessage, ChatRequest, ProviderError
from lsp_server.backends.http.retry import NO_RETRY
from tests.e2e.test_inhouse_llama_server import llama_server  # noqa: F401 (fixture)
from tests.loopback_provider import unused_port
from tests.prerequisites import missing

MODEL = "claude-interop"
KEY_ENV = "NINETYTEN_TEST_LITELLM_KEY"
KEY = "sk-litellm-interop-5e2a"
START_TIMEOUT_S = 180.0

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def litellm_proxy(llama_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """LiteLLM's proxy on a free loopback port in front of llama_cpp.server; yields its base URL."""
    if importlib.util.find_spec("litellm") is None or importlib.util.find_spec("fastapi") is None:
        missing("LiteLLM's proxy (litellm[proxy])", "pip install -e '.[dev]'")
    folder = tmp_path_factory.mktemp("litellm")
    config = folder / "config.yaml"
    # Every model behind the proxy is an OpenAI-compatible server: the `openai/` provider. The
    # last setting makes /v1/messages use its chat/completions API, which llama.cpp's server has
    # (LiteLLM would otherwise translate to OpenAI's newer Responses API).
    config.write_text(f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/tiny
      api_base: {llama_server}
      api_key: unused
general_settings:
  master_key: {KEY}
litellm_settings:
  telemetry: false
  use_chat_completions_url_for_anthropic_messages: true
""")
    port = unused_port()
    log_path = folder / "proxy.log"
    # LITELLM_LOCAL_MODEL_COST_MAP: use the price list inside the package, never fetch one.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "litellm.proxy.proxy_cli",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=folder
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"LiteLLM's proxy exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health/liveliness", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"LiteLLM's proxy did not answer within {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def question(max_tokens: int = 12) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage("system", "You are terse."), ChatMessage("user", "Say hello.")], max_tokens=max_tokens
    )


def reference(base: str, request: ChatRequest) -> dict[str, Any]:
    """The proxy's whole-JSON answer to what the client sends, read with httpx alone."""
    body = {
        "model": MODEL,
        "max_tokens": request.max_tokens,
        "temperature": 0.0,
        "system": "\n\n".join(m.content for m in request.messages if m.role == "system"),
        "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
    }
    response = httpx.post(
        f"{base}/v1/messages",
        json=body,
        timeout=120,
        headers={"x-api-key": KEY, "anthropic-version": ANTHROPIC_VERSION},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["type"] == "message" and answer["role"] == "assistant", answer
    return answer


def reference_stream(base: str, request: ChatRequest) -> dict[str, Any]:
    """The proxy's stream for the same request, read line by line with httpx alone: its text,
    stop reason and the token counts its events carry."""
    body = {
        "model": MODEL,
        "max_tokens": request.max_tokens,
        "temperature": 0.0,
        "stream": True,
        "system": "\n\n".join(m.content for m in request.messages if m.role == "system"),
        "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
    }
    events = []
    with httpx.stream(
        "POST",
        f"{base}/v1/messages",
        json=body,
        timeout=120,
        headers={"x-api-key": KEY, "anthropic-version": ANTHROPIC_VERSION},
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data:") :]) for line in response.iter_lines() if line.startswith("data:")]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    counts = {**events[0]["message"]["usage"]}
    for event in events:
        if event["type"] == "message_delta":
            counts.update(event.get("usage") or {})
    return {
        "text": "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta"),
        "stop_reason": next(e["delta"]["stop_reason"] for e in events if e["type"] == "message_delta"),
        "usage": counts,
    }


def text_of(answer: dict[str, Any]) -> str:
    return "".join(block["text"] for block in answer["content"] if block["type"] == "text")


class WithoutStreaming(httpx.AsyncBaseTransport):
    """Sends the client's request with `"stream": false`, so the proxy answers with one JSON body:
    the client's path for servers that do not stream. Records the content types it got back."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.content_types: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        body["stream"] = False
        content = json.dumps(body).encode()
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(content)).encode()))
        changed = httpx.Request(
            request.method, request.url, headers=headers, content=content, extensions=request.extensions
        )
        response = await self.inner.handle_async_request(changed)
        self.content_types.append(response.headers.get("content-type", ""))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def backend(litellm_proxy: str, key: str) -> AsyncIterator[AnthropicBackend]:
    client = AnthropicBackend(litellm_proxy, MODEL, api_key_env=KEY_ENV, timeout_s=120.0, retry=NO_RETRY)
    yield client
    await client.aclose()


async def test_streamed_answer_matches_the_proxys_own_stream(backend: AnthropicBackend, litellm_proxy: str):
    expected = reference_stream(litellm_proxy, question())
    stream = backend.stream_chat(question())
    deltas = [delta async for delta in stream]
    generation = stream.generation
    assert generation is not None
    assert len(deltas) >= 2 and "".join(deltas) == generation.text  # it really streamed, in order
    assert generation.text == expected["text"] and generation.text.strip()
    assert generation.stop_reason == {"end_turn": "eos", "max_tokens": "max_tokens"}[expected["stop_reason"]]
    usage = generation.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        expected["usage"]["input_tokens"],
        expected["usage"]["output_tokens"],
    )
    assert usage.estimated is False  # the proxy's counts, read from its stream events
    # The proxy's whole-JSON answer to the same request says the same (its token counts may
    # differ: it counts a stream itself, while the JSON carries the upstream server's).
    assert text_of(reference(litellm_proxy, question())) == generation.text

    collected = await backend.chat(question())  # the same stream, gathered
    assert (collected.text, collected.stop_reason) == (generation.text, generation.stop_reason)


async def test_json_answer_is_read_like_the_stream(litellm_proxy: str, key: str):
    transport = WithoutStreaming()
    client = httpx.AsyncClient(transport=transport, follow_redirects=False)
    backend = AnthropicBackend(
        litellm_proxy, MODEL, api_key_env=KEY_ENV, timeout_s=120.0, retry=NO_RETRY, client=client
    )
    try:
        generation = await backend.chat(question(max_tokens=6))
    finally:
        await client.aclose()
    assert transport.content_types and transport.content_types[0].startswith("application/json")
    expected = reference(litellm_proxy, question(max_tokens=6))
    assert generation.text == text_of(expected) and generation.text.strip()
    assert generation.stop_reason == {"end_turn": "eos", "max_tokens": "max_tokens"}[expected["stop_reason"]]
    assert (generation.usage.prompt_tokens, generation.usage.completion_tokens) == (
        expected["usage"]["input_tokens"],
        expected["usage"]["output_tokens"],
    )


async def test_the_proxys_error_for_an_unknown_model_is_a_named_bad_request(litellm_proxy: str, key: str):
    backend = AnthropicBackend(litellm_proxy, "no-such-model", api_key_env=KEY_ENV, retry=NO_RETRY)
    try:
        with pytest.raises(ProviderError) as caught:
            await backend.chat(question())
    finally:
        await backend.aclose()
    assert caught.value.kind == "bad_request" and caught.value.status == 400
    assert "invalid_request_error" in str(caught.value)
    assert KEY not in str(caught.value) and "no-such-model" not in str(caught.value)
