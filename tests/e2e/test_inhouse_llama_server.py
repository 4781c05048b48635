"""The in-house tier against a real OpenAI-compatible server: llama-cpp-python's own.

The tiny random-weight model emits arbitrary text, so these tests check structure,
stop reasons and usage, never content.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from lsp_server.backends.base import ChatMessage, ChatRequest, TextCompletionRequest
from lsp_server.backends.http.retry import NO_RETRY
from lsp_server.backends.openai import OpenAICompatBackend
from tests.loopback_provider import unused_port

START_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def llama_server(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free port; yields its OpenAI base URL (with /v1)."""
    port = unused_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(tiny_model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "512",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama_cpp.server did not answer within {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def backend(llama_server: str) -> AsyncIterator[OpenAICompatBackend]:
    client = OpenAICompatBackend(llama_server, "tiny", timeout_s=30.0, retry=NO_RETRY)
    yield client
    await client.aclose()


def question(max_tokens: int) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage("system", "You are terse."), ChatMessage("user", "Say hello.")], max_tokens=max_tokens
    )


async def test_chat_returns_a_generation_with_usage(backend: OpenAICompatBackend):
    generation = await backend.chat(question(12))
    usage = generation.usage
    assert generation.stop_reason in ("eos", "max_tokens")
    assert 0 < usage.completion_tokens <= 12 + 2
    assert usage.prompt_tokens > 0
    # llama-cpp-python's server (0.3.x) ignores stream_options.include_usage and sends no usage
    # chunk: the counts are then ours (one per content chunk, the prompt from its length), marked
    # as estimated. A server that does send usage must have its counts taken as they are.
    if not usage.estimated:  # type: ignore[attr-defined]
        assert usage.completion_tokens <= 12
    assert usage.prompt_ms > 0 and usage.generation_ms >= 0


async def test_max_tokens_is_respected(backend: OpenAICompatBackend):
    generation = await backend.chat(question(5))
    assert generation.stop_reason == "max_tokens"  # random weights never pick EOS this early
    assert 0 < generation.usage.completion_tokens <= 5 + 2


async def test_stream_chat_yields_several_deltas(backend: OpenAICompatBackend):
    stream = backend.stream_chat(question(16))
    deltas = [delta async for delta in stream]
    assert len(deltas) >= 3
    generation = stream.generation  # type: ignore[attr-defined]
    assert generation is not None and generation.text == "".join(deltas)


async def test_complete_text_against_v1_completions(backend: OpenAICompatBackend):
    request = TextCompletionRequest(prompt="def add(a, b):\n    return ", suffix="\n", max_tokens=8)
    generation = await backend.complete_text(request)
    assert generation.stop_reason in ("eos", "max_tokens")
    assert 0 < generation.usage.completion_tokens <= 8 + 2
    assert isinstance(generation.text, str)


async def test_stop_rule_closes_the_stream_early(backend: OpenAICompatBackend):
    # Stop at the first character of a long answer.
    request = ChatRequest(messages=[ChatMessage("user", "hi")], max_tokens=200, stop=lambda text: len(text) or None)
    started = time.perf_counter()
    generation = await backend.chat(request)
    assert generation.stop_reason == "stop_rule"
    assert 1 <= len(generation.text) <= 64
    # The server must still serve the next request promptly (the closed stream released it).
    follow_up = await asyncio.wait_for(backend.chat(question(4)), timeout=20)
    assert follow_up.usage.completion_tokens > 0
    assert time.perf_counter() - started < 20
