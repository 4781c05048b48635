"""Property tests (hypothesis) for inline completion: prompt budgets and the cursor split,
stop rules, post-processing and the typed-through cache.

Runs derandomized so CI is stable; NINETYTEN_FUZZ=deep explores new random inputs with
ten times the examples (for a local bug hunt, not for CI).
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from local_models.fim import FimTokens
from lsp_server.completion.cache import CompletionCache, CursorText
from lsp_server.completion.prompt import (
    PREFIX_START_STEP,
    CompletionInput,
    ContextFile,
    PromptBudget,
    PromptBuilder,
    split_at_cursor,
)
from lsp_server.completion.rules import (
    CursorContext,
    StopRule,
    indent_width,
    postprocess,
)
from tests.fuzzing import fuzz

# --------------------------------------------------------------------------- fake tokenizers

# Control ids above every code point, so a text token can never be mistaken for one.
BASE = 0x110000
FIM = FimTokens(prefix=BASE, suffix=BASE + 1, middle=BASE + 2, pad=BASE + 3, repo_name=BASE + 4, file_sep=BASE + 5)
FIM_NO_REPO = FimTokens(prefix=BASE, suffix=BASE + 1, middle=BASE + 2)
SPECIAL = FIM.ids()


class CharTokenizer:
    """One token per code point: budgets are then character counts, easy to reason about."""

    def tokenize_text(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def decode(self, tokens: list[int]) -> str:
        return "".join(chr(t) for t in tokens)


class WordTokenizer:
    """One token per word, per whitespace run and per other character: several characters per
    token, like a real BPE, and still exactly decodable (the vocabulary is kept)."""

    PIECE = re.compile(r"\w+|\s+|.", re.DOTALL)

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []

    def tokenize_text(self, text: str) -> list[int]:
        out = []
        for piece in self.PIECE.findall(text):
            if piece not in self.vocab:
                self.vocab[piece] = len(self.words)
                self.words.append(piece)
            out.append(self.vocab[piece])
        return out

    def decode(self, tokens: list[int]) -> str:
        return "".join(self.words[t] for t in tokens)


# --------------------------------------------------------------------------- documents

# Code-like characters plus astral ones, tabs, NUL and a lone CR inside a line.
line_text = st.text(
    alphabet=st.sampled_from("abc xyz_ \t()[]{}:=,.\"'#\\é日😀\x00\r") | st.characters(codec="utf-8"),
    max_size=40,
).map(lambda s: s.replace("\n", ""))
plain_line = line_text.map(lambda s: s.replace("\r", ""))


@st.composite
def documents(draw: st.DrawFn, line: st.SearchStrategy[str] = plain_line) -> str:
    """A document as the server passes it on: lines joined by '\\n' (no CR: LSP line ends are
    normalized before a CompletionInput is built)."""
    lines = draw(st.lists(line, min_size=1, max_size=60))
    return "\n".join(lines)


@st.composite
def cursors(draw: st.DrawFn, text: str) -> tuple[int, int]:
    lines = text.split("\n")
    line = draw(st.integers(-2, len(lines) + 2))
    longest = max(len(x) for x in lines)
    return line, draw(st.integers(-2, longest + 3))


def reassemble(before: list[str], line_prefix: str, line_suffix: str, after: list[str]) -> str:
    """The document back from split_at_cursor's parts (the cursor line has no '\\n' of its own)."""
    return "".join(before) + line_prefix + line_suffix + ("\n" + "".join(after) if after else "")


# --------------------------------------------------------------------------- the cursor split


@fuzz(300)
@given(data=st.data())
def test_split_at_cursor_is_lossless_and_agrees_with_the_cache(data) -> None:
    text = data.draw(documents())
    line, character = data.draw(cursors(text))
    before, line_prefix, line_suffix, after = split_at_cursor(CompletionInput("a.py", text, line, character))
    assert reassemble(before, line_prefix, line_suffix, after) == text
    assert all(x.endswith("\n") and "\n" not in x[:-1] for x in before)
    assert "\n" not in line_prefix + line_suffix
    # The cursor lands on the clamped (line, character), wherever the client put it.
    lines = text.split("\n")
    row = min(max(line, 0), len(lines) - 1)
    assert len(before) == row
    assert line_prefix == lines[row][: min(max(character, 0), len(lines[row]))]
    # The typed-through cache must split the document at exactly the same place.
    at = CursorText.of("file:///a.py", text, line, character)
    assert at.before == "".join(before) + line_prefix
    assert at.before + at.after == text


