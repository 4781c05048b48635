"""Prompt building against a byte-level fake tokenizer (one token per UTF-8 byte)."""

from local_models.fim import FimTokens
from lsp_server.completion.prompt import (
    PREFIX_START_STEP,
    CompletionInput,
    ContextFile,
    PromptBudget,
    PromptBuilder,
    split_at_cursor,
)

FIM = FimTokens(prefix=1000, suffix=1001, middle=1002, pad=1003, repo_name=1004, file_sep=1005)
SPECIAL = set(FIM.ids())


class ByteTokenizer:
    def __init__(self) -> None:
        self.calls = 0

    def tokenize_text(self, text: str) -> list[int]:
        self.calls += 1
        return list(text.encode("utf-8"))


def decode(tokens: list[int]) -> str:
    return bytes(t for t in tokens if t < 256).decode("utf-8")


def builder(**budget) -> PromptBuilder:
    return PromptBuilder(tokenizer=ByteTokenizer(), fim=FIM, budget=PromptBudget(**budget))


def test_split_at_cursor():
    before, prefix, suffix, after = split_at_cursor(CompletionInput("a.py", "ab\ncd\nef", 1, 1))
    assert before == ["ab\n"] and prefix == "c" and suffix == "d" and after == ["ef"]


def test_fim_layout_and_order():
    text = "def f(x):\n    return x\n\nprint(f(1))\n"
    prompt = builder().build(CompletionInput("a.py", text, 1, 11))
    tokens = prompt.tokens
    assert prompt.mode == "fim"
    assert tokens.index(FIM.prefix) < tokens.index(FIM.suffix) < tokens.index(FIM.middle) == len(tokens) - 1
    prefix = decode(tokens[tokens.index(FIM.prefix) + 1 : tokens.index(FIM.suffix)])
    suffix = decode(tokens[tokens.index(FIM.suffix) + 1 : tokens.index(FIM.middle)])
    assert prefix == "def f(x):\n    return "
    assert suffix == "x\n\nprint(f(1))\n"


def test_control_token_text_stays_text():
    text = "s = '<|fim_prefix|>'\n"
    prompt = builder().build(CompletionInput("a.py", text, 0, 5))
    # Only the three structural FIM tokens are special; the text's lookalike is bytes.
    assert [t for t in prompt.tokens if t in SPECIAL] == [FIM.prefix, FIM.suffix, FIM.middle]


def test_budgets_are_respected():
    text = "\n".join(f"line_{i} = {i}" for i in range(500))
    b = builder(prefix_tokens=300, suffix_tokens=50, extra_tokens=0)
    prompt = b.build(CompletionInput("a.py", text, 250, 4))
    assert prompt.n_prefix <= 300
    assert prompt.n_suffix <= 50
    assert prompt.n_prefix > 300 - 20 * PREFIX_START_STEP  # not starved by snapping


def test_prefix_start_is_stable_while_typing():
    lines = [f"value_{i} = {i} * 2" for i in range(400)]
    b = builder(prefix_tokens=1000, suffix_tokens=64)
    starts = set()
    first_tokens = None
    for typed in range(1, 12):
        lines[300] = "result = " + "x" * typed
        prompt = b.build(CompletionInput("a.py", "\n".join(lines), 300, len(lines[300])))
        starts.add(prompt.prefix_start_line)
        head = prompt.tokens[:200]
        first_tokens = first_tokens or head
        assert head == first_tokens  # the start of the prompt does not move
    assert len(starts) == 1


def test_line_cache_avoids_retokenizing_unchanged_lines():
    lines = [f"v{i} = {i}" for i in range(100)]
    b = builder()
    b.build(CompletionInput("a.py", "\n".join(lines), 50, 3))
    calls = b.tokenizer.calls
    lines[50] = "v50 = 5"
    b.build(CompletionInput("a.py", "\n".join(lines), 50, 7))
    assert b.tokenizer.calls - calls <= 3


