"""The local backend on real llama.cpp with tiny generated GGUFs."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lsp_server.backends.base import BackendError, CancelToken, GenerationRequest
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings


@pytest.fixture(scope="module")
def endless(endless_model_path):
    backend = LlamaCppBackend(LlamaSettings(model=endless_model_path, n_ctx=1024))
    backend.load()
    yield backend
    backend.close()


def test_editor_text_never_becomes_a_control_token(endless):
    assert endless.fim is not None
    tokens = endless.tokenize_text("<|fim_prefix|>")
    assert len(tokens) > 1
    assert not set(tokens) & (endless.fim.ids() | endless.stop_tokens)
    assert endless.detokenize(tokens) == "<|fim_prefix|>"


def test_max_tokens_and_logprobs(endless):
    prompt = [endless.fim.prefix, *endless.tokenize_text("a = "), endless.fim.suffix, endless.fim.middle]
    generation = endless.generate_blocking(GenerationRequest(prompt_tokens=prompt, max_tokens=7))
    assert generation.text == "x" * 7
    assert generation.stop_reason == "max_tokens"
    assert generation.usage.completion_tokens == 7 and generation.usage.prompt_tokens == len(prompt)
    assert len(generation.token_logprobs) == 7
    assert all(lp <= 0 for lp in generation.token_logprobs)
    assert -1.0 < generation.mean_logprob < 0  # the favoured token dominates


def test_stop_rule_cuts_text(endless):
    prompt = endless.tokenize_text("b = ")
    generation = endless.generate_blocking(
        GenerationRequest(prompt_tokens=prompt, max_tokens=50, stop=lambda text: 3 if len(text) >= 5 else None)
    )
    assert generation.text == "xxx" and generation.stop_reason == "stop_rule"


def test_cancel_lands_within_one_token(endless):
    token = CancelToken()
    seen: list[int] = []

    def cancel_at_five(text: str) -> None:
        seen.append(len(text))
        if len(text) == 5:
            token.cancel()  # as $/cancelRequest would, from another thread
        return None

    generation = endless.generate_blocking(
        GenerationRequest(prompt_tokens=endless.tokenize_text("c = "), max_tokens=500, stop=cancel_at_five), token
    )
    assert generation.stop_reason == "cancelled"
    assert generation.usage.completion_tokens == 5


class StepClock:
    """A clock that moves only when told: here, by a fixed step per generated token."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


def test_time_limit_stops_at_the_deadline_on_an_injected_clock(endless_model_path):
    clock = StepClock()
    backend = LlamaCppBackend(LlamaSettings(model=endless_model_path, n_ctx=1024), clock=clock)
    backend.load()
    try:

        def token_takes_an_eighth_of_a_second(text: str) -> None:
            clock.step(0.125)  # the stop rule runs once per token: this is the token's duration
            return None

        generation = backend.generate_blocking(
            GenerationRequest(
                prompt_tokens=backend.tokenize_text("d = "),
                max_tokens=900,
                time_limit_s=1.0,
                stop=token_takes_an_eighth_of_a_second,
            )
        )
    finally:
        backend.close()
    # Eight tokens fill the second: the box closes there, long before the token limit.
    assert generation.stop_reason == "time_limit"
    assert generation.usage.completion_tokens == 8 and generation.text == "x" * 8
    assert generation.usage.generation_ms == 1000.0


def test_the_time_box_counts_generation_not_reading_the_prompt(endless_model_path):
    class SlowPromptClock(StepClock):
        """Reads: submitted, started, prompt done (ten seconds later: a long cold prompt), then per token."""

        def __init__(self) -> None:
            super().__init__()
            self.reads = 0

        def __call__(self) -> float:
            self.reads += 1
            if self.reads == 3:
                self.step(10.0)
            return self.now

    clock = SlowPromptClock()
    backend = LlamaCppBackend(LlamaSettings(model=endless_model_path, n_ctx=1024), clock=clock)
    backend.load()
    try:
        generation = backend.generate_blocking(
            GenerationRequest(
                prompt_tokens=backend.tokenize_text("e = " * 40),
                max_tokens=900,
                time_limit_s=1.0,
                stop=lambda text: clock.step(0.125),
            )
        )
    finally:
        backend.close()
    # The ten seconds of prompt do not eat the one-second box: eight tokens still fit.
    assert generation.usage.prompt_ms == 10_000.0
    assert generation.stop_reason == "time_limit" and generation.text == "x" * 8


def test_time_limit_fires_on_the_real_clock_before_the_token_limit(endless_model_path):
    # 4,000 tokens take a second or more on any CPU; a 50 ms box must end the generation long before.
    backend = LlamaCppBackend(LlamaSettings(model=endless_model_path, n_ctx=4096))
    backend.load()
    try:
        generation = backend.generate_blocking(
            GenerationRequest(prompt_tokens=backend.tokenize_text("d = "), max_tokens=4000, time_limit_s=0.05)
        )
    finally:
        backend.close()
    assert generation.stop_reason == "time_limit"
    assert 0 < generation.usage.completion_tokens < 4000 and set(generation.text) == {"x"}


