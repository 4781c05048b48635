"""Chat-style tasks on a piece of code: explain, refactor, ask.

Prompts only; which model answers is the router's business. The same messages go to
the local model (through its chat template) and to remote tiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lsp_server.backends.base import ChatMessage

AssistTask = Literal["explain", "refactor", "ask"]

SYSTEM = "You are a careful senior software engineer helping a colleague in their editor. Be concise and concrete."

_FENCE = re.compile(r"^```[\w+-]*\s*\n(.*?)\n?```\s*$", re.S)


@dataclass(frozen=True)
class AssistInput:
    task: AssistTask
    code: str
    path: str | None = None
    language: str | None = None
    instruction: str = ""  # refactor: what to change; ask: the question


def messages_for(inp: AssistInput) -> list[ChatMessage]:
    where = f" from {inp.path}" if inp.path else ""
    lang = inp.language or ""
    block = f"```{lang}\n{inp.code}\n```"
    if inp.task == "explain":
        user = f"Explain this code{where}: what it does, and anything a reviewer should look at carefully.\n\n{block}"
    elif inp.task == "refactor":
        user = (
            f"Rewrite this code{where} according to the instruction. Reply with the rewritten code only, "
            f"in one code block, with the same indentation, and nothing else.\n\n"
            f"Instruction: {inp.instruction}\n\n{block}"
        )
    else:
        user = f"Question about this code{where}: {inp.instruction}\n\n{block}"
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]


def extract_code(answer: str) -> str:
    """The code of a refactor answer: the fenced block if there is one, else the text."""
    text = answer.strip("\n")
    match = _FENCE.search(text.strip())
    if match:
        return match.group(1)
    start = text.find("```")
    if start >= 0:
        rest = text[start:].split("\n", 1)
        if len(rest) == 2:
            body = rest[1]
            end = body.find("```")
            return body[:end].rstrip("\n") if end >= 0 else body.rstrip("\n")
    return text


def postprocess(inp: AssistInput, answer: str) -> str:
    return extract_code(answer) if inp.task == "refactor" else answer.strip()