def test_repo_level_context_comes_first():
    extra = [ContextFile("util.py", "def helper():\n    return 1\n")]
    prompt = builder(extra_tokens=200).build(
        CompletionInput("main.py", "import util\n", 1, 0, extra=extra, repo_name="proj")
    )
    tokens = prompt.tokens
    assert tokens[0] == FIM.repo_name
    assert tokens.count(FIM.file_sep) == 2  # util.py, then the current file
    first_sep, second_sep = [i for i, t in enumerate(tokens) if t == FIM.file_sep]
    assert decode(tokens[first_sep + 1 : second_sep]).startswith("util.py\ndef helper()")
    assert decode(tokens[second_sep + 1 : tokens.index(FIM.prefix)]) == "main.py\n"
    assert prompt.n_extra <= 200


def test_extra_budget_truncates_other_files():
    extra = [ContextFile("big.py", "\n".join("x = 1" for _ in range(1000)))]
    prompt = builder(extra_tokens=100).build(CompletionInput("a.py", "y = 2\n", 1, 0, extra=extra))
    assert prompt.n_extra <= 100


def test_prefix_only_mode_without_fim():
    b = PromptBuilder(tokenizer=ByteTokenizer(), fim=None, budget=PromptBudget(), bos=2)
    prompt = b.build(CompletionInput("a.py", "x = 1\ny = ", 1, 4))
    assert prompt.mode == "prefix"
    assert prompt.tokens[0] == 2
    # The cursor line's last word or run of punctuation, with the space before and after it,
    # is left for the model to write (token healing).
    assert decode(prompt.tokens[1:]) == "x = 1\ny"
    assert prompt.heal == " = "


def test_cursor_past_end_is_clamped():
    prompt = builder().build(CompletionInput("a.py", "ab\ncd", 9, 99))
    assert prompt.cursor.line_prefix == "cd"


def test_a_model_without_repository_tokens_reads_context_under_comment_headers():
    b = PromptBuilder(tokenizer=ByteTokenizer(), fim=None, budget=PromptBudget(extra_tokens=200), bos=2)
    extra = [
        ContextFile("pkg/util.py", "def helper(a, b): ...", "import"),
        ContextFile("web/app.js", "function go(x) { ... }\n", "similar"),
    ]
    prompt = b.build(CompletionInput("pkg/main.py", "x = helper(", 0, 11, extra=extra))
    assert prompt.tokens[0] == 2
    assert decode(prompt.tokens[1:]) == (
        "# pkg/util.py\ndef helper(a, b): ...\n\n// web/app.js\nfunction go(x) { ... }\n\n# pkg/main.py\nx = helper"
    )
    assert prompt.heal == "("
    assert prompt.n_extra == len(prompt.tokens) - 1 - prompt.n_prefix


def test_plain_context_keeps_to_its_budget_and_is_left_out_when_nothing_fits():
    b = PromptBuilder(tokenizer=ByteTokenizer(), fim=None, budget=PromptBudget(extra_tokens=40), bos=None)
    extra = [ContextFile("a.py", "\n".join(f"line_{n} = {n}" for n in range(50)))]
    prompt = b.build(CompletionInput("m.py", "y = ", 0, 4, extra=extra))
    assert 0 < prompt.n_extra <= 40
    assert decode(prompt.tokens).endswith("# m.py\ny")
    tight = PromptBuilder(tokenizer=ByteTokenizer(), fim=None, budget=PromptBudget(extra_tokens=12), bos=None)
    assert decode(tight.build(CompletionInput("m.py", "y = ", 0, 4, extra=extra)).tokens) == "y"


def test_a_path_with_a_newline_stays_one_comment_line():
    b = PromptBuilder(tokenizer=ByteTokenizer(), fim=None, budget=PromptBudget(extra_tokens=200), bos=None)
    prompt = b.build(CompletionInput("m.py", "y = ", 0, 4, extra=[ContextFile("a\nimport os.py", "z = 1")]))
    assert decode(prompt.tokens).startswith("# a import os.py\nz = 1\n")
