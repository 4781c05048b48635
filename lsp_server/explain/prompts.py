"""Explaining a diff and writing its commit message: the chat prompts (a base model gets
document_prompts.py; the message is checked and repaired by commit_message.py).

No few-shot example diffs in the prompts: small models copy them into their answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsp_server.backends.base import ChatMessage
from lsp_server.explain.commit_message import COMMIT_TYPES, SUBJECT_MAX

SYSTEM = (
    "You are a careful senior engineer reviewing a colleague's code change. "
    "Be concrete and brief. Never invent changes that are not in the diff."
)


def explain_messages(diff_text: str, *, part: int = 1, parts: int = 1) -> list[ChatMessage]:
    where = f" (part {part} of {parts} of a larger change)" if parts > 1 else ""
    user = (
        f"Explain this change{where}. Answer in three short sections titled "
        f"'What changed', 'Why it probably changed' and 'Review carefully'.\n\n```diff\n{diff_text}\n```"
    )
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]


def merge_messages(parts: Sequence[str]) -> list[ChatMessage]:
    joined = "\n\n".join(f"Part {i}:\n{text.strip()}" for i, text in enumerate(parts, start=1))
    user = (
        "These are explanations of the parts of one code change. Merge them into one explanation "
        "with the sections 'What changed', 'Why it probably changed' and 'Review carefully'; "
        f"drop repetition.\n\n{joined}"
    )
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]


def commit_message_messages(explanation: str, stats_line: str) -> list[ChatMessage]:
    user = (
        f"Write the git commit message for this change ({stats_line}).\n\n{explanation.strip()}\n\n"
        f"Rules: the first line is 'type(scope): subject' where type is one of {', '.join(COMMIT_TYPES)}; "
        f"at most {SUBJECT_MAX} characters, imperative mood, no period. Then one blank line, then at most "
        "four short lines saying what changed and why. Reply with the commit message only."
    )
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]


def commit_message_from_diff_messages(diff_text: str, stats_line: str) -> list[ChatMessage]:
    """One call for small diffs: the hook has a second or two, not a map-reduce."""
    user = (
        f"Write the git commit message for this change ({stats_line}).\n\n```diff\n{diff_text}\n```\n\n"
        f"Rules: the first line is 'type(scope): subject' where type is one of {', '.join(COMMIT_TYPES)}; "
        f"at most {SUBJECT_MAX} characters, imperative mood, no period. Then one blank line, then at most "
        "four short lines saying what changed and why. Reply with the commit message only."
    )
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]
