"""Stop rules and post-processing for inline completions.

Pure functions over strings: the backend calls the stop rule after every generated
token (in the engine process, rebuilt there from its fields), and the task runs
post-processing once on the final text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lsp_server.backends.portable import portable

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
TAB_WIDTH = 4


def indent_width(line: str) -> int:
    """Width of a line's leading whitespace, tabs counted as TAB_WIDTH."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += TAB_WIDTH
        else:
            break
    return width


@portable
@dataclass(frozen=True)
class CursorContext:
    """What the stop rules and post-processing need to know about the cursor."""

    line_prefix: str  # text of the cursor line before the cursor
    line_suffix: str  # text of the cursor line after the cursor (no newline)
    next_lines: tuple[str, ...] = ()  # a few lines after the cursor line, no newlines
    prev_line: str = ""  # the nearest non-blank line above the cursor line

    @property
    def mid_line(self) -> bool:
        """Text to the right of the cursor means only the rest of this line is wanted."""
        return self.line_suffix.strip() != ""

    @property
    def indent(self) -> int:
        """Indentation a continuation line may not go below."""
        return indent_width(self.line_prefix)

    @property
    def unfinished(self) -> bool:
        """The statement begun on the cursor line is not finished (`x = foo(`, `return `,
        `a + `): a completion finishes it and stops, whatever the model would write after."""
        if not self.line_prefix.strip():
            return False
        if open_brackets(self.line_prefix) > 0:
            return True
        end = self.line_prefix.rstrip()
        if end != self.line_prefix:  # a space typed after something: more is coming
            return True
        if end.endswith(CONTINUERS):
            return True
        word = _LAST_WORD.search(end)
        return word is not None and word.group(0) in CONTINUING_KEYWORDS


# A line ending in one of these goes on (an operator, an open bracket, a comma, a dot).
CONTINUERS = (
    "=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "&",
    "|",
    "^",
    "<",
    ">",
    "!",
    "~",
    ",",
    ".",
    "(",
    "[",
    "{",
    "\\",
    "@",
    "?",
    "&&",
    "||",
)
CONTINUING_KEYWORDS = frozenset(
    {
        "return",
        "yield",
        "await",
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "elif",
        "while",
        "for",
        "import",
        "from",
        "as",
        "lambda",
        "with",
        "assert",
        "raise",
        "del",
        "def",
        "class",
        "async",
        "new",
        "throw",
        "case",
        "typeof",
        "let",
        "const",
        "var",
        "func",
        "fn",
        "go",
        "defer",
        "instanceof",
    }
)
_LAST_WORD = re.compile(r"[A-Za-z_]+$")


def first_text_check(cursor: CursorContext) -> Callable[[str], bool] | None:
    """What the first generated token may be: not a line break where the line at the cursor
    wants something written on it (an empty or indented empty line, an unfinished statement).
    Small models like to open with a line break there, and a suggestion that starts on the
    next line is not what the cursor asked for. None (anything goes) after a finished line."""
    if cursor.line_prefix.strip() and not cursor.unfinished:
        return None
    if cursor.line_prefix.rstrip().endswith("{"):
        return None  # a block or a literal: its body may well start on the next line
    # Right after `(` or `[` the cursor asks for what goes inside: an empty call is finished
    # by typing `)`. (With token healing the model would otherwise often pick `()`, the
    # commonest token there is for this spot.)
    return NotALineBreak(_CLOSING.get(cursor.line_prefix[-1:], ""))


_CLOSING = {"(": ")", "[": "]"}


@portable
@dataclass(frozen=True)
class NotALineBreak:
    """A first token that does not open with a line break, nor with `closing` (portable: it
    runs in the engine)."""

    closing: str = ""

    def __call__(self, text: str) -> bool:
        text = text.lstrip(" \t")
        return not text.startswith(("\n", "\r")) and not (self.closing and text.startswith(self.closing))


def open_brackets(text: str) -> int:
    """Brackets opened and not closed in `text` (outside string literals, roughly); negative
    when it closes more than it opens."""
    depth = 0
    for ch in _code_chars(text):
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth -= 1
    return depth


# Portable: the rule runs in the engine process, between two tokens (backends/portable.py).
@portable
@dataclass(frozen=True)
class StopRule:
    """Decides, after each token, whether and where to cut the generated text."""

    cursor: CursorContext
    max_lines: int = 8
    single_line: bool = False  # only the cursor line is wanted (see code_follows)

    def __call__(self, text: str) -> int | None:
        """Return the index to cut the text at, or None to keep generating."""
        first_nl = text.find("\n")
        if first_nl < 0:
            return None
        if self.cursor.mid_line:
            return first_nl
        if self.single_line and text[:first_nl].strip():
            return first_nl
        if self.cursor.unfinished:
            # The statement ends at the first line break outside the brackets it opened.
            depth = open_brackets(self.cursor.line_prefix)
            at = 0
            for line in text.split("\n")[:-1]:
                depth += open_brackets(line)
                at += len(line)
                if depth <= 0 and text[:at].strip():
                    return at
                at += 1
        # A completion that starts on an empty cursor line may start with a newline;
        # the lines after the first are checked against the cursor's indentation.
        lines = text.split("\n")
        offset = len(lines[0]) + 1
        for number, line in enumerate(lines[1:], start=1):
            is_last = number == len(lines) - 1
            cut_here = offset - 1  # just before this line's newline
            if line.strip() == "":
                # A finished blank line ends the block; a blank first line after the
                # cursor line (the model putting the code one line down) does not.
                if not is_last and (number > 1 or lines[0].strip() != ""):
                    return cut_here
            else:
                if indent_width(line) < self.cursor.indent:
                    return cut_here
                if number >= self.max_lines:
                    return cut_here
            offset += len(line) + 1
        return None


