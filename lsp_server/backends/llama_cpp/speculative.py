"""Speculative decoding for the local model: drafts, and the check that keeps answers exact.

A refactor or an explanation repeats much of the code it was given. Greedy decoding writes
one token per forward pass; speculative decoding proposes several tokens (a *draft*) and lets
the model check them all in one batched pass, keeping the ones it would have written itself.
Drafts come from:

- **prompt lookup**: the tokens that followed the last place where the newest n-gram of the
  prompt or the answer so far occurred before (no second model; apoorvumang's
  prompt-lookup-decoding, llama.cpp's `lookup` example);
- **a draft model**: a small model with the same vocabulary writing a few tokens greedily
  (llama.cpp's `--fim-qwen-7b-spec` pairs Qwen2.5-Coder 7B with the 0.5B).

Only the target model's own greedy choice is ever kept, so the answer is the greedy answer —
provided the batched pass computes exactly what decoding one token at a time computes. In
llama.cpp that depends on the build and the model: its CPU kernels for one row (a matrix-vector
product) and for several rows (tiled, repacked or llamafile kernels) add up in different orders,
and on some models (the embedded Gemma 3, with its large activations quantized to 8 bits per
matrix product) such rounding differences reach whole logits. So before speculating, the backend
measures it (`exact_rows`): rows decoded in batches of 2..n must give bit-for-bit the logits of
decoding them one at a time; speculation uses batches of at most that n, and none when even two
rows differ. Drafts never change an answer; where that cannot be shown, there are no drafts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Longest and shortest n-gram looked up; the longest match wins (it predicts best).
NGRAM_MAX = 3
NGRAM_MIN = 1
# Only this many most recent tokens are searched: a lookup must cost microseconds, not a pass.
LOOKUP_WINDOW = 8192
# The draft model stops drafting when it is less sure than this of its next token.
DRAFT_MIN_PROB = 0.5
# After this many drafts in a row of which nothing was kept, drafting pauses ...
MISSES_BEFORE_PAUSE = 3
# ... for this many tokens (fresh prose repeats n-grams without repeating what follows them).
PAUSE_TOKENS = 8

# What the probe decodes: code-like text any tokenizer splits into many tokens.
PROBE_TEXT = (
    "def checksum(data: bytes, seed: int = 0) -> int:\n"
    "    total = seed\n"
    "    for index, value in enumerate(data):\n"
    "        total = (total * 31 + value + index) % 1_000_000_007\n"
    "    return total\n\n\n"
    "class Cache:\n"
    "    def __init__(self, size):\n"
    "        self.size = size\n"
    "        self.items = {}\n"
)


def lookup_draft(
    history: Sequence[int],
    max_tokens: int,
    *,
    ngram_max: int = NGRAM_MAX,
    ngram_min: int = NGRAM_MIN,
    window: int = LOOKUP_WINDOW,
) -> list[int]:
    """What followed an earlier occurrence of the longest n-gram that ends `history` (longest n
    first): the newest occurrence followed by `max_tokens` tokens, else the one followed by the
    most; [] when the n-gram never occurred before."""
    if max_tokens <= 0 or len(history) < 2:
        return []
    tokens = np.asarray(history[max(0, len(history) - window) :], dtype=np.int64)
    length = len(tokens)
    for n in range(min(ngram_max, length - 1), ngram_min - 1, -1):
        tail = tokens[length - n :]
        # Where the n-gram occurs, not counting its own occurrence at the end; newest first:
        # what the answer copies now is near where it copied last.
        starts = np.flatnonzero(tokens[: length - n] == tail[0])[::-1]
        best: list[int] = []
        for at in starts:
            if at + n <= length - 1 and np.array_equal(tokens[at : at + n], tail):
                follow = tokens[at + n : at + n + max_tokens]
                if len(follow) > len(best):
                    best = follow.tolist()
                    if len(best) == max_tokens:
                        break
        if best:
            return best
    return []


def same_vocabulary(target: Any, draft: Any) -> str | None:
    """Why `draft` cannot draft for `target` (llama-cpp-python Llama objects), or None.

    The draft's token ids must mean what the target's mean: the same tokenizer type, special
    tokens and token texts (vocabularies may differ by a few padding entries at the end)."""
    import llama_cpp

    t_vocab, d_vocab = target._model.vocab, draft._model.vocab
    if llama_cpp.llama_vocab_type(t_vocab) != llama_cpp.llama_vocab_type(d_vocab):
        return "its tokenizer is of another type"
    for name in ("llama_vocab_bos", "llama_vocab_eos"):
        if getattr(llama_cpp, name)(t_vocab) != getattr(llama_cpp, name)(d_vocab):
            return "its special tokens differ"
    t_n, d_n = target.n_vocab(), draft.n_vocab()
    if abs(t_n - d_n) > 128:
        return f"its vocabulary has {d_n} tokens, the model's {t_n}"
    for token in range(min(t_n, d_n)):
        if llama_cpp.llama_vocab_get_text(t_vocab, token) != llama_cpp.llama_vocab_get_text(d_vocab, token):
            return f"token {token} differs"
    return None


class DraftModel:
    """A small model that proposes the next few tokens greedily, keeping its own KV cache in
    step with the answer (each call reuses what it evaluated last time)."""

    def __init__(self, llm: Any, *, min_prob: float = DRAFT_MIN_PROB) -> None:
        self.llm = llm
        self.min_prob = min_prob

    def propose(self, history: Sequence[int], max_tokens: int) -> list[int]:
        import llama_cpp

        llm = self.llm
        if max_tokens <= 0 or not history or len(history) + max_tokens >= llm.n_ctx():
            return []
        cached = llm.input_ids[: llm.n_tokens]
        limit = min(len(cached), len(history) - 1)  # the last token is evaluated below, for its logits
        same = np.asarray(history[:limit], dtype=cached.dtype) == cached[:limit]
        common = int(np.argmin(same)) if not same.all() else limit
        if common == 0 or not llm._ctx.kv_cache_seq_rm(-1, common, -1):
            common = 0
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = common
        llm.eval(list(history[common:]))
        ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()
        drafted: list[int] = []
        while len(drafted) < max_tokens:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            token = int(np.argmax(logits))
            top = float(logits[token])
            probability = 1.0 / float(np.exp(logits - top, dtype=np.float64).sum())
            if probability < self.min_prob:
                break
            drafted.append(token)
            if len(drafted) < max_tokens:
                llm.eval([token])
        # Keep only the answer itself evaluated: the drafts may be rejected.
        llm.n_tokens = len(history)
        llm._ctx.kv_cache_seq_rm(-1, len(history), -1)
        return drafted


class Drafter:
    """Proposes drafts for one generation: prompt lookup first, then the draft model, pausing
    after drafts that keep missing."""

    def __init__(self, history: Sequence[int], *, lookup: bool, model: DraftModel | None) -> None:
        self.history = list(history)
        self.lookup = lookup
        self.model = model
        self.misses = 0
        self.paused_until = 0
        self.drafted = 0
        self.accepted = 0

    def propose(self, max_tokens: int) -> list[int]:
        if max_tokens <= 0 or len(self.history) < self.paused_until:
            return []
        draft = lookup_draft(self.history, max_tokens) if self.lookup else []
        if not draft and self.model is not None:
            draft = self.model.propose(self.history, max_tokens)
        self.drafted += len(draft)
        return draft

    def kept(self, drafted: int, accepted: int) -> None:
        """How a draft fared (call after every draft that was checked)."""
        self.accepted += accepted
        if drafted == 0:
            return
        self.misses = self.misses + 1 if accepted == 0 else 0
        if self.misses >= MISSES_BEFORE_PAUSE:
            self.misses = 0
            self.paused_until = len(self.history) + PAUSE_TOKENS


def decode_rows(llm: Any, tokens: Sequence[int]) -> None:
    """Evaluate `tokens` after the cached ones in one batch, with logits for every row."""
    n_past = llm.n_tokens
    batch = llm._batch
    batch.set_batch(batch=list(tokens), n_past=n_past, logits_all=True)
    llm._ctx.decode(batch)
    llm.input_ids[n_past : n_past + len(tokens)] = tokens
    llm.n_tokens = n_past + len(tokens)


def exact_rows(llm: Any, max_rows: int, text: str = PROBE_TEXT) -> int:
    """The largest n <= max_rows such that every batch of 2..n rows gives each row bit for bit
    the logits of decoding its token alone; 1 when even two rows differ.

    Checked at two cache lengths (one batch straddles a 256-cell boundary, where llama.cpp
    pads the attention window). Leaves the context empty."""
    import llama_cpp

    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    while len(tokens) < 256 + max_rows + 8:
        tokens = tokens + tokens
    ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()

    def logits(row: int) -> np.ndarray:
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, row), shape=(n_vocab,)).copy()

    def back_to(length: int) -> None:  # the prefix stays evaluated: only what follows it goes
        llm._ctx.kv_cache_seq_rm(-1, length, -1)
        llm.n_tokens = length

    best = max_rows
    try:
        for prefix in (24, 252 - max_rows // 2):
            back_to(0)
            llm.eval(tokens[:prefix])
            alone = []
            for token in tokens[prefix : prefix + max_rows]:
                llm.eval([token])
                alone.append(logits(-1))
            for rows in range(2, best + 1):
                back_to(prefix)
                decode_rows(llm, tokens[prefix : prefix + rows])
                if any(not np.array_equal(logits(i), alone[i]) for i in range(rows)):
                    best = rows - 1
                    break
            if best < 2:
                break
    finally:
        back_to(0)
    return best


__all__ = ["DraftModel", "Drafter", "decode_rows", "exact_rows", "lookup_draft", "same_vocabulary"]
