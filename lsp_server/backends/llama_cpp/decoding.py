"""The generation loop after the prompt: greedy, one token per forward pass or several checked
drafted tokens per pass (speculative.py), with the same checks between every two tokens.

Our own loop rather than llama-cpp-python's, so that a cancel flag, stop rules, a time box and
token log-probabilities are all checked between two tokens.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from lsp_server.backends.base import CancelToken, Fork, Generation, GenerationRequest, StopReason, Usage
from lsp_server.backends.llama_cpp.speculative import Drafter, decode_rows

if TYPE_CHECKING:
    from lsp_server.backends.llama_cpp.backend import LlamaCppBackend

# How far down the ranking the first token may come from when the caller refuses some openings.
FIRST_TOKEN_CANDIDATES = 16
# ... and a token that covers the healed text (GenerationRequest.heal): the model's favourite
# ways to go on are usually not among the tokens that spell it, but a few dozen down they are.
HEAL_CANDIDATES = 64


class Output:
    """What one generation has written so far, and whether it must stop after a token."""

    def __init__(
        self,
        backend: LlamaCppBackend,
        request: GenerationRequest,
        max_new: int,
        cancel: CancelToken,
        deadline: float | None,
    ) -> None:
        import llama_cpp

        self.backend = backend
        self.request = request
        self.max_new = max_new
        self.cancel = cancel
        self.deadline = deadline
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        forced = list(request.forced)
        # Forced tokens (an alternative continuing a fork) are the answer's start: the stop
        # rule reads them, and they count as produced, not as generated.
        self.text = self.decoder.decode(backend.llm.detokenize(forced)) if forced else ""
        self.heal = request.heal
        self.produced: list[int] = forced
        self.fork: Fork | None = None
        self.logprobs: list[float] = []
        self.reason: StopReason = "max_tokens"
        self.generated = 0
        self._ctx = backend.llm._ctx.ctx
        self._n_vocab = backend.llm.n_vocab()
        self._logits_ith = llama_cpp.llama_get_logits_ith

    @property
    def remaining(self) -> int:
        return self.max_new - self.generated

    @property
    def healing(self) -> bool:
        """The text written so far has not covered the healed text yet."""
        return len(self.text) < len(self.heal)

    @property
    def answer(self) -> str:
        """The text after the healed part: what the caller gets."""
        return self.text[len(self.heal) :] if not self.healing else ""

    def acceptable(self, piece: str) -> bool:
        """Whether the next token may have this text: while healing, it must go on spelling the
        healed text (or finish it); the answer's first text must pass the caller's check."""
        check = self.request.first_text_ok if not self.answer else None
        if self.healing:
            remaining = self.heal[len(self.text) :]
            if piece and remaining.startswith(piece):
                return True
            if not piece.startswith(remaining):
                return False
            piece = piece[len(remaining) :]
            if not piece:
                return True
        return check is None or check(piece)

    def checks(self) -> bool:
        return self.healing or (self.request.first_text_ok is not None and not self.answer)

    def best(self, row: int) -> tuple[int, np.ndarray]:
        """The greedy token after batch row `row` (-1: the last), and that row's logits."""
        logits = np.ctypeslib.as_array(self._logits_ith(self._ctx, row), shape=(self._n_vocab,))
        # Before any text, the caller may refuse some openings (a prefix-only model starting a
        # new line where the line at the cursor wants finishing): the best one it accepts.
        if not self.checks():
            return int(np.argmax(logits)), logits
        if not self.healing:
            return first_token(self.backend, logits, self.acceptable), logits
        # The healed text is the user's: the answer cannot end before it is written.
        token = first_token(self.backend, logits, self.acceptable, HEAL_CANDIDATES, fallback=False, may_stop=False)
        if token is None:
            # None of the likely tokens spells it: the tokenizer's own first token for it does.
            token = self.backend.tokenize_text(self.heal[len(self.text) :])[0]
        return token, logits

    def emit(self, token: int, logits: np.ndarray) -> bool:
        """Add the model's next token; True when the generation ends here."""
        backend = self.backend
        if token in backend.stop_tokens:
            self.reason = "eos"
            return True
        top = float(logits.max())
        log_total = float(np.log(np.exp(logits - top, dtype=np.float64).sum())) + top
        self.logprobs.append(float(logits[token]) - log_total)
        request = self.request
        if self.fork is None and request.fork_width > 0 and request.fork_below is not None:
            if self.logprobs[-1] < request.fork_below:
                check = self.acceptable if self.checks() else None
                self.fork = fork_at(backend, logits, log_total, len(self.produced), token, request.fork_width, check)
        self.generated += 1
        self.produced.append(token)
        self.text += self.decoder.decode(backend.llm.detokenize([token]))
        if self.request.stop is not None and not self.healing:
            cut = self.request.stop(self.answer)
            if cut is not None:
                self.text = self.text[: len(self.heal) + cut]
                self.reason = "stop_rule"
                return True
        if self.generated >= self.max_new:
            self.reason = "max_tokens"
            return True
        if self.cancel.cancelled:
            self.reason = "cancelled"
            return True
        if self.deadline is not None and backend.clock() >= self.deadline:
            self.reason = "time_limit"
            return True
        return False

    def generation(self, usage: Usage) -> Generation:
        self.text += self.decoder.decode(b"", final=True)
        return Generation(
            text=self.answer,
            stop_reason=self.reason,
            usage=usage,
            token_logprobs=self.logprobs,
            tokens=self.produced,
            fork=self.fork,
        )


