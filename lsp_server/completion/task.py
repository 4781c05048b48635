"""The completion task: prompt -> generation with stop rules -> post-processed text."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from lsp_server.backends.base import CancelToken, Generation, GenerationRequest
from lsp_server.backends.local import LocalBackend
from lsp_server.completion.prompt import BuiltPrompt, CompletionInput, PromptBudget, PromptBuilder
from lsp_server.completion.rules import StopRule, code_follows, first_text_check, postprocess
from lsp_server.config import CompletionConfig

# A generation cut by the time box after this few tokens is a fragment ("for", "return"),
# not a suggestion.
MIN_TIMED_OUT_TOKENS = 3


# A runner-up token less likely than this (about 5 %) is not worth a suggestion of its own.
MIN_ALTERNATIVE_LOGPROB = -3.0


@dataclass
class CompletionOutcome:
    """A post-processed completion and how it was made."""

    text: str | None
    prompt: BuiltPrompt
    generation: Generation
    build_ms: float
    # Other suggestions for the same cursor, made where the model was unsure (best first).
    alternatives: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return self.prompt.mode


class CompletionTask:
    """Knows how to ask a local FIM model for the text at a cursor."""

    def __init__(self, backend: LocalBackend, config: CompletionConfig) -> None:
        self.backend = backend
        self.config = config
        budget = PromptBudget(
            prefix_tokens=config.prefix_tokens,
            suffix_tokens=config.suffix_tokens,
            extra_tokens=config.extra_tokens,
        )
        self.builder = PromptBuilder(tokenizer=backend, fim=backend.fim, budget=budget, bos=backend.bos)

    def request_for(
        self, prompt: BuiltPrompt, *, alternatives: bool = False, background: bool = False
    ) -> GenerationRequest:
        width = max(self.config.alternatives - 1, 0) if alternatives else 0
        return GenerationRequest(
            background=background,
            prompt_tokens=prompt.tokens,
            max_tokens=self.config.max_tokens,
            time_limit_s=self.config.time_limit_ms / 1000.0,
            stop=StopRule(
                prompt.cursor,
                max_lines=self.config.max_lines,
                single_line=prompt.mode == "prefix" and code_follows(prompt.cursor),
            ),
            fork_below=self.config.unsure_logprob if width else None,
            fork_width=width,
            first_text_ok=first_text_check(prompt.cursor),
            heal=prompt.heal,
        )

    def finish(self, generation: Generation, prompt: BuiltPrompt) -> str | None:
        """The text to show for a generation (post-processed), or None."""
        truncated = generation.stop_reason in ("max_tokens", "time_limit", "context_full")
        fragment = (
            generation.stop_reason == "time_limit"
            and generation.usage.completion_tokens < MIN_TIMED_OUT_TOKENS
            and "\n" not in generation.text
        )
        if generation.stop_reason == "cancelled" or fragment:
            return None
        return postprocess(generation.text, prompt.cursor, truncated=truncated)

    async def run(
        self,
        inp: CompletionInput,
        cancel: CancelToken | None = None,
        *,
        alternatives: bool = False,
        background: bool = False,
    ) -> CompletionOutcome:
        """One suggestion; with `alternatives`, where the model was unsure, up to
        `config.alternatives - 1` more, each continuing one of the runner-up tokens (the
        prompt and the tokens before the fork come from the KV cache). `background`: nobody
        asked yet (speculation); a shared engine runs it after requests."""
        started = time.perf_counter()
        prompt = self.builder.build(inp)
        build_ms = (time.perf_counter() - started) * 1000.0
        request = self.request_for(prompt, alternatives=alternatives, background=background)
        generation = await self.backend.generate(request, cancel)
        text = self.finish(generation, prompt)
        others: list[str] = []
        fork = generation.fork
        if text is not None and fork is not None and not (cancel is not None and cancel.cancelled):
            deadline = started + self.config.time_limit_ms / 1000.0
            before = generation.tokens[: fork.step]
            for token, logprob in fork.alternatives:
                remaining = deadline - time.perf_counter()
                if logprob < MIN_ALTERNATIVE_LOGPROB or remaining <= 0 or (cancel is not None and cancel.cancelled):
                    break
                forced = [*before, token]
                branch = await self.backend.generate(
                    replace(
                        request,
                        forced=forced,
                        max_tokens=max(1, request.max_tokens - len(forced)),
                        time_limit_s=remaining,
                        fork_below=None,
                        fork_width=0,
                    ),
                    cancel,
                )
                other = self.finish(branch, prompt)
                if other is not None and other != text and other not in others:
                    others.append(other)
        return CompletionOutcome(
            text=text, prompt=prompt, generation=generation, build_ms=build_ms, alternatives=others
        )
