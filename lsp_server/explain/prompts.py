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


def _facts_block(facts: Sequence[str]) -> str:
    """The change's facts (extracted from the diff, not written by a model) for a prompt."""
    if not facts:
        return ""
    lines = "\n".join(f"- {line}" for line in facts)
    return f"Facts about the change, extracted from the diff (reliable):\n{lines}\n\n"


def explain_messages(diff_text: str, *, part: int = 1, parts: int = 1, facts: Sequence[str] = ()) -> list[ChatMessage]:
    where = f" (part {part} of {parts} of a larger change)" if parts > 1 else ""
    user = (
        f"Explain this change{where}. Answer in three short sections titled "
        f"'What changed', 'Why it probably changed' and 'Review carefully'."
        f"{' Name only files and symbols that appear in the facts or the diff.' if facts else ''}"
        f"\n\n{_facts_block(facts)}```diff\n{diff_text}\n```"
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


def _commit_rules(facts: Sequence[str]) -> str:
    rules = (
        f"Rules: the first line is 'type(scope): subject' where type is one of {', '.join(COMMIT_TYPES)}; "
        f"at most {SUBJECT_MAX} characters, imperative mood, no period. Then one blank line, then at most "
        "four short lines saying what changed and why. Reply with the commit message only."
    )
    if facts:
        rules += (
            " The subject names the main file or symbol that changed; name only files and symbols from "
            "the facts or the diff, and use the commit type the facts give unless the diff clearly "
            "calls for another."
        )
    return rules


def commit_message_messages(explanation: str, stats_line: str, facts: Sequence[str] = ()) -> list[ChatMessage]:
    user = (
        f"Write the git commit message for this change ({stats_line}).\n\n{_facts_block(facts)}"
        f"{explanation.strip()}\n\n{_commit_rules(facts)}"
    )
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]


def commit_message_from_diff_messages(diff_text: str, stats_line: str, facts: Sequence[str] = ()) -> list[ChatMessage]:
    """One call for small diffs: the hook has a second or two, not a map-reduce."""
    user = (
        f"Write the git commit message for this change ({stats_line}).\n\n{_facts_block(facts)}"
        f"```diff\n{diff_text}\n```\n\n{_commit_rules(facts)}"
    )
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]
