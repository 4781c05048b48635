"""Speculative decoding (prompt lookup, a draft model) returns exactly the greedy answer.

Real llama.cpp on tiny generated GGUFs and on the embedded Gemma. Where the build computes a
token in a batch differently than alone, the backend must refuse to draft (and say why); where
it drafts, every answer must equal the plain greedy one token for token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.assist.prompts import AssistInput, messages_for
from lsp_server.backends.base import CancelToken, ChatMessage, GenerationRequest
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings
from lsp_server.backends.llama_cpp.chat_template import stop_on_repetition
from lsp_server.backends.llama_cpp.speculative import Drafter, lookup_draft
from tests.conftest_models import _tiny

CODE = "\n".join(
    f"def step_{i}(values, scale):\n    total = 0\n    for value in values:\n        total += value * scale + {i}\n"
    f"    return total\n"
    for i in range(6)
)


@pytest.fixture(scope="module")
def quantized_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights in the quantized types real models use (its own text, not one token)."""
    return _tiny(tmp_path_factory, "tiny-qwen2-q-spec.gguf", seed=5, n_embd=256, n_ff=512, quantized=True)


def _backend(path: Path, **settings: object) -> LlamaCppBackend:
    backend = LlamaCppBackend(LlamaSettings(model=path, n_ctx=2048, **settings))  # type: ignore[arg-type]
    backend.load()
    return backend


def _generate(
    backend: LlamaCppBackend,
    prompt: list[int],
    *,
    speculate: bool,
    max_tokens: int = 120,
    stop=None,
    cancel: CancelToken | None = None,
):  # type: ignore[no-untyped-def]
    return backend.generate_blocking(
        GenerationRequest(prompt_tokens=prompt, max_tokens=max_tokens, stop=stop, speculate=speculate), cancel
    )


# -- drafts -------------------------------------------------------------------------------------


def test_lookup_drafts_what_followed_the_newest_match_of_the_longest_ngram():
    history = [1, 2, 3, 9, 9, 1, 2, 3, 4, 5, 7, 2, 3]
    assert lookup_draft(history, 3) == [4, 5, 7]  # "2 3" last seen before 4 5 7 (newest match wins)
    assert lookup_draft([5, 6, 7, 8, 6, 7], 10) == [8, 6, 7]  # stops at the end of the history
    assert lookup_draft([1, 2, 3, 4], 5) == []  # nothing repeats
    assert lookup_draft([4, 4], 0) == [] and lookup_draft([4], 3) == []
    long = [1, 2, 3, 4] + [0] * 50 + [9, 2, 3]
    assert lookup_draft(long, 2) == [4, 0]  # no "9 2 3" before: falls back to "2 3"


def test_drafting_pauses_after_misses():
    drafter = Drafter([1, 2, 1, 2], lookup=True, model=None)
    for _ in range(3):
        assert drafter.propose(4)
        drafter.kept(4, 0)
    assert drafter.propose(4) == []  # paused: nothing kept three times in a row
    drafter.history += [1, 2] * 5
    assert drafter.propose(4)  # and back after a few tokens


# -- exactly the greedy answer ------------------------------------------------------------------------


def test_prompt_lookup_keeps_copied_tokens_and_the_answer(endless_model_path: Path):
    plain = _backend(endless_model_path)
    lookup = _backend(endless_model_path, prompt_lookup=True)
    try:
        if lookup.exact_rows < 2:
            pytest.skip(f"this llama.cpp build computes batched rows differently: {lookup.speculation_note}")
        prompt = lookup.tokenize_text("x = 'xxxxxxxx'\ny = ")
        expected = _generate(plain, prompt, speculate=False)
        got = _generate(lookup, prompt, speculate=True)
        assert got.text == expected.text == "x" * 120 and got.stop_reason == expected.stop_reason
        assert got.usage.completion_tokens == 120
        assert got.usage.accepted_tokens >= 60  # most tokens came from drafts: fewer passes
        assert got.token_logprobs == pytest.approx(expected.token_logprobs)
        # Stop rules see every token, drafted or not: cut at exactly the same place.
        cut = _generate(lookup, prompt, speculate=True, stop=lambda text: 37 if len(text) >= 41 else None)
        assert cut.text == "x" * 37 and cut.stop_reason == "stop_rule"
        # A request that does not ask for drafts gets none.
        assert _generate(lookup, prompt, speculate=False).usage.draft_tokens == 0
    finally:
        plain.close()
        lookup.close()