def ranked(logits: np.ndarray, count: int) -> list[int]:
    """The `count` most likely tokens, best first (a partial sort)."""
    count = min(count, len(logits))
    candidates = np.argpartition(logits, -count)[-count:]
    return sorted((int(t) for t in candidates), key=lambda t: -float(logits[t]))


@overload
def first_token(
    backend: LlamaCppBackend,
    logits: np.ndarray,
    check: Callable[[str], bool],
    count: int = ...,
    *,
    fallback: Literal[True] = ...,
    may_stop: bool = ...,
) -> int: ...
@overload
def first_token(
    backend: LlamaCppBackend,
    logits: np.ndarray,
    check: Callable[[str], bool],
    count: int,
    *,
    fallback: bool,
    may_stop: bool = ...,
) -> int | None: ...
def first_token(
    backend: LlamaCppBackend,
    logits: np.ndarray,
    check: Callable[[str], bool],
    count: int = FIRST_TOKEN_CANDIDATES,
    *,
    fallback: bool = True,
    may_stop: bool = True,
) -> int | None:
    """The most likely token whose text `check` accepts (end-of-text always is, if `may_stop`),
    among the best `count`; if none is, the most likely one (or None without `fallback`)."""
    best = ranked(logits, count)
    for token in best:
        if token in backend.stop_tokens:
            if may_stop:
                return token
            continue
        text = backend.detokenize([token])
        if "\ufffd" not in text and check(text):  # a whole character, and one the caller takes
            return token
    return best[0] if fallback else None


def fork_at(
    backend: LlamaCppBackend,
    logits: np.ndarray,
    log_total: float,
    step: int,
    chosen: int,
    width: int,
    check: Callable[[str], bool] | None,
) -> Fork:
    """The runner-up tokens at an unsure step (this runs only where the model was unsure)."""
    stops = backend.stop_tokens
    candidates = ranked(logits, width + 1 + len(stops) + (8 if check is not None else 0))
    runners = [
        (t, float(logits[t]) - log_total)
        for t in candidates
        if t != chosen and t not in stops and (check is None or check(backend.detokenize([t])))
    ]
    return Fork(step, tuple(runners[:width]))


def decode_greedy(backend: LlamaCppBackend, out: Output) -> None:
    """One token per forward pass: the plain greedy loop."""
    llm = backend.llm
    while True:
        token, logits = out.best(-1)
        if out.emit(token, logits):
            return
        if llm.n_tokens >= backend.n_ctx:
            out.reason = "context_full"
            return
        llm.eval([token])


def decode_speculative(backend: LlamaCppBackend, out: Output, prompt: list[int], usage: Usage) -> None:
    """Greedy decoding that checks drafted tokens in one batched pass and keeps those the model
    would have written itself: the same tokens, fewer passes (see speculative.py)."""
    llm = backend.llm
    token, logits = out.best(-1)
    if out.emit(token, logits):
        return
    drafter = Drafter([*prompt, token], lookup=backend.settings.prompt_lookup, model=backend.draft)
    while True:
        if llm.n_tokens >= backend.n_ctx:
            out.reason = "context_full"
            return
        room = min(backend.exact_rows - 1, backend.n_ctx - llm.n_tokens - 1, out.remaining - 1)
        draft = drafter.propose(room)
        start = llm.n_tokens
        decode_rows(llm, [token, *draft])
        kept = 0
        for row in range(len(draft) + 1):
            token, logits = out.best(row)
            drafter.history.append(token)
            finished = out.emit(token, logits)
            if not finished and row < len(draft) and token == draft[row]:
                kept += 1  # its row is in the batch already: read the token after it
                continue
            # The rest of the draft is not what the model writes (or the answer ends here).
            backend.truncate(start + row + 1)
            break
        drafter.kept(len(draft), kept)
        usage.draft_tokens, usage.accepted_tokens = drafter.drafted, drafter.accepted
        if finished:
            return
