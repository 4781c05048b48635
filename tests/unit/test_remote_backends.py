"""Remote tiers against a real loopback HTTP server speaking both providers' protocols.

No mocks: every test sends real HTTP through httpx to `tests.loopback_provider`, which
can answer normally or fail the ways real providers fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from email.utils import formatdate

import pytest

from lsp_server.backends.anthropic import AnthropicBackend
from lsp_server.backends.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Generation,
    ProviderError,
    TextCompletionRequest,
)
from lsp_server.backends.http.cooldown import Cooldown
from lsp_server.backends.http.errors import kind_for_status
from lsp_server.backends.http.retry import NO_RETRY, RetryPolicy, parse_retry_after
from lsp_server.backends.http.sse import SseEvent, parse_sse
from lsp_server.backends.http.stream import RemoteUsage
from lsp_server.backends.openai import OpenAICompatBackend
from lsp_server.token_estimate import tokens_for_chars
from tests.loopback_provider import LoopbackProvider, loopback_provider, unused_port  # noqa: F401 (fixture)

KEY_ENV = "NINETYTEN_TEST_REMOTE_KEY"
KEY = "sk-test-4f9d2c81e7a6b3-do-not-leak"
FAST_RETRY = RetryPolicy(max_attempts=3, base_backoff_s=0.02, max_backoff_s=0.05, jitter=0.0)
PROTOCOLS = ["openai", "anthropic"]

Remote = OpenAICompatBackend | AnthropicBackend
Make = Callable[..., Remote]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


@pytest.fixture
async def make(loopback_provider: LoopbackProvider):  # type: ignore[no-untyped-def]
    """Build a backend of either protocol pointed at the loopback server; closed at teardown."""
    made: list[Remote] = []

    def build(protocol: str, *, base_url: str | None = None, **kwargs: object) -> Remote:
        kwargs.setdefault("api_key_env", KEY_ENV)
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("timeout_s", 5.0)
        if protocol == "openai":
            backend: Remote = OpenAICompatBackend(base_url or loopback_provider.openai_url, "loop-model", **kwargs)  # type: ignore[arg-type]
        else:
            backend = AnthropicBackend(base_url or loopback_provider.url, "claude-loop", **kwargs)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()


def chat_request(**kwargs: object) -> ChatRequest:
    messages = [ChatMessage("system", "You explain diffs."), ChatMessage("user", "Explain: -a\n+b")]
    return ChatRequest(messages=messages, **kwargs)  # type: ignore[arg-type]


def estimated(generation: Generation) -> bool:
    """Remote usage says whether its counts are the provider's or our estimate."""
    assert isinstance(generation.usage, RemoteUsage)
    return generation.usage.estimated


def long_reply(words: int = 60) -> str:
    return " ".join(f"w{i}" for i in range(words))


