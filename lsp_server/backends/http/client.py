"""The streaming loop the remote tiers share, tying together retries (retry.py), the circuit
breaker (cooldown.py), SSE parsing (sse.py), error mapping (errors.py) and the stream (stream.py).

Both providers stream Server-Sent Events; they differ only in the request body, the
headers and the meaning of each event. So `HttpBackend` owns the transport (keys,
retries, cooldown, time box, cancel, stop rules, usage and timings) and each provider
plugs in a small `StreamParser`.

Secrets: a key is read from the environment at request time, put in a header and
nowhere else, and only for https or a loopback address: a tier with a key and a plain
`http://` URL to another machine is refused (`insecure_transport`) before anything is
sent, since anyone on the path could read the key (and the code). Error messages and log
lines carry the provider, the method, the host, the status and the provider's error *type*:
never a header, the provider's free-text message (OpenAI echoes part of a bad key there) or
the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import ClassVar

import httpx

from lsp_server.backends.base import CancelToken, ChatRequest, Generation, ProviderError
from lsp_server.backends.http.cooldown import Cooldown
from lsp_server.backends.http.errors import (
    describe_failure,
    endpoint,
    error_for_event,
    error_for_exception,
    error_for_status,
    is_plain_http_loopback,
    key_would_travel_in_clear,
)
from lsp_server.backends.http.retry import RetryPolicy, sleep_unless_cancelled
from lsp_server.backends.http.sse import SseDecoder
from lsp_server.backends.http.stream import (
    SHAPE_ERRORS,
    CallAttempt,
    CallSpec,
    GenerationStream,
    RemoteUsage,
    StreamErrorEvent,
    read_limited,
    within_deadline,
)
from lsp_server.token_estimate import tokens_for_chars

log = logging.getLogger(__name__)

# How much of an error body we read to find the provider's error type.
ERROR_BODY_LIMIT = 64 * 1024


# -- retries -------------------------------------------------------------------
# -- circuit breaker -------------------------------------------------------------
# -- Server-Sent Events ------------------------------------------------------------
# -- errors ----------------------------------------------------------------------
# -- the streaming loop ------------------------------------------------------------
class HttpBackend:
    """Transport shared by the OpenAI-compatible and Anthropic backends."""

    name: ClassVar[str] = "http"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 3.0,
        retry: RetryPolicy | None = None,
        cooldown: Cooldown | None = None,
        client: httpx.AsyncClient | None = None,
        extra_headers: dict[str, str] | None = None,
        max_concurrent: int = 4,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_name = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry = retry or RetryPolicy()
        self.cooldown = cooldown or Cooldown()
        # What the retry deadline, the backoff and the timings read: a test injects its own to
        # check waits without waiting. (The time box and HTTP timeouts run on the event loop.)
        self._clock = clock
        self._sleep = sleep
        self._extra_headers = dict(extra_headers or {})
        # A cap on requests in flight to this tier: a burst of editor requests must not
        # become a burst of paid calls (or trip the provider's rate limit for everyone).
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self._owns_client = client is None
        # Never follow redirects: the key header would go wherever the Location points.
        # A plain-http loopback server is never reached through a proxy from the
        # environment (HTTP_PROXY): the key would cross the network in clear text.
        self._client = client or httpx.AsyncClient(
            follow_redirects=False, trust_env=not is_plain_http_loopback(self.base_url)
        )

    # -- provider hooks ----------------------------------------------------------

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        raise NotImplementedError

    # -- plumbing --------------------------------------------------------------------

    def _url(self, path: str) -> httpx.URL:
        return httpx.URL(self.base_url + path)

    def _api_key(self, url: httpx.URL) -> str | None:
        if self.api_key_env is None:
            return None
        if key_would_travel_in_clear(url):
            raise ProviderError(
                "insecure_transport",
                f"{self.name}: refusing to send the API key from {self.api_key_env} over plain http to "
                f"{endpoint(url)}; use an https:// base_url (plain http is allowed only to localhost, "
                f"127.0.0.0/8 and ::1)",
            )
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ProviderError(
                "missing_key",
                f"{self.name}: no API key for {endpoint(url)}; set the environment variable {self.api_key_env}",
            )
        return key

    def _stream(self, spec: CallSpec, cancel: CancelToken | None, *, restartable: bool) -> GenerationStream:
        """`restartable`: the caller sees only the final text, so a retry may follow partial output."""
        return GenerationStream(lambda stream: self._run(stream, spec, cancel, restartable))

    async def _collect(self, spec: CallSpec, cancel: CancelToken | None) -> Generation:
        stream = self._stream(spec, cancel, restartable=True)
        try:
            async for _ in stream:
                pass
        except asyncio.CancelledError:
            if cancel is not None:
                cancel.generation = Generation(stream.partial_text, "cancelled", RemoteUsage(estimated=True))
            raise
        finally:
            await stream.aclose()
        assert stream.generation is not None
        return stream.generation

    async def _run(
        self, stream: GenerationStream, spec: CallSpec, cancel: CancelToken | None, restartable: bool
    ) -> AsyncGenerator[str, None]:
        loop = asyncio.get_running_loop()
        started = self._clock()
        retry_deadline = started + self.retry.deadline_s
        time_box = loop.time() + spec.time_limit_s if spec.time_limit_s else None
        url = self._url(spec.path)
        if cancel is not None and cancel.cancelled:
            stream.generation = cancel.generation = Generation("", "cancelled", RemoteUsage())
            return
        key = self._api_key(url)  # before anything else: a missing key sends nothing
        self.cooldown.check(self.name)
        attempt_no = 0
        while True:
            attempt_no += 1
            attempt = CallAttempt(parser=spec.parser_factory(), started=self._clock())
            try:
                await self._take_slot(url, retry_deadline, time_box, loop)
                try:
                    async with contextlib.aclosing(
                        self._attempt(attempt, spec, url, key, cancel, time_box, retry_deadline)
                    ) as deltas:
                        async for delta in deltas:
                            stream.partial_text += delta
                            yield delta
                finally:
                    self._slots.release()
            except ProviderError as error:
                delay = self._retry_delay(error, attempt, attempt_no, restartable, retry_deadline, time_box, loop)
                log.info(
                    "%s: %s, retry %d/%d in %.2fs",
                    self.name,
                    error.kind,
                    attempt_no + 1,
                    self.retry.max_attempts,
                    delay,
                )
                stream.partial_text = ""  # a failed attempt's text is never part of the answer
                if await sleep_unless_cancelled(delay, cancel, self._clock, self._sleep):
                    self.cooldown.record_failure(error)
                    stream.generation = Generation("", "cancelled", RemoteUsage(estimated=True))
                    if cancel is not None:
                        cancel.generation = stream.generation
                    return
                continue
            if attempt.got_response:  # a time box that ran out before any answer says nothing either way
                self.cooldown.record_success()
            stream.generation = self._finish(attempt, spec, started)
            if cancel is not None and stream.generation.stop_reason == "cancelled":
                cancel.generation = stream.generation
            return

    async def _take_slot(
        self, url: httpx.URL, retry_deadline: float, time_box: float | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        wait = retry_deadline - self._clock()
        if time_box is not None:
            wait = min(wait, time_box - loop.time())
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=max(wait, 0.0))
        except TimeoutError:
            raise ProviderError(
                "timeout", f"{self.name}: all {self.max_concurrent} request slots for {endpoint(url)} stayed busy"
            ) from None

    def _retry_delay(
        self,
        error: ProviderError,
        attempt: CallAttempt,
        attempt_no: int,
        restartable: bool,
        retry_deadline: float,
        time_box: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> float:
        """Seconds to wait before the next attempt; raises `error` (counted against the tier) if none is due."""
        shown = attempt.emitted > 0 and not restartable  # the caller already has part of this answer
        if not error.retryable or shown or attempt_no >= self.retry.max_attempts:
            self.cooldown.record_failure(error)
            raise error
        delay = self.retry.delay_s(attempt_no, error)
        too_late = self._clock() + delay >= retry_deadline
        if time_box is not None and loop.time() + delay >= time_box:
            too_late = True
        if too_late:
            self.cooldown.record_failure(error)
            raise error
        return delay

    async def _attempt(
        self,
        attempt: CallAttempt,
        spec: CallSpec,
        url: httpx.URL,
        key: str | None,
        cancel: CancelToken | None,
        time_box: float | None,
        retry_deadline: float,
    ) -> AsyncGenerator[str, None]:
        """One HTTP exchange; yields text deltas; raises ProviderError."""
        method = "POST"
        headers = {"accept": "text/event-stream", **self._extra_headers, **self._auth_headers(key)}
        # Never wait past the retry deadline, whatever the per-read timeout says.
        budget = max(0.05, retry_deadline - self._clock())
        timeout = httpx.Timeout(min(self.timeout_s, budget), connect=min(self.connect_timeout_s, budget))
        request = self._client.build_request(method, url, json=spec.payload, headers=headers, timeout=timeout)
        response: httpx.Response | None = None
        try:
            try:
                response = await within_deadline(time_box, self._client.send(request, stream=True))
            except TimeoutError:
                attempt.stop_reason = "time_limit"
                return
            attempt.got_response = True
            log.debug("%s: %s %s -> %d", self.name, method, endpoint(url), response.status_code)
            if response.status_code != 200:
                body = await read_limited(response, ERROR_BODY_LIMIT)
                raise error_for_status(self.name, method, url, response.status_code, response.headers, body)
            content_type = response.headers.get("content-type", "")
            if "application/json" in content_type:
                # The server ignored `stream: true`: take the whole answer at once.
                body = await read_limited(response, 64 * 1024 * 1024)
                try:
                    text = attempt.parser.on_body(json.loads(body))
                except SHAPE_ERRORS:
                    raise ProviderError(
                        "bad_response", describe_failure(self.name, "malformed JSON body", method, url, status=200)
                    ) from None
                for out in self._take(attempt, spec, text):
                    yield out
                if attempt.stop_reason is None:
                    attempt.stop_reason = attempt.parser.stop_reason
                return
            decoder = SseDecoder()
            lines = response.aiter_lines()
            while True:
                if cancel is not None and cancel.cancelled:
                    attempt.stop_reason = "cancelled"
                    return
                try:
                    line = await within_deadline(time_box, lines.__anext__())
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    attempt.stop_reason = "time_limit"
                    return
                event = decoder.feed(line)
                if event is None:
                    continue
                try:
                    delta = attempt.parser.on_event(event)
                except StreamErrorEvent as exc:
                    raise error_for_event(self.name, method, url, exc.error_type) from None
                except SHAPE_ERRORS:
                    raise ProviderError(
                        "bad_response", describe_failure(self.name, "malformed stream event", method, url, status=200)
                    ) from None
                if delta:
                    for out in self._take(attempt, spec, delta):
                        yield out
                    if attempt.stop_reason is not None:
                        return
                if attempt.parser.finished:
                    attempt.stop_reason = attempt.parser.stop_reason
                    return
            if attempt.parser.finished or attempt.parser.whole_at_eof():
                attempt.stop_reason = attempt.parser.stop_reason
                return
            raise ProviderError(
                "stream_cut",
                describe_failure(self.name, "stream ended before its final event", method, url, status=200),
            )
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, method, url, exc, streaming=attempt.got_response) from None
        finally:
            if response is not None:
                # Closing mid-body drops the connection, which is what tells the server to stop generating.
                await response.aclose()

    def _take(self, attempt: CallAttempt, spec: CallSpec, delta: str) -> Iterator[str]:
        """Add a delta, apply the stop rule, yield what the caller may see."""
        attempt.deltas += 1
        if attempt.first_delta is None:
            attempt.first_delta = self._clock()
        attempt.text += delta
        if spec.stop is not None:
            cut = spec.stop(attempt.text)
            if cut is not None:
                # Text already handed out cannot be taken back.
                attempt.text = attempt.text[: max(cut, attempt.emitted)]
                attempt.stop_reason = "stop_rule"
        if len(attempt.text) > attempt.emitted:
            out = attempt.text[attempt.emitted :]
            attempt.emitted = len(attempt.text)
            yield out

    def _finish(self, attempt: CallAttempt, spec: CallSpec, started: float) -> Generation:
        now = self._clock()
        parser = attempt.parser
        usage = RemoteUsage(queue_ms=(attempt.started - started) * 1000.0)
        first = attempt.first_delta or now
        usage.prompt_ms = (first - attempt.started) * 1000.0
        usage.generation_ms = (now - first) * 1000.0
        if parser.prompt_tokens is not None:
            usage.prompt_tokens = parser.prompt_tokens
            usage.cached_prompt_tokens = parser.cached_prompt_tokens or 0
        else:
            usage.prompt_tokens = max(1, tokens_for_chars(spec.prompt_chars)) if attempt.got_response else 0
            usage.estimated = True
        if parser.completion_tokens is not None and attempt.stop_reason not in ("stop_rule", "cancelled", "time_limit"):
            usage.completion_tokens = parser.completion_tokens
        elif parser.completion_tokens is not None:
            # Cut short by us: the provider's count (if it sent one early) can only be a lower bound.
            usage.completion_tokens = min(
                max(parser.completion_tokens, parser.content_events, attempt.deltas), spec.max_tokens
            )
            usage.estimated = True
        elif attempt.stop_reason == "max_tokens":
            usage.completion_tokens = spec.max_tokens  # the server stopped because it generated exactly that many
            usage.estimated = True
        else:
            # About one token per content event (llama.cpp also sends "" for partial characters).
            usage.completion_tokens = min(max(parser.content_events, attempt.deltas), spec.max_tokens)
            usage.estimated = True
        return Generation(text=attempt.text, stop_reason=attempt.stop_reason or "eos", usage=usage)

    async def chat(self, request: ChatRequest, cancel: CancelToken | None = None) -> Generation:
        """One chat answer; each provider's backend builds its request and parser."""
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        # The key is never stored on the object; name the variable only.
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"
        )
