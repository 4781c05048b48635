"""FIM prompt building, as token ids.

Prompts are built from token ids, never from a string with control tokens in it:
editor text that happens to contain `<|fim_prefix|>` must stay plain text.

Token order keeps the stable part first so consecutive keystrokes reuse the KV
cache: repo header and other files, then the current file's path and the prefix
lines (whose start only moves in coarse steps), then the cursor line, the suffix
and the middle token.

Context from other files takes the form the model knows. A FIM model with repository
tokens (Qwen2.5-Coder) gets its repository-level format: `<|repo_name|>name`, then each
file as `<|file_sep|>path` and its text, then `<|file_sep|>` and the current file's path
before `<|fim_prefix|>`. A model without them (the embedded Gemma, any base model) reads
the same snippets as plain text in front of the document: each under a comment line with
its path, in the document's own comment syntax, then a comment line with the current
file's path — files concatenated the way such models saw code in training.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

from local_models.fim import FimTokens
from lsp_server.completion.rules import CursorContext

# The first prefix line moves in steps of this many lines, so that typing does not
# shift the start of the prompt (and invalidate the whole KV cache) on every key.
PREFIX_START_STEP = 16
NEXT_LINES_FOR_POSTPROCESS = 8


class Tokenizer(Protocol):
    def tokenize_text(self, text: str) -> list[int]:
        """Tokens of plain text: no BOS, control-token syntax read as text."""
        ...


@dataclass(frozen=True)
class PromptBudget:
    prefix_tokens: int = 1024
    suffix_tokens: int = 128
    extra_tokens: int = 512


@dataclass(frozen=True)
class ContextFile:
    """A snippet of another file offered as repository-level context."""

    path: str
    text: str
    # Where it came from: "file" (a whole or partial document), "edit", "import", "class",
    # "base", "usage", "similar", "call", "forwarded" (see lsp_server/context/prompt_context.py).
    kind: str = "file"


_HASH_COMMENT = frozenset(
    {
        ".py",
        ".pyi",
        ".rb",
        ".sh",
        ".bash",
        ".zsh",
        ".pl",
        ".r",
        ".toml",
        ".yaml",
        ".yml",
        ".cfg",
        ".ini",
        ".mk",
        ".cmake",
        ".jl",
        ".ex",
        ".exs",
        ".nim",
        ".tf",
    }
)
_DASH_COMMENT = frozenset({".lua", ".sql", ".hs", ".elm", ".ada", ".vhd"})


def comment_line(path: str, text: str) -> str:
    """`text` as a one-line comment in the syntax of `path`'s language (by extension)."""
    text = text.replace("\r", " ").replace("\n", " ")
    dot = path.rfind(".")
    ext = path[dot:].lower() if dot >= 0 and "/" not in path[dot:] else ""
    if ext in _HASH_COMMENT or path.rsplit("/", 1)[-1] in ("Makefile", "Dockerfile"):
        return f"# {text}\n"
    if ext in _DASH_COMMENT:
        return f"-- {text}\n"
    return f"// {text}\n"


@dataclass(frozen=True)
class CompletionInput:
    """A document and a cursor, in code points (already converted from LSP units)."""

    path: str
    text: str
    line: int
    character: int
    extra: Sequence[ContextFile] = ()
    repo_name: str = ""


@dataclass
class BuiltPrompt:
    tokens: list[int]
    mode: Literal["fim", "prefix"]
    cursor: CursorContext
    n_prefix: int
    n_suffix: int
    n_extra: int
    prefix_start_line: int = 0
    heal: str = ""  # the cursor line's end, left out of `tokens` (see healed_tail)


# The longest word or run of punctuation at the cursor that is healed (a longer one is kept).
MAX_HEALED_RUN = 24


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def healed_tail(line_prefix: str) -> str:
    """The end of the cursor line that a prefix-only prompt leaves out, for the model to write
    (token healing): the trailing spaces, the word or run of punctuation before them, and one
    space before that.

    Text cut at the cursor ends where no training text ever stopped a token: `foo(` is
    tokenized as `foo` `(`, but the code the model learnt from had `(__`, `("`, `()` as single
    tokens far more often; an indented empty line ends in the whole indentation, where the
    model saw it one space short with the next word carrying the last space. A prompt that
    ends there makes the model continue from a tokenization it rarely saw, and it answers
    worse. Leaving the tail out and requiring the answer to start with it lets the model pick
    the tokens it knows (GenerationRequest.heal)."""
    end = len(line_prefix)
    i = end
    while i > 0 and line_prefix[i - 1] in " \t":
        i -= 1
    if i < end and (i == 0 or line_prefix[i - 1] in " \t"):
        return line_prefix[i:]
    j = i
    word = i > 0 and _is_word(line_prefix[i - 1])
    while j > 0 and line_prefix[j - 1] not in " \t" and _is_word(line_prefix[j - 1]) == word:
        j -= 1
    if i - j > MAX_HEALED_RUN:
        return line_prefix[i:]
    if j > 0 and line_prefix[j - 1] == " ":
        j -= 1
    return line_prefix[j:]


