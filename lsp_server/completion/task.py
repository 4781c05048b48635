"""The completion task: prompt -> generation with stop rules -> post-processed text."""

from __future__ import annotations

import time
from dataclasses import dataclass

from lsp_server.backends.base import CancelToken, Generation, GenerationRequest
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend
from lsp_server.completion.prompt import BuiltPrompt, CompletionInput, PromptBudget, PromptBuilder
from lsp_server.completion.rules import StopRule, code_follows, postprocess
from lsp_server.config import CompletionConfig

# A generation cut by the time box after this few tokens is a fragment ("for", "return"),
# not a suggestion.
MIN_TIMED_OUT_TOKENS = 3


@dataclass
class CompletionOutcome:
    """A post-processed completion and how it was made."""

    text: str | None
    prompt: BuiltPrompt
    generation: Generation
    build_ms: float

    @property
    def mode(self) -> str:
        return self.prompt.mode


class CompletionTask:
    """Knows how to ask a local FIM model for the text at a cursor."""

    def __init__(self, backend: LlamaCppBackend, config: CompletionConfig) -> None:
        self.backend = backend
        self.config = config
        budget = PromptBudget(
            prefix_tokens=config.prefix_tokens,
            suffix_tokens=config.suffix_tokens,
            extra_tokens=config.extra_tokens,
        )
        self.builder = PromptBuilder(tokenizer=backend, fim=backend.fim, budget=budget, bos=backend.bos)

    def request_for(self, prompt: BuiltPrompt) -> GenerationRequest:
        return GenerationRequest(
            prompt_tokens=prompt.tokens,
            max_tokens=self.config.max_tokens,
            time_limit_s=self.config.time_limit_ms / 1000.0,
            stop=StopRule(
                prompt.cursor,
                max_lines=self.config.max_lines,
                single_line=prompt.mode == "prefix" and code_follows(prompt.cursor),
            ),
        )

    async def run(self, inp: CompletionInput, cancel: CancelToken | None = None) -> CompletionOutcome:
        started = time.perf_counter()
        prompt = self.builder.build(inp)
        build_ms = (time.perf_counter() - started) * 1000.0
        generation = await self.backend.generate(self.request_for(prompt), cancel)
        truncated = generation.stop_reason in ("max_tokens", "time_limit", "context_full")
        fragment = (
            generation.stop_reason == "time_limit"
            and generation.usage.completion_tokens < MIN_TIMED_OUT_TOKENS
            and "\n" not in generation.text
        )
        if generation.stop_reason == "cancelled" or fragment:
            text = None
        else:
            text = postprocess(generation.text, prompt.cursor, truncated=truncated)
        return CompletionOutcome(text=text, prompt=prompt, generation=generation, build_ms=build_ms)
