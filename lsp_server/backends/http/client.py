"""What the remote tiers share: retries, a circuit breaker, SSE parsing, error mapping,
and the streaming loop that ties them together.

Both providers stream Server-Sent Events; they differ only in the request body, the
headers and the meaning of each event. So `HttpBackend` owns the transport (keys,
retries, cooldown, time box, cancel, stop rules, usage and timings) and each provider
plugs in a small `StreamParser`.

Secrets: a key is read from the environment at request time, put in a header and
nowhere else, and only for https or a loopback address: a tier with a key and a plain
`http://` URL to another machine is refused (`insecure_transport`) before anything is
sent, since anyone on the path could read the key (and the code). Error messages and log lines carry the provider, the method, the host,
the status and the provider's error *type*: never a header, the provider's free-text
message (OpenAI echoes part of a bad key there) or the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import random
import re
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import httpx

from lsp_server.loopback import is_loopback_host
from lsp_server.backends.base import CancelToken, Generation, ProviderError, ProviderErrorKind, StopCheck, StopReason, Usage

log = logging.getLogger(__name__)

# How much of an error body we read to find the provider's error type.
ERROR_BODY_LIMIT = 64 * 1024
# Rough characters per token, for usage estimates when the provider sends none.
CHARS_PER_TOKEN = 4


# -- usage ---------------------------------------------------------------------


@dataclass
class RemoteUsage(Usage):
    """Usage as a remote tier reports it; `estimated` when some counts are ours, not the provider's."""

    estimated: bool = False


# -- retries -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed request again.

    Exponential backoff with +/- `jitter` (a fraction) so that many clients do not
    retry in step; a server's `Retry-After` replaces the backoff. No retry is started
    that would end after `deadline_s` from the first attempt.
    """

    max_attempts: int = 3
    base_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter: float = 0.2
    deadline_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_backoff_s < 0 or self.max_backoff_s < 0 or self.deadline_s <= 0:
            raise ValueError("backoffs must be >= 0 and deadline_s > 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")

    def delay_s(self, attempt: int, error: ProviderError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if error.retry_after_s is not None:
            return max(0.0, error.retry_after_s)
        raw = min(self.max_backoff_s, self.base_backoff_s * (2 ** (attempt - 1)))
        return max(0.0, raw * (1.0 + random.uniform(-self.jitter, self.jitter)))


NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: either delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


# -- circuit breaker -------------------------------------------------------------

# Failures that say nothing about the tier's health: the caller's own mistakes.
_NOT_COUNTED: frozenset[str] = frozenset({"bad_request", "missing_key", "insecure_transport", "cooling_down"})


class Cooldown:
    """Per-backend circuit breaker.

    After `failures` consecutive failed calls (a call's retries count once) the tier
    rests for `cooldown_s`: calls fail at once with `cooling_down`, no request is
    sent. Afterwards one call is let through; if it fails too the tier rests again,
    a success closes the breaker.
    """

    def __init__(self, failures: int = 3, cooldown_s: float = 30.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or cooldown_s < 0:
            raise ValueError("failures must be >= 1 and cooldown_s >= 0")
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def remaining_s(self) -> float:
        return max(0.0, self._open_until - self._clock())

    @property
    def is_open(self) -> bool:
        return self.remaining_s > 0

    def check(self, name: str) -> None:
        remaining = self.remaining_s
        if remaining > 0:
            raise ProviderError(
                "cooling_down",
                f"{name} is resting after {self._failures} consecutive failures; next try in {remaining:.1f}s",
                retry_after_s=remaining,
            )

    def record_success(self) -> None:
        self._failures = 0
        self._open_until = 0.0

    def record_failure(self, error: ProviderError | None = None) -> None:
        if error is not None and error.kind in _NOT_COUNTED:
            return
        self._failures += 1
        if self._failures >= self.threshold:
            self._open_until = self._clock() + self.cooldown_s
            log.warning("remote tier cooling down for %.1fs after %d failures", self.cooldown_s, self._failures)

    def __repr__(self) -> str:
        return f"Cooldown(failures={self.threshold}, cooldown_s={self.cooldown_s}, open={self.is_open})"


# -- Server-Sent Events ------------------------------------------------------------


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


# -- errors ----------------------------------------------------------------------

_SAFE_TYPE = re.compile(r"[^A-Za-z0-9_.\-]")


def endpoint(url: httpx.URL) -> str:
    """host[:port] only: no user-info, path or query (they may carry credentials)."""
    return f"{url.host}:{url.port}" if url.port else url.host


def _is_plain_http_loopback(base_url: str) -> bool:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:  # reported on the first request, as an unusable URL
        return False
    return url.scheme == "http" and is_loopback_host(url.host)


def key_would_travel_in_clear(url: httpx.URL) -> bool:
    """A key sent to this URL could be read on the network: plain http to another machine."""
    return url.scheme != "https" and not (url.scheme == "http" and is_loopback_host(url.host))


def kind_for_status(status: int) -> ProviderErrorKind:
    if status == 429:
        return "rate_limited"
    if status in (503, 529):
        return "overloaded"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if 300 <= status < 400:
        # Redirects are never followed (the key would go to another host).
        return "bad_response"
    return "bad_request"


def kind_for_error_type(error_type: str | None) -> ProviderErrorKind:
    """A provider's error `type` (e.g. Anthropic's `overloaded_error`) as one of our kinds."""
    t = (error_type or "").lower()
    if "overload" in t:
        return "overloaded"
    if "rate" in t or "quota" in t:
        return "rate_limited"
    if "auth" in t or "permission" in t:
        return "auth"
    if "timeout" in t:
        return "timeout"
    if "invalid" in t or "not_found" in t or "too_large" in t:
        return "bad_request"
    return "server_error"


def sanitize_error_type(value: Any) -> str | None:
    """The provider's error type as a short identifier; anything else is dropped."""
    if not isinstance(value, str) or not value:
        return None
    return _SAFE_TYPE.sub("_", value)[:64]