class LineTokenCache:
    """Memoizes line -> tokens; most lines of a file do not change between keystrokes."""

    def __init__(self, tokenizer: Tokenizer, capacity: int = 2048) -> None:
        self._tokenizer = tokenizer
        self._capacity = capacity
        self._cache: OrderedDict[str, list[int]] = OrderedDict()

    def __call__(self, text: str) -> list[int]:
        if not text:
            return []
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        tokens = self._tokenizer.tokenize_text(text)
        self._store(text, tokens)
        return tokens

    def _store(self, text: str, tokens: list[int]) -> None:
        self._cache[text] = tokens
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def prefetch(self, texts: Sequence[str]) -> None:
        """Tokenize the lines not cached yet in one call, when the tokenizer takes batches
        (the engine process: one round trip instead of one per line)."""
        many = getattr(self._tokenizer, "tokenize_many", None)
        if many is None:
            return
        missing = [text for text in dict.fromkeys(texts) if text and text not in self._cache]
        if missing:
            for text, tokens in zip(missing, many(missing)):
                self._store(text, tokens)


def split_at_cursor(inp: CompletionInput) -> tuple[list[str], str, str, list[str]]:
    """(lines before, cursor-line prefix, cursor-line suffix, lines after); lines keep '\\n'."""
    lines = inp.text.split("\n")
    line_index = min(max(inp.line, 0), len(lines) - 1)
    current = lines[line_index].rstrip("\r")
    character = min(max(inp.character, 0), len(current))
    before = [line.rstrip("\r") + "\n" for line in lines[:line_index]]
    after = [line.rstrip("\r") + "\n" for line in lines[line_index + 1 :]]
    if after:
        after[-1] = after[-1][:-1]  # the document's last line has no newline
    return before, current[:character], current[character:], after


def cursor_context(before: list[str], line_prefix: str, line_suffix: str, after: list[str]) -> CursorContext:
    prev_line = next((line.rstrip("\n") for line in reversed(before) if line.strip()), "")
    next_lines = tuple(line.rstrip("\n") for line in after[:NEXT_LINES_FOR_POSTPROCESS])
    return CursorContext(line_prefix=line_prefix, line_suffix=line_suffix, next_lines=next_lines, prev_line=prev_line)