@fuzz(150)
@given(
    lines=st.lists(plain_line, min_size=1, max_size=30),
    ends=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=29, max_size=29),
    data=st.data(),
)
def test_split_at_cursor_drops_only_the_cr_of_crlf(lines: list[str], ends: list[str], data) -> None:
    """CLI and eval callers may pass CRLF text; the split normalizes it to LF and loses nothing else."""
    text = lines[0] + "".join(end + line for end, line in zip(ends, lines[1:], strict=False))
    line, character = data.draw(cursors(text.replace("\r\n", "\n")))
    parts = split_at_cursor(CompletionInput("a.py", text, line, character))
    assert reassemble(*parts) == text.replace("\r\n", "\n")


# --------------------------------------------------------------------------- prompt budgets


@st.composite
def builders(draw: st.DrawFn) -> tuple[PromptBuilder, CharTokenizer | WordTokenizer]:
    tokenizer: CharTokenizer | WordTokenizer = CharTokenizer() if draw(st.booleans()) else WordTokenizer()
    # Tiny budgets too: that is where a header or a single line no longer fits.
    budget = PromptBudget(
        prefix_tokens=draw(st.integers(0, 300) | st.integers(0, 8)),
        suffix_tokens=draw(st.integers(0, 120) | st.integers(0, 8)),
        extra_tokens=draw(st.integers(0, 200) | st.integers(0, 12)),
    )
    fim = draw(st.sampled_from([FIM, FIM_NO_REPO, None]))
    bos = draw(st.sampled_from([None, BASE + 9]))
    return PromptBuilder(tokenizer=tokenizer, fim=fim, budget=budget, bos=bos), tokenizer


extras = st.lists(
    st.builds(ContextFile, path=st.text(max_size=30).map(lambda s: s.replace("\n", "")), text=documents()), max_size=4
)


@fuzz(250)
@given(made=builders(), data=st.data())
def test_prompt_never_exceeds_its_token_budget(made, data) -> None:
    builder, tokenizer = made
    text = data.draw(documents())
    line, character = data.draw(cursors(text))
    path = data.draw(st.text(max_size=20).map(lambda s: s.replace("\n", "")))
    inp = CompletionInput(
        path,
        text,
        line,
        character,
        extra=data.draw(extras),
        repo_name=data.draw(st.text(max_size=80).map(lambda s: s.replace("\n", ""))),
    )
    prompt = builder.build(inp)
    budget = builder.budget

    assert prompt.n_prefix <= budget.prefix_tokens
    assert prompt.n_suffix <= budget.suffix_tokens
    assert prompt.n_extra <= budget.extra_tokens
    tokens = prompt.tokens
    before, line_prefix, line_suffix, after = split_at_cursor(inp)
    doc_before = "".join(before) + line_prefix
    doc_after = line_suffix + ("\n" + "".join(after) if after else "")

    if builder.fim is None:
        head = [builder.bos] if builder.bos is not None else []
        assert tokens[: len(head)] == head
        # Context from other files (under comment headers) comes first, then the prefix.
        body = tokens[len(head) + prompt.n_extra :]
        assert len(body) == prompt.n_prefix
        # The cursor line's end is the model's to write (token healing), never lost.
        assert line_prefix.endswith(prompt.heal)
        prefix_text = tokenizer.decode(body) + prompt.heal
    else:
        assert prompt.heal == ""
        fim = builder.fim
        # Only the structural tokens are special, each where the layout puts it.
        assert tokens[-1] == fim.middle and tokens.count(fim.prefix) == 1 and tokens.count(fim.suffix) == 1
        p, s = tokens.index(fim.prefix), tokens.index(fim.suffix)
        assert p < s and s - p - 1 == prompt.n_prefix and len(tokens) - s - 2 == prompt.n_suffix
        # Whatever comes before the prefix is extra context (and the current file's name).
        path_header = 1 + len(tokenizer.tokenize_text(path + "\n")) if prompt.n_extra else 0
        assert p == prompt.n_extra + path_header
        assert len(tokens) <= budget.prefix_tokens + budget.suffix_tokens + budget.extra_tokens + 3 + path_header
        prefix_text = tokenizer.decode(tokens[p + 1 : s])
        suffix_text = tokenizer.decode(tokens[s + 1 : -1])
        assert doc_after.startswith(suffix_text), "the suffix is the text right after the cursor"
        # Not starved either: a suffix that fits is sent whole (counted per line, as built).
        pieces = [line_suffix + "\n" if after else line_suffix, *after]
        if sum(len(tokenizer.tokenize_text(x)) for x in pieces) <= budget.suffix_tokens:
            assert suffix_text == doc_after

    # The prefix is the text right before the cursor, from a line start unless the cursor
    # line alone is over budget (then it is that line's end).
    assert doc_before.endswith(prefix_text)
    start = len(doc_before) - len(prefix_text)
    assert start == 0 or doc_before[start - 1] == "\n" or len(prefix_text) <= len(line_prefix)
    # The start moves in steps (KV-cache reuse while typing), and only when the budget forces it.
    assert prompt.prefix_start_line == len(before) or prompt.prefix_start_line % PREFIX_START_STEP == 0
    if sum(len(tokenizer.tokenize_text(x)) for x in [*before, line_prefix]) <= budget.prefix_tokens:
        assert prefix_text == doc_before and prompt.prefix_start_line == 0
    assert prompt.cursor.line_prefix == line_prefix and prompt.cursor.line_suffix == line_suffix