def test_kv_cache_reuse_of_shared_prefix(endless):
    base = endless.tokenize_text("def f(x):\n    return x\n" * 10)
    first = endless.generate_blocking(GenerationRequest(prompt_tokens=base + endless.tokenize_text("y"), max_tokens=2))
    second = endless.generate_blocking(GenerationRequest(prompt_tokens=base + endless.tokenize_text("z"), max_tokens=2))
    assert first.usage.cached_prompt_tokens < len(base)
    assert second.usage.cached_prompt_tokens >= len(base) - 1


def test_prompt_that_does_not_fit_is_an_error(endless):
    with pytest.raises(BackendError, match="does not fit"):
        endless.generate_blocking(GenerationRequest(prompt_tokens=[5] * 1024, max_tokens=4))


async def test_async_cancel_stops_the_worker(endless):
    token = CancelToken()
    generating = threading.Event()

    def paced(text: str) -> None:
        generating.set()
        time.sleep(0.001)  # at least a second for the 1000 tokens, however fast the CPU
        return None

    task = asyncio.ensure_future(
        endless.generate(
            GenerationRequest(prompt_tokens=endless.tokenize_text("e = "), max_tokens=1000, stop=paced), token
        )
    )
    assert await asyncio.to_thread(generating.wait, 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker stopped within a token of the cancel (it reports what it had), not at the limit.
    assert token.generation is not None and token.generation.stop_reason == "cancelled"
    assert token.generation.usage.completion_tokens < 1000
    # And it is free for the next request.
    generation = await endless.generate(GenerationRequest(prompt_tokens=endless.tokenize_text("f = "), max_tokens=3))
    assert generation.text == "xxx"


def test_load_failure_is_a_backend_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    backend = LlamaCppBackend(LlamaSettings(model=bad))
    with pytest.raises(BackendError, match="could not load"):
        backend.load()
    assert backend.load_failed


@pytest.mark.parametrize("gpu_layers", [-1, 0, 2])
def test_gpu_layers_reach_llama_cpp(gpu_layers, endless_model_path):
    import llama_cpp

    backend = LlamaCppBackend(LlamaSettings(model=endless_model_path, n_ctx=256, n_gpu_layers=gpu_layers))
    backend.load()
    try:
        offloaded = backend.llm.model_params.n_gpu_layers
    finally:
        backend.close()
    if not llama_cpp.llama_supports_gpu_offload():
        assert offloaded == 0  # a CPU-only build is never asked for GPU layers
    else:
        assert offloaded == {-1: 0x7FFFFFFF, 0: 0, 2: 2}[gpu_layers]  # llama-cpp-python's "all" is INT32_MAX


def test_gpu_layers_setting(monkeypatch, tmp_path):
    from pydantic import ValidationError

    from lsp_server.config import ServerConfig
    from lsp_server.engine.core import Engine

    assert ServerConfig().gpu_layers == -1
    assert ServerConfig().merged({"gpu_layers": 0}).gpu_layers == 0
    with pytest.raises(ValidationError, match="gpu_layers"):
        ServerConfig().merged({"gpu_layers": -2})
    monkeypatch.setenv("NINETYTEN_HOME", str(tmp_path))
    assert Engine(ServerConfig(gpu_layers=7)).local.settings.n_gpu_layers == 7


def test_the_first_token_skips_openings_the_caller_refuses(unsure_model_path):
    # " x" for ever at under 50 %, " y" a close second: refusing " x" first gives " y", then " x".
    backend = LlamaCppBackend(LlamaSettings(model=unsure_model_path, n_ctx=512))
    backend.load()
    try:
        prompt = backend.tokenize_text("c =")
        generation = backend.generate_blocking(
            GenerationRequest(prompt_tokens=prompt, max_tokens=3, first_text_ok=lambda text: text != " x")
        )
        assert generation.text == " y x x"  # only the first token is checked
        assert generation.token_logprobs[0] < generation.token_logprobs[1]  # a less likely token, honestly scored
        refused = backend.generate_blocking(
            GenerationRequest(prompt_tokens=prompt, max_tokens=3, first_text_ok=lambda text: False)
        )
        assert refused.text == " x x x"  # nothing acceptable among the best: the model's own choice
    finally:
        backend.close()


def test_token_healing_writes_the_left_out_text_first_and_answers_after_it(unsure_model_path):
    # " x" for ever, " y" a close second.
    backend = LlamaCppBackend(LlamaSettings(model=unsure_model_path, n_ctx=512))
    backend.load()
    try:
        prompt = backend.tokenize_text("c =")
        healed = backend.generate_blocking(GenerationRequest(prompt_tokens=prompt, max_tokens=3, heal=" y"))
        assert backend.detokenize(healed.tokens) == " y x x"  # the model's second choice, because it spells it
        assert healed.text == " x x"  # the answer is what follows the healed text
        # The stop rule and the check of the answer's first text see the answer, not the healed text.
        seen: list[str] = []

        def stop(text: str) -> int | None:
            seen.append(text)
            return None

        checked = backend.generate_blocking(
            GenerationRequest(
                prompt_tokens=prompt, max_tokens=3, heal=" y", stop=stop, first_text_ok=lambda t: t != " x"
            )
        )
        assert checked.text == " y x" and seen == ["", " y", " y x"]
        # Text no likely token spells is written as the tokenizer would write it.
        odd = backend.generate_blocking(GenerationRequest(prompt_tokens=prompt, max_tokens=8, heal=" qz("))
        assert backend.detokenize(odd.tokens).startswith(" qz(") and not odd.text.startswith(" qz(")
    finally:
        backend.close()
