"""Several suggestions where the model is unsure: the fork recorded by the backend, the
branches continued from the KV cache, the cache that keeps them, and the quiet gate."""

from __future__ import annotations

import asyncio

import pytest

from lsp_server.backends.base import Generation, GenerationRequest, Usage
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings
from lsp_server.completion.cache import CompletionCache, CursorText
from lsp_server.completion.prompt import CompletionInput
from lsp_server.completion.quiet_gate import QuietGate
from lsp_server.completion.task import CompletionTask
from lsp_server.config import CompletionConfig


@pytest.fixture(scope="module")
def unsure(unsure_model_path):
    backend = LlamaCppBackend(LlamaSettings(model=unsure_model_path, n_ctx=1024))
    backend.load()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def endless(endless_model_path):
    backend = LlamaCppBackend(LlamaSettings(model=endless_model_path, n_ctx=1024))
    backend.load()
    yield backend
    backend.close()


def test_the_backend_records_where_the_model_was_unsure(unsure):
    prompt = unsure.tokenize_text("value = ")
    generation = unsure.generate_blocking(GenerationRequest(prompt, max_tokens=5, fork_below=-0.7, fork_width=2))
    assert generation.text == " x" * 5 and len(generation.tokens) == 5
    fork = generation.fork
    assert fork is not None and fork.step == 0
    (runner_up, logprob), *_ = fork.alternatives
    assert unsure.detokenize([runner_up]) == " y" and -0.7 > logprob > -3.0
    assert not set(t for t, _ in fork.alternatives) & unsure.stop_tokens
    # Not asked for, or sure enough: no fork.
    assert unsure.generate_blocking(GenerationRequest(prompt, max_tokens=5)).fork is None
    assert unsure.generate_blocking(GenerationRequest(prompt, max_tokens=5, fork_below=-5.0, fork_width=2)).fork is None


def test_a_forced_branch_reuses_the_cache_and_starts_with_the_forced_text(unsure):
    prompt = unsure.tokenize_text("value = ")
    unsure.generate_blocking(GenerationRequest(prompt, max_tokens=3))
    y = unsure.tokenize_text(" y")
    branch = unsure.generate_blocking(GenerationRequest(prompt, max_tokens=3, forced=y))
    assert branch.text == " y x x x"  # the stop rule and the caller see the forced token's text too
    assert branch.tokens[:1] == y and branch.usage.completion_tokens == 3
    assert branch.usage.cached_prompt_tokens == len(prompt)  # only the forced token was evaluated


def test_an_explicit_request_gets_alternatives_only_from_an_unsure_model(unsure, endless):
    config = CompletionConfig(max_tokens=6, time_limit_ms=60_000, alternatives=3)
    inp = CompletionInput("a.py", "value =", 0, 7)
    outcome = asyncio.run(CompletionTask(unsure, config).run(inp, alternatives=True))
    assert outcome.text == " x" * 6 and outcome.alternatives == [" y" + " x" * 5]
    assert asyncio.run(CompletionTask(unsure, config).run(inp)).alternatives == []  # typing: one answer
    sure = asyncio.run(CompletionTask(endless, config).run(inp, alternatives=True))
    assert sure.text == "xxxxxx" and sure.alternatives == []
    one = CompletionConfig(max_tokens=6, time_limit_ms=60_000, alternatives=1)
    assert asyncio.run(CompletionTask(unsure, one).run(inp, alternatives=True)).alternatives == []


def test_the_cache_keeps_alternatives_that_still_fit_what_was_typed():
    cache = CompletionCache()
    at = CursorText("u", "x = ", "\n")
    cache.put(at, "foo(1)", "r1", ("foo(2)", "bar()"), explored=True)
    hit = cache.get(CursorText("u", "x = fo", "\n"))
    assert hit is not None and hit.text == "o(1)" and hit.alternatives == ("o(2)",) and hit.explored
    hit = cache.get(CursorText("u", "x = foo(1", "\n"))
    assert hit is not None and hit.text == ")" and hit.alternatives == ()
    # A word of an alternative accepted: its rest is the suggestion now.
    hit = cache.get(CursorText("u", "x = ba", "\n"))
    assert hit is not None and hit.text == "r()" and hit.alternatives == () and hit.typed == 2
    assert cache.get(CursorText("u", "x = baz", "\n")) is None


def test_the_quiet_gate_holds_back_low_confidence_only():
    gate = QuietGate(min_mean_logprob=-1.0)
    confident = Generation("x", "eos", Usage(), token_logprobs=[-0.1, -0.2])
    unsure = Generation("x", "eos", Usage(), token_logprobs=[-0.5, -2.5])
    assert not gate.holds_back(confident.mean_logprob) and gate.holds_back(unsure.mean_logprob)
    assert not gate.holds_back(Generation("", "eos", Usage()).mean_logprob)