def error_type_from_body(body: Any) -> str | None:
    """`type` of an Anthropic (`{"type":"error","error":{...}}`) or OpenAI (`{"error":{...}}`) error."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    if isinstance(inner, dict):
        return sanitize_error_type(inner.get("type") or inner.get("code"))
    if isinstance(inner, str):  # some gateways: {"error": "rate_limit"}
        return sanitize_error_type(inner)
    return None


def _describe(provider: str, what: str, method: str, url: httpx.URL, *,
              status: int | None = None, error_type: str | None = None) -> str:
    parts = [f"{method} {endpoint(url)}"]
    if status is not None:
        parts.append(f"HTTP {status}")
    if error_type:
        parts.append(error_type)
    return f"{provider}: {what} ({', '.join(parts)})"


_STATUS_WHAT: dict[str, str] = {
    "rate_limited": "rate limited",
    "overloaded": "provider overloaded",
    "server_error": "provider error",
    "auth": "authentication refused; check the API key",
    "bad_request": "request rejected",
    "bad_response": "unexpected response",
}


def error_for_status(provider: str, method: str, url: httpx.URL, status: int,
                     headers: httpx.Headers, body: bytes) -> ProviderError:
    kind = kind_for_status(status)
    error_type = error_type_from_body(body)
    what = "unexpected redirect (not followed)" if 300 <= status < 400 else _STATUS_WHAT[kind]
    return ProviderError(
        kind,
        _describe(provider, what, method, url, status=status, error_type=error_type),
        status=status,
        retry_after_s=parse_retry_after(headers.get("retry-after")),
    )


def error_for_event(provider: str, method: str, url: httpx.URL, error_type: str | None) -> ProviderError:
    """An error the provider reported inside an otherwise successful stream."""
    kind = kind_for_error_type(error_type)
    return ProviderError(kind, _describe(provider, "error in stream", method, url, error_type=error_type))


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):  # httpx wraps ssl errors a couple of levels deep
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in str(exc) or "TLS" in str(exc)


def error_for_exception(provider: str, method: str, url: httpx.URL, exc: BaseException, *,
                        streaming: bool = False) -> ProviderError:
    """Transport failures; `streaming` once the response headers have arrived."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        what = "timed out while streaming" if streaming else "timed out"
        return ProviderError("timeout", _describe(provider, f"{what} [{name}]", method, url))
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return ProviderError("bad_request", _describe(provider, f"unusable URL [{name}]", method, url))
    if streaming and isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.NetworkError)):
        return ProviderError("stream_cut", _describe(provider, f"stream cut off [{name}]", method, url))
    if _is_tls_error(exc):
        return ProviderError("connection", _describe(provider, f"TLS handshake failed [{name}]", method, url))
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderError("connection", _describe(provider, f"connection closed without a response [{name}]",
                                                     method, url))
    return ProviderError("connection", _describe(provider, f"could not connect [{name}]", method, url))


# -- the streaming loop ------------------------------------------------------------


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
_SHAPE_ERRORS = (ValueError, BadShape, KeyError, TypeError, IndexError, AttributeError)


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
class _Attempt:
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