@fuzz(100)
@given(prefix=st.text(alphabet="ab (", min_size=1, max_size=200), budget=st.integers(0, 50))
def test_a_long_cursor_line_keeps_the_text_nearest_the_cursor(prefix: str, budget: int) -> None:
    builder = PromptBuilder(tokenizer=CharTokenizer(), fim=FIM, budget=PromptBudget(prefix_tokens=budget))
    prompt = builder.build(CompletionInput("a.py", "x = 1\n" + prefix, 1, len(prefix)))
    kept = CharTokenizer().decode(prompt.tokens[1 : prompt.tokens.index(FIM.suffix)])
    if len(prefix) >= budget:
        assert kept == prefix[len(prefix) - budget :]
    else:
        assert kept.endswith(prefix) and len(kept) <= budget


# --------------------------------------------------------------------------- post-processing

# Pieces rather than characters: indents and CRLF come whole, as a model writes them.
code_text = st.lists(
    st.sampled_from(list("ab_ x1:=,.") + list("()[]{}\"'\\") + ["\t", "\n", "\r\n", "    "]), max_size=40
).map("".join)
code_line = st.lists(st.sampled_from(list("ab_ x1:=,.()[]{}\"'") + ["\t", "    "]), max_size=14).map("".join)
blank = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def contexts(draw: st.DrawFn, mid_line: bool | None = None) -> CursorContext:
    if mid_line is None:
        mid_line = draw(st.booleans())
    suffix = draw(code_line.filter(lambda s: s.strip() != "")) if mid_line else draw(blank)
    return CursorContext(
        line_prefix=draw(code_line),
        line_suffix=suffix,
        next_lines=tuple(draw(st.lists(code_line | blank, max_size=8))),
        prev_line=draw(code_line),
    )


def check_output(out: str | None, raw: str, cursor: CursorContext) -> None:
    """What every post-processed completion satisfies, whatever the model produced."""
    if out is None:
        return
    assert out.strip(), "whitespace-only text is None, never an empty suggestion"
    assert out == out.rstrip(), "no trailing whitespace (the editor would show a stray line)"
    # Post-processing only cuts: what is shown is a prefix of the model's text, CRLF read as LF.
    assert raw.replace("\r\n", "\n").startswith(out)
    if cursor.mid_line:
        assert "\n" not in out, "text right of the cursor: only the rest of this line"


@fuzz(400)
@given(raw=code_text, cursor=contexts(), truncated=st.booleans())
def test_postprocess_only_cuts_and_never_returns_blank_text(raw: str, cursor: CursorContext, truncated: bool) -> None:
    check_output(postprocess(raw, cursor, truncated=truncated), raw, cursor)


@fuzz(400)
@given(body=code_line, cursor=contexts(mid_line=True), leading=st.booleans(), truncated=st.booleans())
@example(body="f(", cursor=CursorContext("x = ", " ) )"), leading=False, truncated=False)
def test_postprocess_never_repeats_the_text_right_of_the_cursor(
    body: str, cursor: CursorContext, leading: bool, truncated: bool
) -> None:
    """A model that writes the middle and then echoes what already follows the cursor: the echo
    goes, all of it (the editor shows the suggestion *before* that text, so a kept piece is
    shown twice)."""
    echo = cursor.line_suffix.rstrip() if leading else cursor.line_suffix.strip()
    raw = body + echo
    out = postprocess(raw, cursor, truncated=truncated)
    check_output(out, raw, cursor)
    assert out is None or len(out) <= len(body), (out, body, echo)


@fuzz(400)
@given(
    body=st.lists(code_line, min_size=1, max_size=6).map("\n".join),
    cursor=contexts(mid_line=False),
    k=st.integers(1, 8),
    truncated=st.booleans(),
    verbatim=st.booleans(),
)
@example(body="x = 1", cursor=CursorContext("", "", ("end", "", "end")), k=3, truncated=False, verbatim=True)
def test_postprocess_never_repeats_the_lines_after_the_cursor(
    body: str, cursor: CursorContext, k: int, truncated: bool, verbatim: bool
) -> None:
    """The model writes its lines and then goes on with the document's next lines: those go.
    Echoed verbatim (blank lines and trailing spaces included) or tidied."""
    following = [line.rstrip() for line in cursor.next_lines if line.strip()]
    echo = list(cursor.next_lines[:k]) if verbatim else following[:k]
    raw = body + "\n" + "\n".join(echo) if echo else body
    out = postprocess(raw, cursor, truncated=truncated)
    check_output(out, raw, cursor)
    assert out is None or len(out) <= len(body), (out, body, echo)


