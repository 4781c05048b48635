"""Serving inline completions fast: cache, adaptive debounce, one generation, speculation.

The order of the checks is what makes typing feel instant without wasting the model:
a request first cancels whatever is running (the newest request wins), then looks in
the cache (a re-request or a typed-through suggestion costs no model time), then —
when it came from typing, not from an explicit invoke — waits about one keystroke gap
for a newer request to replace it, and only then generates. After a suggestion is
shown, the model uses its idle time to prepare the one after it, so accepting a
suggestion is answered from the cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine

from lsp_server.backends.base import BackendError, CancelToken
from lsp_server.completion.cache import CompletionCache, CursorText
from lsp_server.completion.complete import Completer
from lsp_server.completion.debounce import AdaptiveDebounce
from lsp_server.completion.prompt import CompletionInput, ContextFile
from lsp_server.completion.session_context import SessionContext
from lsp_server.config import CompletionConfig
from lsp_server.engine.results import CompletionResult
from lsp_server.tiers import LOCAL

log = logging.getLogger(__name__)

SPECULATION_DELAY_S = 0.04
# A file opened this soon after a request (the user is typing in another one, or an
# extension opened it in the background) is not warmed: that would take the cache from
# the file being typed in. A focus notification from the editor always warms.
WARM_QUIET_S = 5.0

Notify = Callable[[str, dict[str, Any], bool], None]
Spawn = Callable[[Coroutine[Any, Any, None]], None]
Gather = Callable[[], list[ContextFile]]  # a request's repository context, gathered when needed


@dataclass
class CompletionStats:
    """Counters a benchmark or a test reads through `ninetyten/stats`."""

    requests: int = 0
    cache_hits: int = 0
    superseded: int = 0  # dropped while waiting out the debounce
    generations: int = 0  # generations started for requests
    speculative_started: int = 0
    speculative_cached: int = 0
    quiet: int = 0  # suggestions held back by the quiet gate
    with_alternatives: int = 0  # answers that offered more than one suggestion
    warmups: int = 0  # prompts sent to be read ahead of a request
    warmed: int = 0  # ... and finished (read, or found already cached)
    warmed_tokens: int = 0  # prompt tokens the warm-ups read

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class CompletionService:
    def __init__(self, config: CompletionConfig, notify: Notify) -> None:
        self.config = config
        self.notify = notify
        self.cache = CompletionCache(config.cache_size)
        self.debounce = AdaptiveDebounce(config.debounce_min_ms, config.debounce_max_ms)
        self.context = SessionContext(config)
        self.stats = CompletionStats()
        self._seq = 0
        self._inflight: CancelToken | None = None
        self._speculation: tuple[CancelToken, asyncio.Task[None]] | None = None
        self._last_request = float("-inf")
        self._pending_warm: tuple[CompletionInput, Gather | None] | None = None

    def reconfigure(self, config: CompletionConfig) -> None:
        self.config = config
        self.cache = CompletionCache(config.cache_size)
        self.debounce = AdaptiveDebounce(config.debounce_min_ms, config.debounce_max_ms)
        self.context.reconfigure(config)

    # -- document events ---------------------------------------------------------

    def opened(self, uri: str, path: Path | None, text: str) -> None:
        self.context.opened(path, text)

    def changed(self, uri: str, rel: str, changes: list[tuple[int, int, str]]) -> None:
        """A keystroke in `uri`: its incremental changes, (first line, last line replaced, new text)."""
        self.debounce.keystroke()
        self.context.changed(uri, rel, changes)

    def closed(self, uri: str, path: Path | None = None) -> None:
        # A closed file stops being context for the others: the user put it away (it may be one
        # they only glanced at, a secret among them), and its text is no longer kept up to date.
        self.cache.clear(uri)
        self.context.closed(uri, path)

    def stop_running(self) -> None:
        """Newest wins: stop the generation in flight and any speculation."""
        if self._inflight is not None:
            self._inflight.cancel()
        if self._speculation is not None:
            self._speculation[0].cancel()
            self._speculation = None

    def close(self) -> None:
        """The session ends: nothing runs on, and the repository index stops."""
        self.stop_running()
        self.context.stop()

    # -- warming the model's cache -------------------------------------------------------

    def warm(
        self,
        completer: Completer,
        inp: CompletionInput,
        *,
        opened: bool,
        spawn: Spawn,
        gather: Gather | None = None,
    ) -> None:
        """Have the model read the prompt for this cursor before the first request, at lower
        priority than requests, so that the first suggestion costs what a keystroke costs."""
        if not completer.can_warm or (opened and time.monotonic() - self._last_request < WARM_QUIET_S):
            return
        self.stats.warmups += 1
        if completer.engine.local.ready:
            self._send_warm(completer, inp, gather)
            return
        waiting = self._pending_warm is not None
        self._pending_warm = (inp, gather)  # the newest cursor wins while the model loads
        if not waiting:
            spawn(self._warm_when_ready(completer))

    async def _warm_when_ready(self, completer: Completer) -> None:
        try:
            await completer.engine.wait_ready()
        except Exception:
            self._pending_warm = None
            return  # a model that does not load is reported elsewhere
        pending, self._pending_warm = self._pending_warm, None
        if pending is not None:
            self._send_warm(completer, *pending)

    def _send_warm(self, completer: Completer, inp: CompletionInput, gather: Gather | None = None) -> None:
        if gather is not None:  # the prompt must be the one the first request will send
            inp = dataclasses.replace(inp, extra=gather())
        try:
            future = completer.warm(inp)
        except Exception:  # a warm-up is a bonus; a failure is only worth a debug line
            log.debug("warm-up failed", exc_info=True)
            return
        if future is not None:
            future.add_done_callback(self._warm_done)

    def _warm_done(self, finished: Future[Any]) -> None:
        try:
            reply = finished.result()
        except Exception:
            return
        self.stats.warmed += 1
        self.stats.warmed_tokens += int(getattr(reply, "warmed", 0) or 0)

    # -- requests ------------------------------------------------------------------

    async def complete(
        self,
        completer: Completer,
        uri: str,
        inp: CompletionInput,
        *,
        invoked: bool,
        gather: Gather | None = None,
    ) -> CompletionResult | None:
        """Answer from the cache, or wait out the debounce and generate. `gather`, when given,
        adds the repository context to `inp`: only once the request is known to need the model."""
        engine = completer.engine
        started = time.perf_counter()
        self._last_request = time.monotonic()
        self.stats.requests += 1
        self._seq += 1
        seq = self._seq
        self.stop_running()
        at = CursorText.of(uri, inp.text, inp.line, inp.character)
        # An explicit request (the user asked, or cycles through suggestions) gets the
        # alternatives too, where the model is unsure; typing gets the one best answer.
        explore = invoked and self.config.alternatives > 1
        if self.config.cache_size:
            hit = self.cache.get(at)
            if hit is not None and (hit.explored or not explore):
                self.stats.cache_hits += 1
                result = completer.cached(inp, hit.text, started, typed=hit.typed, alternatives=hit.alternatives)
                engine.feedback(result.request_id, shown=True)
                self.notify(uri, result.summary(), True)
                self._speculate(completer, uri, inp, at, hit.text, gather)
                return result
        if not invoked:
            delay = self.debounce.delay_ms()
            if delay > 0:
                await asyncio.sleep(delay / 1000.0)
                if seq != self._seq:
                    self.stats.superseded += 1
                    return None
        if gather is not None:
            inp = dataclasses.replace(inp, extra=gather())
            gather = None  # gathered: speculation reuses it
        token = self._inflight = CancelToken()
        self.stats.generations += 1
        try:
            result = await completer.complete(inp, token, alternatives=explore, quiet=not invoked)
        except asyncio.CancelledError:
            if token.generation is not None:  # $/cancelRequest: say what was stopped
                usage = token.generation.usage
                self.notify(
                    uri,
                    {
                        "tier": LOCAL,
                        "backend": engine.local.name,
                        "model": engine.local.model_name,
                        "prompt_tokens": usage.prompt_tokens,
                        "cached_prompt_tokens": usage.cached_prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "latency_ms": round(usage.total_ms, 1),
                        "generation_ms": round(usage.generation_ms, 1),
                        "stop_reason": "cancelled",
                    },
                    False,
                )
            raise
        except TimeoutError:
            log.warning("completion skipped: the model is still loading")
            return None
        except Exception as error:
            if engine.local.load_failed:
                return None  # reported to the user once, when loading failed
            if isinstance(error, BackendError):  # the engine died under it: the user was told once
                log.warning("completion failed: %s", error)
            else:
                log.exception("completion failed: %s", error)
            return None
        finally:
            if self._inflight is token:
                self._inflight = None
        self.stats.quiet += result.quiet
        self.stats.with_alternatives += bool(result.alternatives)
        if result.text is not None:
            if self.config.cache_size:
                self.cache.put(at, result.text, result.request_id, tuple(result.alternatives), explored=explore)
            if result.request_id:
                engine.feedback(result.request_id, shown=True)
        self.notify(uri, result.summary(), result.text is not None)
        if result.text is not None and seq == self._seq:
            self._speculate(completer, uri, inp, at, result.text)
        return result

    # -- speculation ---------------------------------------------------------------

    def _speculate(
        self,
        completer: Completer,
        uri: str,
        inp: CompletionInput,
        at: CursorText,
        text: str,
        gather: Gather | None = None,
    ) -> None:
        """Prepare the suggestion for the cursor after `text` is accepted (local model only)."""
        if not (self.config.speculative and self.config.cache_size):
            return
        accepted = CursorText(uri, at.before + text, at.after)
        if self.cache.get(accepted) is not None:
            return
        last_newline = accepted.before.rfind("\n")
        following = dataclasses.replace(
            inp,
            text=accepted.before + accepted.after,
            line=accepted.before.count("\n"),
            character=len(accepted.before) - (last_newline + 1),
            extra=gather() if gather is not None else inp.extra,
        )
        token = CancelToken()
        task = asyncio.ensure_future(self._run_speculation(completer, following, accepted, token))
        self._speculation = (token, task)
        self.stats.speculative_started += 1

    async def _run_speculation(
        self, completer: Completer, inp: CompletionInput, at: CursorText, token: CancelToken
    ) -> None:
        try:
            # Editors often ask again right after showing a suggestion (cursor events, a
            # re-trigger); a decode step started now would only slow that answer down.
            await asyncio.sleep(SPECULATION_DELAY_S)
            if token.cancelled:
                return
            result = await completer.complete(inp, token, speculative=True, quiet=True)
        except asyncio.CancelledError:
            return
        except Exception:  # speculation is a bonus; a failure is only worth a debug line
            log.debug("speculative completion failed", exc_info=True)
            return
        finally:
            if self._speculation is not None and self._speculation[0] is token:
                self._speculation = None
        if result.text is not None and not token.cancelled:
            self.cache.put(at, result.text, "speculative")
            self.stats.speculative_cached += 1