@dataclass
class PromptBuilder:
    tokenizer: Tokenizer
    fim: FimTokens | None
    budget: PromptBudget = field(default_factory=PromptBudget)
    bos: int | None = None

    def __post_init__(self) -> None:
        self._lines = LineTokenCache(self.tokenizer)

    def build(self, inp: CompletionInput) -> BuiltPrompt:
        before, line_prefix, line_suffix, after = split_at_cursor(inp)
        cursor = cursor_context(before, line_prefix, line_suffix, after)
        heal = healed_tail(line_prefix) if self.fim is None else ""
        kept_prefix = line_prefix[: len(line_prefix) - len(heal)]
        self._lines.prefetch(self._likely_lines(inp, before, kept_prefix, line_suffix, after))
        cursor_tokens = self._lines(kept_prefix)
        # A cursor line longer than the whole prefix budget keeps its end: the text nearest
        # the cursor matters most, and the budget is what fits the context window.
        keep = min(len(cursor_tokens), max(self.budget.prefix_tokens, 0))
        cursor_tokens = cursor_tokens[len(cursor_tokens) - keep :]
        prefix_budget = max(self.budget.prefix_tokens - len(cursor_tokens), 0)
        start, prefix_tokens = self._prefix_lines(before, prefix_budget)
        prefix_tokens = prefix_tokens + cursor_tokens
        if self.fim is None:
            head = [self.bos] if self.bos is not None else []
            extra_tokens = self._extra_plain(inp)
            return BuiltPrompt(
                tokens=head + extra_tokens + prefix_tokens,
                mode="prefix",
                cursor=cursor,
                n_prefix=len(prefix_tokens),
                n_suffix=0,
                n_extra=len(extra_tokens),
                prefix_start_line=start,
                heal=heal,
            )
        suffix_tokens = self._suffix(line_suffix, after)
        extra_tokens = self._extra(inp)
        fim = self.fim
        tokens: list[int] = []
        tokens += extra_tokens
        if fim.file_sep is not None and extra_tokens:
            tokens += [fim.file_sep] + self._lines(inp.path + "\n")
        tokens += [fim.prefix] + prefix_tokens
        tokens += [fim.suffix] + suffix_tokens
        tokens += [fim.middle]
        return BuiltPrompt(
            tokens=tokens,
            mode="fim",
            cursor=cursor,
            n_prefix=len(prefix_tokens),
            n_suffix=len(suffix_tokens),
            n_extra=len(extra_tokens),
            prefix_start_line=start,
        )

    def _likely_lines(
        self, inp: CompletionInput, before: list[str], line_prefix: str, line_suffix: str, after: list[str]
    ) -> list[str]:
        """The texts this prompt will probably tokenize: enough lines on each side for the
        budgets (generously: at least one character per token), and the other files' lines."""
        wanted = [line_prefix, line_suffix + "\n" if after else line_suffix]
        chars = 0
        for line in reversed(before):
            if chars > self.budget.prefix_tokens * 8:
                break
            wanted.append(line)
            chars += len(line)
        if self.fim is not None:
            chars = 0
            for line in after:
                if chars > self.budget.suffix_tokens * 8:
                    break
                wanted.append(line)
                chars += len(line)
        if inp.extra and self.budget.extra_tokens > 0:
            wanted += self._likely_extra(inp)
        return wanted

    def _likely_extra(self, inp: CompletionInput) -> list[str]:
        """The texts `_extra_plain` or `_extra` may tokenize for the other files (generously:
        at least one token per line), in the form each of them tokenizes."""
        most = self.budget.extra_tokens
        fim = self.fim
        if fim is None:
            wanted = [comment_line(inp.path, inp.path), "\n"]
            for other in inp.extra:
                wanted.append(comment_line(other.path, other.path))
                wanted += [line + "\n" for line in other.text.rstrip("\n").split("\n")[:most]]
            return wanted
        if fim.file_sep is None:
            return []  # this model gets no other files
        wanted = [inp.path + "\n"]
        if fim.repo_name is not None:
            wanted.append((inp.repo_name or "workspace") + "\n")
        for other in inp.extra:
            wanted.append(other.path + "\n")
            wanted += [line + "\n" for line in other.text.split("\n")[:most]]
        return wanted

    def _prefix_lines(self, before: list[str], budget: int) -> tuple[int, list[int]]:
        """Take whole lines upward from the cursor, then snap the start to a step."""
        per_line: list[list[int]] = []
        used = 0
        start = len(before)
        for index in range(len(before) - 1, -1, -1):
            tokens = self._lines(before[index])
            if used + len(tokens) > budget:
                break
            per_line.append(tokens)
            used += len(tokens)
            start = index
        per_line.reverse()
        if start > 0:
            snapped = -(-start // PREFIX_START_STEP) * PREFIX_START_STEP
            snapped = min(snapped, len(before))
            per_line = per_line[snapped - start :]
            start = snapped
        return start, [token for tokens in per_line for token in tokens]

    def _suffix(self, line_suffix: str, after: list[str]) -> list[int]:
        budget = self.budget.suffix_tokens
        first = line_suffix + "\n" if after else line_suffix
        tokens: list[int] = list(self._lines(first))[:budget]
        for line in after:
            if len(tokens) >= budget:
                break
            line_tokens = self._lines(line)
            if len(tokens) + len(line_tokens) > budget:
                break
            tokens += line_tokens
        return tokens

    def _extra_plain(self, inp: CompletionInput) -> list[int]:
        """Context for a model without repository tokens: snippets under comment headers,
        then the current file's header; nothing at all when no snippet fits."""
        budget = self.budget.extra_tokens
        if not inp.extra or budget <= 0:
            return []
        current = self._lines(comment_line(inp.path, inp.path))
        room = budget - len(current)
        tokens: list[int] = []
        for other in inp.extra:
            header = self._lines(comment_line(other.path, other.path))
            if len(tokens) + len(header) >= room:
                break
            body = self._fit_lines(other.text.rstrip("\n").split("\n"), room - len(tokens) - len(header))
            if not body:
                continue
            # A blank line ends each snippet: the next header must not read as part of it.
            blank = self._lines("\n")
            if len(tokens) + len(header) + len(body) + len(blank) <= room:
                body += blank
            tokens += header + body
        return tokens + current if tokens else []

    def _extra(self, inp: CompletionInput) -> list[int]:
        """Repository-level context: other open files, most relevant first, whole lines."""
        fim = self.fim
        if fim is None or fim.file_sep is None or not inp.extra or self.budget.extra_tokens <= 0:
            return []
        tokens: list[int] = []
        budget = self.budget.extra_tokens
        if fim.repo_name is not None:
            tokens += [fim.repo_name] + self._lines((inp.repo_name or "workspace") + "\n")
            if len(tokens) >= budget:  # a long repository name leaves no room for any file
                return []
        for other in inp.extra:
            header = [fim.file_sep] + self._lines(other.path + "\n")
            if len(tokens) + len(header) >= budget:
                break
            tokens += header + self._fit_lines(other.text.split("\n"), budget - len(tokens) - len(header))
        return tokens

    def _fit_lines(self, lines: list[str], room: int) -> list[int]:
        """The tokens of as many whole lines (each with its newline) as fit in `room`, from the
        first: a snippet cut inside a line would read as code that does not exist."""
        tokens: list[int] = []
        for line in lines:
            line_tokens = self._lines(line + "\n")
            if len(tokens) + len(line_tokens) > room:
                break
            tokens += line_tokens
        return tokens
