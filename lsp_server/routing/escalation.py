"""What "a good enough answer" means, so a failed one can escalate.

Completions: the mean token log-probability against the policy's threshold.
Chat tasks: verifiers named in the policy (`syntax`, `non_empty`, `length`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Literal

from lsp_server.routing.policy import Verifier

Kind = Literal["code", "prose"]

_PAIRS = {")": "(", "]": "[", "}": "{"}
_STRING = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"|`[^`]*`", re.S)
_COMMENT = re.compile(r"#[^\n]*|//[^\n]*")


def brackets_balanced(code: str) -> bool:
    """Cheap syntax check for languages we cannot parse: brackets close in order."""
    stripped = _COMMENT.sub("", _STRING.sub('""', code))
    stack: list[str] = []
    for ch in stripped:
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS:
            if not stack or stack[-1] != _PAIRS[ch]:
                return False
            stack.pop()
    return not stack


def parses(code: str, language: str | None) -> bool:
    if (language or "").lower() in ("python", "py"):
        try:
            ast.parse(code)
            return True
        except SyntaxError:
            # A selection from inside a block is indented; parse it as a block body.
            try:
                ast.parse("if True:\n" + "\n".join("    " + line for line in code.split("\n")))
                return True
            except SyntaxError:
                return False
    return brackets_balanced(code)


def verify(
    text: str | None,
    checks: Sequence[Verifier],
    *,
    kind: Kind,
    language: str | None = None,
    original_length: int | None = None,
) -> list[str]:
    """The names of the checks that failed (empty: the answer is good enough)."""
    failed: list[str] = []
    body = text or ""
    for check in checks:
        if check == "non_empty" and not body.strip():
            failed.append("non_empty")
        elif check == "syntax" and kind == "code" and body.strip() and not parses(body, language):
            failed.append("syntax")
        elif check == "length" and not _length_ok(body, kind, original_length):
            failed.append("length")
    return failed


def _length_ok(text: str, kind: Kind, original_length: int | None) -> bool:
    if kind == "prose":
        return 20 <= len(text.strip()) <= 20_000
    if original_length:
        return original_length / 5 <= len(text) <= original_length * 5 + 200
    return len(text) <= 100_000


def completion_confident(
    mean_logprob: float | None,
    threshold: float,
    *,
    token_logprobs: Sequence[float] = (),
    min_token_threshold: float | None = None,
) -> bool:
    """No tokens (nothing generated) counts as not confident; so does one token below
    `min_token_threshold` when that is set."""
    if mean_logprob is None or mean_logprob < threshold:
        return False
    return min_token_threshold is None or not token_logprobs or min(token_logprobs) >= min_token_threshold