def code_follows(cursor: CursorContext) -> bool:
    """Code follows the empty cursor line, and the cursor is not in a block just opened.

    A model that cannot see that code (prefix-only prompts) writes into it: it should fill in
    the cursor line and stop. Whether the next line continues the cursor's block or is the
    start of the next one (the cursor on a block's last line), the model's second line is a
    guess at code that is already there. Only a body just opened (`def f():` above, the next
    definition below) is written whole.
    """
    if cursor.line_prefix.strip():
        return False
    following = next((line for line in cursor.next_lines if line.strip()), None)
    if following is None:
        return False
    if indent_width(following) >= cursor.indent:
        return True
    return not cursor.prev_line.rstrip().endswith((":", "{"))


def trim_suffix_overlap(completion: str, line_suffix: str) -> str:
    """Drop the end of a single-line completion that repeats the text after the cursor."""
    if not line_suffix.strip() or "\n" in completion:
        return completion
    stripped = completion.rstrip()
    # The suffix may start with spaces the model did not repeat: "x + )" -> "name)".
    suffixes = tuple(dict.fromkeys((line_suffix.rstrip(), line_suffix.strip())))
    # Whole echoes first: a partial match of the spaced form (" )" in " ) )") would
    # otherwise win over the whole unspaced echo (") )") and leave a bracket shown twice.
    for suffix in suffixes:
        if stripped.endswith(suffix):
            return stripped[: len(stripped) - len(suffix)]
    for suffix in suffixes:
        # Partial overlap: only when the overlapping part is punctuation (closing
        # brackets, quotes, colons), where a false match costs nothing.
        for k in range(min(len(stripped), len(suffix)), 0, -1):
            head = suffix[:k]
            if head.strip() and stripped.endswith(head) and not any(ch.isalnum() or ch == "_" for ch in head):
                return stripped[: len(stripped) - k]
    return completion


def trim_next_lines_overlap(completion: str, next_lines: tuple[str, ...]) -> str:
    """Drop trailing completion lines that the document already has after the cursor."""
    if "\n" not in completion:
        return completion
    following = [line.rstrip() for line in next_lines if line.strip()]
    if not following:
        return completion
    lines = completion.split("\n")
    # Compare non-blank lines only, as `following` has none: an echo of "x", "", "x" must
    # match as a whole, not leave its first "x" behind because its tail "x" matched alone.
    filled = [index for index, line in enumerate(lines) if line.strip()]
    for k in range(min(len(filled), len(following)), 0, -1):
        tail = [lines[index].rstrip() for index in filled[-k:]]
        if tail == following[:k] and filled[-k] > 0 and filled[-1] == len(lines) - 1:
            return "\n".join(lines[: filled[-k]])
    # The document's next line repeated anywhere after the first line: cut there.
    first_following = following[0].strip()
    for index in range(1, len(lines)):
        if lines[index].strip() == first_following:
            return "\n".join(lines[:index])
    return completion


def drop_repeats(completion: str, prev_line: str) -> str:
    """Cut at the first line that repeats the line just before it."""
    lines = completion.split("\n")
    previous = prev_line.strip()
    for index, line in enumerate(lines):
        current = line.strip()
        if index > 0 and current and current == previous:
            return "\n".join(lines[:index])
        if current:
            previous = current
    return completion


def balance_brackets(completion: str, line_prefix: str) -> str:
    """Cut the completion at a closing bracket that nothing opened."""
    stack: list[str] = []
    for ch in _code_chars(line_prefix):
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == CLOSERS[ch]:
            stack.pop()
    in_string: str | None = None
    escaped = False
    for index, ch in enumerate(completion):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == in_string or ch == "\n":
                in_string = None
            continue
        if ch in "\"'`":
            in_string = ch
        elif ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack and stack[-1] == CLOSERS[ch]:
                stack.pop()
            else:
                return completion[:index].rstrip()
    return completion


def _code_chars(text: str) -> str:
    """The characters of one line outside string literals (a cheap approximation)."""
    out: list[str] = []
    in_string: str | None = None
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == in_string:
                in_string = None
            continue
        if ch in "\"'`":
            in_string = ch
            continue
        out.append(ch)
    return "".join(out)


def postprocess(completion: str, cursor: CursorContext, *, truncated: bool = False) -> str | None:
    """Turn raw generated text into what the editor shows, or None when nothing is left.

    `truncated`: generation hit a token or time limit, so its last line is unfinished.
    """
    text = completion.replace("\r\n", "\n")
    if truncated and "\n" in text.strip("\n") and not cursor.mid_line:
        text = text[: text.rstrip("\n").rfind("\n")]
    text = text.rstrip()
    if cursor.mid_line:
        text = text.split("\n", 1)[0]
        text = trim_suffix_overlap(text, cursor.line_suffix)
    else:
        text = trim_next_lines_overlap(text, cursor.next_lines)
    text = drop_repeats(text, cursor.prev_line)
    text = balance_brackets(text, cursor.line_prefix)
    text = text.rstrip()
    if "\n" in text.strip("\n") and text.rstrip().endswith(":"):
        # A block header as the last of several lines has no body: it cannot be accepted as is.
        text = text[: text.rstrip("\n").rfind("\n")].rstrip()
    if not text.strip():
        return None
    return text