class HttpBackend:
    """Transport shared by the OpenAI-compatible and Anthropic backends."""

    name: ClassVar[str] = "http"

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, timeout_s: float = 30.0,
                 connect_timeout_s: float = 3.0, retry: RetryPolicy | None = None, cooldown: Cooldown | None = None,
                 client: httpx.AsyncClient | None = None, extra_headers: dict[str, str] | None = None,
                 max_concurrent: int = 4, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
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
        self._client = client or httpx.AsyncClient(follow_redirects=False,
                                                   trust_env=not _is_plain_http_loopback(self.base_url))

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

    async def _run(self, stream: GenerationStream, spec: CallSpec, cancel: CancelToken | None,
                   restartable: bool) -> AsyncGenerator[str, None]:
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
            attempt = _Attempt(parser=spec.parser_factory(), started=self._clock())
            try:
                await self._take_slot(url, retry_deadline, time_box, loop)
                try:
                    async with contextlib.aclosing(self._attempt(attempt, spec, url, key, cancel, time_box,
                                                                 retry_deadline)) as deltas:
                        async for delta in deltas:
                            stream.partial_text += delta
                            yield delta
                finally:
                    self._slots.release()
            except ProviderError as error:
                delay = self._retry_delay(error, attempt, attempt_no, restartable, retry_deadline, time_box, loop)
                log.info("%s: %s, retry %d/%d in %.2fs", self.name, error.kind, attempt_no + 1,
                         self.retry.max_attempts, delay)
                stream.partial_text = ""  # a failed attempt's text is never part of the answer
                if await self._sleep_unless_cancelled(delay, cancel):
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

    async def _take_slot(self, url: httpx.URL, retry_deadline: float, time_box: float | None,
                         loop: asyncio.AbstractEventLoop) -> None:
        wait = retry_deadline - self._clock()
        if time_box is not None:
            wait = min(wait, time_box - loop.time())
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=max(wait, 0.0))
        except TimeoutError:
            raise ProviderError("timeout", f"{self.name}: all {self.max_concurrent} request slots for "
                                           f"{endpoint(url)} stayed busy") from None

    def _retry_delay(self, error: ProviderError, attempt: _Attempt, attempt_no: int, restartable: bool,
                     retry_deadline: float, time_box: float | None, loop: asyncio.AbstractEventLoop) -> float:
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

    async def _sleep_unless_cancelled(self, delay: float, cancel: CancelToken | None) -> bool:
        """Sleep `delay` seconds; True if the cancel token fired meanwhile."""
        end = self._clock() + delay
        while True:
            if cancel is not None and cancel.cancelled:
                return True
            remaining = end - self._clock()
            if remaining <= 0:
                return False
            await self._sleep(min(remaining, 0.05))

    async def _attempt(self, attempt: _Attempt, spec: CallSpec, url: httpx.URL, key: str | None,
                       cancel: CancelToken | None, time_box: float | None,
                       retry_deadline: float) -> AsyncGenerator[str, None]:
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
                response = await _within(time_box, self._client.send(request, stream=True))
            except TimeoutError:
                attempt.stop_reason = "time_limit"
                return
            attempt.got_response = True
            log.debug("%s: %s %s -> %d", self.name, method, endpoint(url), response.status_code)
            if response.status_code != 200:
                body = await _read_limited(response, ERROR_BODY_LIMIT)
                raise error_for_status(self.name, method, url, response.status_code, response.headers, body)
            content_type = response.headers.get("content-type", "")
            if "application/json" in content_type:
                # The server ignored `stream: true`: take the whole answer at once.
                body = await _read_limited(response, 64 * 1024 * 1024)
                try:
                    text = attempt.parser.on_body(json.loads(body))
                except _SHAPE_ERRORS:
                    raise ProviderError("bad_response", _describe(self.name, "malformed JSON body", method, url,
                                                                 status=200)) from None
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
                    line = await _within(time_box, lines.__anext__())
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
                except _SHAPE_ERRORS:
                    raise ProviderError("bad_response", _describe(self.name, "malformed stream event", method, url,
                                                                 status=200)) from None
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
            raise ProviderError("stream_cut", _describe(self.name, "stream ended before its final event", method,
                                                        url, status=200))
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, method, url, exc, streaming=attempt.got_response) from None
        finally:
            if response is not None:
                # Closing mid-body drops the connection, which is what tells the server to stop generating.
                await response.aclose()

    def _take(self, attempt: _Attempt, spec: CallSpec, delta: str) -> Iterator[str]:
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
            out = attempt.text[attempt.emitted:]
            attempt.emitted = len(attempt.text)
            yield out

    def _finish(self, attempt: _Attempt, spec: CallSpec, started: float) -> Generation:
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
            usage.prompt_tokens = max(1, spec.prompt_chars // CHARS_PER_TOKEN) if attempt.got_response else 0
            usage.estimated = True
        if parser.completion_tokens is not None and attempt.stop_reason not in ("stop_rule", "cancelled",
                                                                               "time_limit"):
            usage.completion_tokens = parser.completion_tokens
        elif parser.completion_tokens is not None:
            # Cut short by us: the provider's count (if it sent one early) can only be a lower bound.
            usage.completion_tokens = min(max(parser.completion_tokens, parser.content_events, attempt.deltas),
                                          spec.max_tokens)
            usage.estimated = True
        elif attempt.stop_reason == "max_tokens":
            usage.completion_tokens = spec.max_tokens  # the server stopped because it generated exactly that many
            usage.estimated = True
        else:
            # About one token per content event (llama.cpp also sends "" for partial characters).
            usage.completion_tokens = min(max(parser.content_events, attempt.deltas), spec.max_tokens)
            usage.estimated = True
        return Generation(text=attempt.text, stop_reason=attempt.stop_reason or "eos", usage=usage)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        # The key is never stored on the object; name the variable only.
        return (f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r})")


async def _within(deadline: float | None, awaitable: Any) -> Any:
    """Await with an optional loop-time deadline (raises TimeoutError)."""
    if deadline is None:
        return await awaitable
    async with asyncio.timeout_at(deadline):
        return await awaitable


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
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