def feed(rule: StopRule, text: str, steps: list[int]) -> str:
    """Grow the text in token-sized steps, as a backend does, and apply the first cut."""
    end = 0
    for step in [*steps, len(text)]:
        end = min(len(text), end + max(step, 1))
        cut = rule(text[:end])
        if cut is not None:
            assert 0 <= cut <= end
            return text[:cut]
        if end == len(text):
            break
    return text


@fuzz(400)
@given(raw=code_text, cursor=contexts(), max_lines=st.integers(1, 6), steps=st.lists(st.integers(1, 8), max_size=40))
def test_stop_rule_and_postprocess_respect_max_lines_and_indentation(
    raw: str, cursor: CursorContext, max_lines: int, steps: list[int]
) -> None:
    raw = raw.replace("\r\n", "\n")
    cut = feed(StopRule(cursor, max_lines=max_lines), raw, steps)
    assert raw.startswith(cut)
    if cursor.mid_line:
        assert "\n" not in cut
    else:
        for line in cut.split("\n")[1:]:
            assert not line.strip() or indent_width(line) >= cursor.indent, "a dedent ends the block"
    out = postprocess(cut, cursor)
    check_output(out, cut, cursor)
    assert out is None or out.count("\n") + 1 <= max_lines


# --------------------------------------------------------------------------- the typed-through cache

small = st.text(alphabet="ab \n(", max_size=6)


@st.composite
def cache_ops(draw: st.DrawFn) -> list[tuple]:
    ops: list[tuple] = []
    for _ in range(draw(st.integers(1, 40))):
        uri = draw(st.sampled_from(["u1", "u2"]))
        kind = draw(st.sampled_from(["put", "put", "get", "typed", "typed", "clear"]))
        if kind == "clear":
            ops.append(("clear", draw(st.sampled_from([None, uri]))))
        elif kind == "typed":
            # Type into an earlier suggestion (the usual hit), by index into what was put.
            ops.append(("typed", draw(st.integers(0, 40)), draw(st.integers(0, 6))))
        else:
            ops.append((kind, CursorText(uri, draw(small), draw(small)), draw(small)))
    return ops


@fuzz(300)
@given(ops=cache_ops(), size=st.integers(1, 5))
def test_cache_hits_are_always_the_rest_of_a_stored_suggestion(ops: list[tuple], size: int) -> None:
    cache = CompletionCache(size=size)
    stored: list[tuple[CursorText, str]] = []  # everything put and not cleared (a superset of what is kept)
    for op in ops:
        if op[0] == "clear":
            cache.clear(op[1])
            stored = [s for s in stored if op[1] is not None and s[0].uri != op[1]]
            continue
        if op[0] == "put":
            _, at, text = op
            cache.put(at, text)
            stored.append((at, text))
            if text.strip():
                hit = cache.get(at)
                assert hit is not None and (hit.text, hit.typed) == (text, 0), "what was just stored is found"
        else:
            if op[0] == "typed":
                if not stored:
                    continue
                old, text = stored[op[1] % len(stored)]
                at = CursorText(old.uri, old.before + text[: op[2]], old.after)
            else:
                at = op[1]
            hit = cache.get(at)
            if hit is not None:
                assert hit.text.strip()
                assert any(
                    old.uri == at.uri
                    and old.after == at.after
                    and at.before == old.before + t[: hit.typed]
                    and t[hit.typed :] == hit.text
                    for old, t in stored
                )
        assert len(cache) <= size
        # Memory is bounded by `size`: the per-document index holds no keys for evicted or
        # replaced entries (there is no public way to see it, hence the private attribute).
        assert sum(len(keys) for keys in cache._by_uri.values()) == len(cache)


@fuzz(200)
@given(
    before=small,
    after=small,
    text=st.text(alphabet="ab \n(", min_size=1, max_size=12),
    typed=st.integers(0, 12),
    other_after=small,
)
def test_cache_hits_when_typing_through_and_misses_when_the_suffix_changed(
    before: str, after: str, text: str, typed: int, other_after: str
) -> None:
    cache = CompletionCache()
    cache.put(CursorText("u", before, after), text)
    typed_text = text[:typed]
    hit = cache.get(CursorText("u", before + typed_text, after))
    if typed < len(text) and text[typed:].strip():
        assert hit is not None and hit.text == text[typed:] and hit.typed == typed
    else:
        assert hit is None
    if other_after != after:
        assert cache.get(CursorText("u", before + typed_text, other_after)) is None