class VirtualTime:
    """A clock and a sleep for a backend: waits are recorded and pass at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is


async def until(predicate: Callable[[], object], what: str) -> object:
    """Wait for something the loopback server reports; the limit only guards against a hang."""
    for _ in range(3000):
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# -- the happy path: documented request shapes, streaming, usage -------------------------------


async def test_openai_chat_sends_documented_request_and_reads_usage(make: Make, loopback_provider: LoopbackProvider):
    backend = make("openai", base_url=loopback_provider.openai_url + "/")  # trailing slash tolerated
    generation = await backend.chat(chat_request(max_tokens=100, temperature=0.2))

    assert generation.text == "loopback reply to 32 chars"
    assert generation.stop_reason == "eos"
    assert (generation.usage.prompt_tokens, generation.usage.completion_tokens) == (8, 5)
    assert estimated(generation) is False
    assert generation.usage.total_ms > 0
    [sent] = loopback_provider.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in sent.headers
    assert sent.body == {
        "model": "loop-model",
        "messages": [
            {"role": "system", "content": "You explain diffs."},
            {"role": "user", "content": "Explain: -a\n+b"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_anthropic_chat_sends_documented_request_and_reads_usage(make: Make, loopback_provider: LoopbackProvider):
    generation = await make("anthropic").chat(chat_request(max_tokens=100))

    assert generation.text == "loopback reply to 32 chars"
    assert generation.stop_reason == "eos"
    assert (generation.usage.prompt_tokens, generation.usage.completion_tokens) == (8, 5)
    [sent] = loopback_provider.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    # The system prompt is a top-level field, never a message.
    assert sent.body == {
        "model": "claude-loop",
        "max_tokens": 100,
        "system": "You explain diffs.",
        "messages": [{"role": "user", "content": "Explain: -a\n+b"}],
        "temperature": 0.0,
        "stream": True,
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_chat_yields_deltas_then_a_generation(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.reply = "one two three four five six"
    stream = make(protocol).stream_chat(chat_request())
    deltas = [delta async for delta in stream]

    assert deltas == ["one ", "two ", "three ", "four ", "five ", "six"]
    generation = stream.generation
    assert generation is not None
    assert generation.text == "one two three four five six"
    assert generation.usage.completion_tokens == 6 and generation.stop_reason == "eos"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_max_tokens_reported_as_max_tokens(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.reply = long_reply(20)
    generation = await make(protocol).chat(chat_request(max_tokens=3))
    assert generation.text == "w0 w1 w2 "
    assert generation.stop_reason == "max_tokens"
    assert generation.usage.completion_tokens == 3


async def test_openai_complete_text_posts_prompt_suffix_and_stops(make: Make, loopback_provider: LoopbackProvider):
    backend = make("openai")
    assert isinstance(backend, OpenAICompatBackend)
    request = TextCompletionRequest(
        prompt="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n", max_tokens=16, stop_sequences=["\n\n"]
    )
    generation = await backend.complete_text(request)

    assert generation.text == "loopback reply to 45 chars"
    assert generation.usage.completion_tokens == 5 and not estimated(generation)
    [sent] = loopback_provider.requests
    assert sent.path == "/v1/completions"
    assert sent.body["prompt"] == request.prompt and sent.body["suffix"] == request.suffix
    assert sent.body["stop"] == ["\n\n"] and sent.body["max_tokens"] == 16 and sent.body["stream"] is True


async def test_usage_is_estimated_and_marked_when_the_server_sends_none(
    make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.send_usage = False  # like llama-cpp-python's server
    generation = await make("openai").chat(chat_request())
    assert estimated(generation) is True
    assert generation.usage.completion_tokens == 5  # one per streamed delta
    assert generation.usage.prompt_tokens == tokens_for_chars(32)  # the one token estimate


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_json_body_instead_of_a_stream_is_accepted(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.fault = "ignore_stream"
    generation = await make(protocol).chat(chat_request())
    assert generation.text == "loopback reply to 32 chars"
    assert generation.usage.completion_tokens == 5 and generation.stop_reason == "eos"


async def test_concurrent_requests_are_served_concurrently(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "hold"  # no answer until all eight are there (or the test gives up)
    backends = [make("openai", timeout_s=60.0), make("anthropic", timeout_s=60.0)]
    calls = asyncio.gather(*(backends[i % 2].chat(chat_request()) for i in range(8)))
    await until(lambda: loopback_provider.in_flight == 8, "eight requests in flight at once")
    loopback_provider.release()
    results = await calls
    assert all(g.text == "loopback reply to 32 chars" for g in results)
    assert loopback_provider.max_in_flight == 8


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_requests_in_flight_are_capped_per_tier(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "hold"
    backend = make(protocol, max_concurrent=2, timeout_s=60.0)
    calls = asyncio.gather(*(backend.chat(chat_request()) for _ in range(6)))
    await until(lambda: loopback_provider.in_flight >= 2, "the first two requests")
    await asyncio.sleep(0.3)  # room for a third to arrive, were the cap broken
    assert len(loopback_provider.requests) == 2 and loopback_provider.in_flight == 2
    loopback_provider.release()
    results = await calls
    assert all(g.text == "loopback reply to 32 chars" for g in results)
    assert len(loopback_provider.requests) == 6 and loopback_provider.max_in_flight == 2


async def test_a_slot_that_never_frees_is_a_bounded_timeout(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.reply = long_reply(20)
    backend = make("openai", max_concurrent=1, retry=RetryPolicy(max_attempts=1, deadline_s=0.5))
    holder = backend.stream_chat(chat_request())
    assert await holder.__anext__()  # the only slot is taken until this stream is read on or closed
    try:
        with pytest.raises(ProviderError) as caught:
            await asyncio.wait_for(backend.chat(chat_request()), 60)  # only a hang guard
    finally:
        await holder.aclose()
    assert caught.value.kind == "timeout" and "slots" in str(caught.value)
    assert len(loopback_provider.requests) == 1  # the second request never went out


# -- stop rules, cancel, time box ------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stop_rule_cuts_the_text_and_closes_the_stream(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.reply = long_reply(100)
    loopback_provider.fault = "slow_stream"
    loopback_provider.chunk_delay_s = 0.05  # 5 s for the whole reply

    def stop(text: str) -> int | None:
        at = text.find("w3")
        return at if at >= 0 else None

    generation = await make(protocol).chat(chat_request(stop=stop))
    assert generation.text == "w0 w1 w2 "
    assert generation.stop_reason == "stop_rule"
    assert estimated(generation)
    # The client closed the stream there: the server saw it hang up, far from the 100th word.
    ending = await until(lambda: loopback_provider.ending(0), "the server's end of the stream")
    assert ending.client_gone and ending.chunks < 100, ending


async def test_stop_rule_in_a_live_stream_never_hands_out_text_past_the_cut(
    make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.reply = "alpha beta\ngamma delta"
    stream = make("openai").stream_chat(chat_request(stop=lambda t: t.find("\n") if "\n" in t else None))
    deltas = [delta async for delta in stream]
    assert stream.generation is not None
    assert "".join(deltas) == "alpha beta" and stream.generation.stop_reason == "stop_rule"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cancel_stops_within_a_chunk(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.reply = long_reply(100)
    loopback_provider.fault = "slow_stream"
    loopback_provider.chunk_delay_s = 0.05
    cancel = CancelToken()

    def cancel_after_w1(text: str) -> None:
        if "w1" in text:
            cancel.cancel()  # as the editor would, between two chunks
        return None

    generation = await make(protocol).chat(chat_request(stop=cancel_after_w1), cancel)
    assert generation.stop_reason == "cancelled"
    assert generation.text == "w0 w1 "  # not one chunk more
    assert cancel.generation is generation
    ending = await until(lambda: loopback_provider.ending(0), "the server's end of the stream")
    assert ending.client_gone and ending.chunks < 100, ending


async def test_cancelled_before_start_sends_nothing(make: Make, loopback_provider: LoopbackProvider):
    cancel = CancelToken()
    cancel.cancel()
    generation = await make("openai").chat(chat_request(), cancel)
    assert generation.stop_reason == "cancelled" and generation.text == ""
    assert loopback_provider.requests == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_time_limit_on_a_slow_stream(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    reply = long_reply(100)
    loopback_provider.reply = reply
    loopback_provider.fault = "slow_stream"
    loopback_provider.chunk_delay_s = 0.2  # 20 s for the whole reply
    started = time.perf_counter()
    generation = await make(protocol).chat(chat_request(time_limit_s=0.7))
    # A lower bound only (the box did not close early): a busy machine can only make it later.
    assert time.perf_counter() - started >= 0.69
    assert generation.stop_reason == "time_limit"
    assert reply.startswith(generation.text) and len(generation.text) < len(reply)  # what came in time
    ending = await until(lambda: loopback_provider.ending(0), "the server's end of the stream")
    assert ending.client_gone and ending.chunks < 100, ending


async def test_time_limit_while_the_server_says_nothing(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "timeout"  # it would hang for a minute
    started = time.perf_counter()
    generation = await make("openai").chat(chat_request(time_limit_s=0.3))
    # Without the box this would be a ProviderError (read timeout) after 5 s, or a dropped connection.
    assert generation.stop_reason == "time_limit" and generation.text == ""
    assert time.perf_counter() - started >= 0.29


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_429_is_retried_after_retry_after_then_succeeds(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.queue("status:429", "ok")  # the 429 carries Retry-After: 1
    time_ = VirtualTime()
    generation = await make(protocol, clock=time_.clock, sleep=time_.sleep).chat(chat_request())

    assert generation.text == "loopback reply to 32 chars"
    first, second = loopback_provider.requests
    assert (first.fault, second.fault) == ("status:429", "ok")
    # It waited what the server asked (1 s), not its own backoff (0.02 s).
    assert sum(time_.sleeps) == pytest.approx(1.0)
    # The wait before the successful attempt is reported as queueing.
    assert generation.usage.queue_ms == pytest.approx(1000.0)


async def test_retry_after_longer_than_the_deadline_is_not_waited_for(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "status:429"
    loopback_provider.retry_after = "30"
    time_ = VirtualTime()
    backend = make("openai", retry=RetryPolicy(max_attempts=3, deadline_s=5.0), clock=time_.clock, sleep=time_.sleep)
    with pytest.raises(ProviderError) as caught:
        await backend.chat(chat_request())
    assert caught.value.kind == "rate_limited" and caught.value.retry_after_s == 30.0
    assert time_.sleeps == [] and len(loopback_provider.requests) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("status", "kind"), [(500, "server_error"), (503, "overloaded"), (529, "overloaded")])
async def test_persistent_5xx_is_retried_then_raised(
    protocol: str, status: int, kind: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.fault = f"status:{status}"
    with pytest.raises(ProviderError) as caught:
        await make(protocol).chat(chat_request())
    assert caught.value.kind == kind and caught.value.status == status and caught.value.retryable
    assert f"HTTP {status}" in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert len(loopback_provider.requests) == FAST_RETRY.max_attempts


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_transient_5xx_is_retried_then_succeeds(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.queue("status:529", "status:500")
    generation = await make(protocol).chat(chat_request())
    assert generation.text == "loopback reply to 32 chars"
    assert [r.fault for r in loopback_provider.requests] == ["status:529", "status:500", "ok"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_chat_retries_while_nothing_was_handed_out(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.queue("status:503", "disconnect")
    deltas = [delta async for delta in make(protocol).stream_chat(chat_request())]
    assert "".join(deltas) == "loopback reply to 32 chars"
    assert [r.fault for r in loopback_provider.requests] == ["status:503", "disconnect", "ok"]


async def test_cancel_during_backoff_returns_at_once(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "status:503"
    time_ = VirtualTime()
    cancel = CancelToken()
    time_.on_sleep = lambda: cancel.cancel() if time_.now >= 0.2 else None  # 0.2 s into a 5 s backoff
    backend = make(
        "anthropic",
        retry=RetryPolicy(max_attempts=3, base_backoff_s=5.0, jitter=0.0),
        clock=time_.clock,
        sleep=time_.sleep,
    )
    generation = await backend.chat(chat_request(), cancel)
    assert generation.stop_reason == "cancelled" and generation.text == ""
    assert time_.now == pytest.approx(0.2)  # not a moment of the backoff after the cancel
    assert len(loopback_provider.requests) == 1


async def test_anthropic_error_type_is_named(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "status:529"
    with pytest.raises(ProviderError, match="overloaded_error"):
        await make("anthropic", retry=NO_RETRY).chat(chat_request())


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("status", "kind"), [(401, "auth"), (403, "auth"), (400, "bad_request"), (404, "bad_request")])
async def test_4xx_is_never_retried(
    protocol: str, status: int, kind: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.fault = f"status:{status}"
    with pytest.raises(ProviderError) as caught:
        await make(protocol).chat(chat_request())
    assert caught.value.kind == kind and not caught.value.retryable
    assert len(loopback_provider.requests) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_timeout_is_bounded(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "timeout"  # a minute of silence, then a dropped connection
    backend = make(protocol, timeout_s=0.5, retry=NO_RETRY)
    started = time.perf_counter()
    with pytest.raises(ProviderError) as caught:
        await backend.chat(chat_request())
    # Only the client's own timeout says "timeout"; the server would end with a dropped connection.
    assert caught.value.kind == "timeout"
    assert time.perf_counter() - started >= 0.49  # a lower bound: it did wait its 0.5 s


async def test_retries_stop_at_the_overall_deadline(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "timeout"
    backend = make("openai", timeout_s=0.4, retry=RetryPolicy(max_attempts=50, base_backoff_s=0.01, deadline_s=1.0))
    with pytest.raises(ProviderError) as caught:
        await backend.chat(chat_request())
    assert caught.value.kind == "timeout"
    # Attempts of at most 0.4 s each, none started past the 1 s deadline: three at the very most
    # (fewer on a slow machine), where the policy alone would allow fifty.
    assert 1 <= len(loopback_provider.requests) <= 3


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_refused_connection_is_a_connection_error_retried_on_the_backoff(protocol: str, make: Make):
    time_ = VirtualTime()
    backend = make(
        protocol,
        base_url=f"http://127.0.0.1:{unused_port()}" + ("/v1" if protocol == "openai" else ""),
        clock=time_.clock,
        sleep=time_.sleep,
    )
    with pytest.raises(ProviderError) as caught:
        await backend.chat(chat_request())
    assert caught.value.kind == "connection" and caught.value.retryable
    # Three attempts with FAST_RETRY's backoff (0.02 s, then 0.04 s) between them, no other wait.
    assert sum(time_.sleeps) == pytest.approx(0.02 + 0.04)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tls_mismatch_is_a_connection_error(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    base = loopback_provider.https_url + ("/v1" if protocol == "openai" else "")
    with pytest.raises(ProviderError) as caught:
        await make(protocol, base_url=base, retry=NO_RETRY).chat(chat_request())
    assert caught.value.kind == "connection" and "TLS" in str(caught.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_disconnect_without_response_is_a_connection_error(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.queue("disconnect")
    generation = await make(protocol).chat(chat_request())  # retried
    assert generation.text and len(loopback_provider.requests) == 2
    loopback_provider.fault = "disconnect"
    with pytest.raises(ProviderError) as caught:
        await make(protocol, retry=NO_RETRY).chat(chat_request())
    assert caught.value.kind == "connection"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_malformed_json_is_a_bad_response_and_not_retried(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.fault = "malformed_json"
    with pytest.raises(ProviderError) as caught:
        await make(protocol).chat(chat_request())
    assert caught.value.kind == "bad_response" and not caught.value.retryable
    assert len(loopback_provider.requests) == 1
    loopback_provider.fault = "malformed_body"  # a whole JSON body, broken
    with pytest.raises(ProviderError) as caught:
        await make(protocol).chat(chat_request())
    assert caught.value.kind == "bad_response"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", ["stream_cut", "stream_end_early"])
async def test_stream_cut_after_output_raises_stream_cut(
    protocol: str, fault: str, make: Make, loopback_provider: LoopbackProvider
):
    loopback_provider.fault = fault
    stream = make(protocol).stream_chat(chat_request())
    received: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for delta in stream:
            received.append(delta)
    assert caught.value.kind == "stream_cut" and caught.value.retryable
    assert received == ["loopback ", "reply "]  # cut after two chunks
    assert len(loopback_provider.requests) == 1  # the caller saw output: no silent retry


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_chat_retries_a_cut_stream_from_scratch(protocol: str, make: Make, loopback_provider: LoopbackProvider):
    # chat() hands out nothing before the end, so a cut stream can be retried whole.
    loopback_provider.queue("stream_cut")
    generation = await make(protocol).chat(chat_request())
    assert generation.text == "loopback reply to 32 chars"
    assert len(loopback_provider.requests) == 2
    loopback_provider.fault = "stream_cut"
    with pytest.raises(ProviderError) as caught:
        await make(protocol).chat(chat_request())
    assert caught.value.kind == "stream_cut"


async def test_anthropic_overloaded_error_event_mid_stream(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "stream_error"
    stream = make("anthropic").stream_chat(chat_request())
    with pytest.raises(ProviderError) as caught:
        async for _ in stream:
            pass
    assert caught.value.kind == "overloaded" and "overloaded_error" in str(caught.value)
    assert len(loopback_provider.requests) == 1


async def test_openai_error_chunk_mid_stream(make: Make, loopback_provider: LoopbackProvider):
    loopback_provider.fault = "stream_error"
    with pytest.raises(ProviderError) as caught:
        await make("openai").chat(chat_request())
    assert caught.value.kind == "server_error"
    assert len(loopback_provider.requests) == FAST_RETRY.max_attempts


async def test_redirects_are_not_followed_so_the_key_stays_home(make: Make, loopback_provider: LoopbackProvider):
    with LoopbackProvider() as elsewhere:
        loopback_provider.fault = f"redirect:{elsewhere.openai_url}/chat/completions"
        with pytest.raises(ProviderError) as caught:
            await make("openai").chat(chat_request())
        assert caught.value.kind == "bad_response" and caught.value.status == 307
        assert elsewhere.requests == []
        assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in loopback_provider.requests)


# -- cooldown ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cooldown_opens_after_failures_refuses_without_requests_then_closes(
    protocol: str, make: Make, loopback_provider: LoopbackProvider
):
    time_ = VirtualTime()
    cooldown = Cooldown(failures=2, cooldown_s=0.5, clock=time_.clock)
    backend = make(protocol, retry=NO_RETRY, cooldown=cooldown)
    loopback_provider.fault = "status:500"
    for _ in range(2):
        with pytest.raises(ProviderError, match="provider error"):
            await backend.chat(chat_request())
    assert cooldown.is_open
    time_.now += 0.2
    with pytest.raises(ProviderError) as caught:
        await backend.chat(chat_request())
    assert caught.value.kind == "cooling_down" and caught.value.retry_after_s == pytest.approx(0.3)
    assert len(loopback_provider.requests) == 2  # refused without a request

    time_.now += 0.3
    loopback_provider.fault = "ok"
    assert (await backend.chat(chat_request())).text
    assert not cooldown.is_open and cooldown.consecutive_failures == 0


async def test_cooldown_half_open_failure_reopens_and_success_resets(make: Make, loopback_provider: LoopbackProvider):
    time_ = VirtualTime()
    cooldown = Cooldown(failures=2, cooldown_s=0.2, clock=time_.clock)
    backend = make("openai", retry=NO_RETRY, cooldown=cooldown)
    loopback_provider.queue("status:503", "ok", "status:503", "status:503")
    for expect_ok in (False, True, False):  # a success in between resets the count
        if expect_ok:
            await backend.chat(chat_request())
        else:
            with pytest.raises(ProviderError):
                await backend.chat(chat_request())
    assert not cooldown.is_open
    with pytest.raises(ProviderError):
        await backend.chat(chat_request())
    assert cooldown.is_open
    time_.now += 0.2
    assert not cooldown.is_open  # one trial call may go
    loopback_provider.fault = "status:503"
    with pytest.raises(ProviderError):  # the one trial call fails: rest again at once
        await backend.chat(chat_request())
    assert cooldown.is_open and len(loopback_provider.requests) == 5


async def test_bad_requests_do_not_trip_the_breaker(make: Make, loopback_provider: LoopbackProvider):
    cooldown = Cooldown(failures=1, cooldown_s=10)
    backend = make("openai", retry=NO_RETRY, cooldown=cooldown)
    loopback_provider.fault = "status:400"
    for _ in range(3):
        with pytest.raises(ProviderError, match="rejected"):
            await backend.chat(chat_request())
    assert not cooldown.is_open


# -- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_missing_key_sends_nothing_and_names_the_variable(
    protocol: str, make: Make, loopback_provider: LoopbackProvider, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(KEY_ENV)
    backend = make(protocol)
    with pytest.raises(ProviderError) as caught:
        await backend.chat(chat_request())
    assert caught.value.kind == "missing_key" and KEY_ENV in str(caught.value)
    with pytest.raises(ProviderError):
        async for _ in backend.stream_chat(chat_request()):
            pass
    assert loopback_provider.requests == []


async def test_key_is_read_at_request_time(
    make: Make, loopback_provider: LoopbackProvider, monkeypatch: pytest.MonkeyPatch
):
    backend = make("anthropic")
    monkeypatch.setenv(KEY_ENV, "rotated-key")
    await backend.chat(chat_request())
    assert loopback_provider.requests[-1].headers["x-api-key"] == "rotated-key"


async def test_no_key_configured_sends_no_auth_header(make: Make, loopback_provider: LoopbackProvider):
    await make("openai", api_key_env=None).chat(chat_request())
    assert "authorization" not in loopback_provider.requests[0].headers


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_key_never_appears_in_errors_reprs_or_logs(
    protocol: str, make: Make, loopback_provider: LoopbackProvider, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    prompt = "SECRET-PROMPT-TEXT-1234"
    faults = [
        "status:401",
        "status:429",
        "status:500",
        "status:529",
        "malformed_json",
        "stream_cut",
        "stream_error",
        "disconnect",
        "timeout",
        "redirect:http://127.0.0.1:9/x",
        "ok",
    ]
    backend = make(
        protocol,
        timeout_s=0.3,
        retry=RetryPolicy(max_attempts=2, base_backoff_s=0.01, jitter=0.0),
        cooldown=Cooldown(failures=100),
    )
    loopback_provider.retry_after = "0"
    errors: list[ProviderError] = []
    for fault in faults:
        loopback_provider.fault = fault
        try:
            await backend.chat(ChatRequest([ChatMessage("user", prompt)]))
        except ProviderError as error:
            errors.append(error)
    assert len(errors) == len(faults) - 1
    # The 401 body echoes the key (as OpenAI does); it must not reach us.
    assert any(KEY in r.raw.decode() or KEY in str(r.headers) for r in loopback_provider.requests)
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(e.args) for e in errors]
    texts += [repr(backend), caplog.text] + [r.getMessage() for r in caplog.records]
    for text in texts:
        assert KEY not in text
        assert prompt not in text
        assert "Bearer" not in text and "x-api-key" not in text.lower()


# -- helpers -------------------------------------------------------------------------------


def test_sse_parser_follows_the_event_stream_rules():
    lines = [
        ": a comment",
        "event: message_start",
        'data: {"a":',
        "data: 1}",
        "",
        "",  # a second blank line dispatches nothing
        "id: 7",
        "data:no-space\r",
        "",
        "retry: 10",
        "data: [DONE]",
        "",
        "data: cut off by EOF",
    ]
    events = list(parse_sse(lines))
    assert events == [
        SseEvent("message_start", '{"a":\n1}'),
        SseEvent("message", "no-space", "7"),
        SseEvent("message", "[DONE]", "7"),
    ]
    assert events[2].is_done and not events[0].is_done


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("inf") is None and parse_retry_after("nan") is None
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_backoff_grows_is_capped_and_jittered():
    policy = RetryPolicy(base_backoff_s=0.5, max_backoff_s=3.0, jitter=0.2)
    plain = ProviderError("server_error", "x")
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = {policy.delay_s(attempt, plain) for _ in range(50)}
        assert all(nominal * 0.8 <= d <= nominal * 1.2 for d in delays)
        assert len(delays) > 1  # jittered
    assert policy.delay_s(1, ProviderError("rate_limited", "x", retry_after_s=1.0)) == 1.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, "rate_limited"),
        (529, "overloaded"),
        (503, "overloaded"),
        (500, "server_error"),
        (502, "server_error"),
        (401, "auth"),
        (403, "auth"),
        (400, "bad_request"),
        (404, "bad_request"),
        (422, "bad_request"),
        (307, "bad_response"),
    ],
)
def test_status_kinds(status: int, kind: str):
    assert kind_for_status(status) == kind