def test_cancel_lands_within_one_token_while_drafting(endless_model_path: Path):
    backend = _backend(endless_model_path, prompt_lookup=True)
    try:
        if backend.exact_rows < 2:
            pytest.skip(backend.speculation_note)
        token = CancelToken()

        def cancel_at_nine(text: str) -> None:
            if len(text) == 9:
                token.cancel()
            return None

        done = _generate(
            backend,
            backend.tokenize_text("xxxx xxxx"),
            speculate=True,
            max_tokens=500,
            stop=cancel_at_nine,
            cancel=token,
        )
        assert done.stop_reason == "cancelled" and done.text == "x" * 9
    finally:
        backend.close()


def test_random_quantized_model_same_text_with_and_without_lookup(quantized_model_path: Path):
    plain = _backend(quantized_model_path)
    lookup = _backend(quantized_model_path, prompt_lookup=True, max_draft=6)
    try:
        prompt = lookup.tokenize_text(CODE)
        expected = _generate(plain, prompt, speculate=False, max_tokens=200)
        got = _generate(lookup, prompt, speculate=True, max_tokens=200)
        assert got.text == expected.text and got.stop_reason == expected.stop_reason
        if lookup.exact_rows >= 2:
            assert got.usage.draft_tokens > 0  # drafts were checked (random weights rarely keep them)
        else:
            assert got.usage.draft_tokens == 0 and "differently in a batch" in (lookup.speculation_note or "")
    finally:
        plain.close()
        lookup.close()


def test_a_draft_model_drafts_and_a_wrong_draft_changes_nothing(
    endless_model_path: Path, chat_endless_model_path: Path
):
    plain = _backend(endless_model_path)
    same = _backend(endless_model_path, draft_model=endless_model_path)  # drafts "x": all kept
    wrong = _backend(endless_model_path, draft_model=chat_endless_model_path)  # drafts "y": none kept
    try:
        if same.exact_rows < 2:
            pytest.skip(same.speculation_note)
        assert same.draft is not None and wrong.draft is not None  # the same vocabulary
        prompt = same.tokenize_text("def f():\n    return ")
        expected = _generate(plain, prompt, speculate=False, max_tokens=60)
        kept = _generate(same, prompt, speculate=True, max_tokens=60)
        missed = _generate(wrong, prompt, speculate=True, max_tokens=60)
        assert kept.text == missed.text == expected.text == "x" * 60
        assert kept.usage.accepted_tokens >= 40
        assert missed.usage.draft_tokens > 0 and missed.usage.accepted_tokens == 0
    finally:
        for backend in (plain, same, wrong):
            backend.close()


def test_a_draft_model_with_another_vocabulary_is_refused(endless_model_path: Path, gemma_model_path: Path):
    backend = _backend(endless_model_path, draft_model=gemma_model_path)
    try:
        if backend.exact_rows < 2:
            pytest.skip(backend.speculation_note)
        assert backend.draft is None
        assert "vocabulary" in (backend.speculation_note or "") or "tokenizer" in (backend.speculation_note or "")
        prompt = backend.tokenize_text("a = ")
        assert _generate(backend, prompt, speculate=True, max_tokens=5).text == "xxxxx"
    finally:
        backend.close()


@pytest.mark.gemma
def test_embedded_model_refactor_is_exactly_greedy(gemma_model_path: Path):
    """The embedded Gemma on a refactor: with prompt lookup asked for, the answer is the plain
    greedy one. (On builds where its batched rows differ from single ones the backend refuses
    to draft and says so; where they match, drafts are checked here for real.)"""
    plain = _backend(gemma_model_path)
    lookup = _backend(gemma_model_path, prompt_lookup=True)
    try:
        inp = AssistInput(
            task="refactor", code=CODE, path="steps.py", language="python", instruction="rename `total` to `acc`"
        )
        prompt, _stops = plain.chat_tokens(messages_for(inp))
        stop = stop_on_repetition(None)
        expected = _generate(plain, prompt, speculate=False, max_tokens=64, stop=stop)
        got = _generate(lookup, prompt, speculate=True, max_tokens=64, stop=stop)
        assert got.text == expected.text and got.stop_reason == expected.stop_reason
        if lookup.exact_rows < 2:
            assert got.usage.draft_tokens == 0
            assert "differently in a batch than alone" in (lookup.speculation_note or "")
    finally:
        plain.close()
        lookup.close()


def test_chat_messages_reach_the_drafting_path(endless_model_path: Path):
    """ChatRequest.speculate is passed through to the generation."""
    import asyncio

    from lsp_server.backends.base import ChatRequest

    backend = _backend(endless_model_path, prompt_lookup=True)
    try:
        if backend.exact_rows < 2:
            pytest.skip(backend.speculation_note)
        answer = asyncio.run(
            backend.chat(ChatRequest([ChatMessage("user", "xxxx xxxx")], max_tokens=30, speculate=True))
        )
        assert answer.text == "x" * 30 and answer.usage.accepted_tokens > 0
    finally:
        backend.close()
