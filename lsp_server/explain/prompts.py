"""Explaining a diff and writing its commit message: prompts, format checks, repair.

No few-shot example diffs in the prompts: small models copy them into their answers.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from lsp_server.backends.base import ChatMessage
from lsp_server.engine.document import DocumentPrompt

SYSTEM = (
    "You are a careful senior engineer reviewing a colleague's code change. "
    "Be concrete and brief. Never invent changes that are not in the diff."
)
COMMIT_TYPES = ("feat", "fix", "docs", "style", "refactor", "perf", "test", "build", "ci", "chore", "revert")
SUBJECT_MAX = 72
BODY_WIDTH = 72

_CONVENTIONAL = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)\s]{1,30})\))?(?P<bang>!)?: (?P<subject>\S.*)$")
_NOISE_PREFIX = re.compile(r"^(?:commit message|subject|title)\s*:\s*", re.I)
_NARRATION = re.compile(r"^(?:it|this (?:change|commit|diff|patch)|the (?:change|commit|diff|patch))\s+", re.I)


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


def explain_document(diff_text: str) -> DocumentPrompt:
    return DocumentPrompt(
        f"Code review\n\nThe diff:\n{diff_text}\nWhat the diff does: It", ("\n\n",), "It", max_tokens=128
    )


def merge_document(parts: Sequence[str]) -> DocumentPrompt:
    joined = "\n".join(f"- {' '.join(text.split())}" for text in parts)
    return DocumentPrompt(
        f"Notes on each part of one change:\n{joined}\n\nThe change as a whole:", ("\n\n",), max_tokens=160
    )


# Prompt evaluation dominates a base model's time: the hook sends the diff's head only.
COMMIT_DOCUMENT_CHARS = 3000


def commit_document(diff_text: str) -> DocumentPrompt:
    """One line from the diff: the hook's budget is a second or two."""
    if len(diff_text) > COMMIT_DOCUMENT_CHARS:
        diff_text = diff_text[:COMMIT_DOCUMENT_CHARS].rsplit("\n", 1)[0] + "\n..."
    return DocumentPrompt(
        f"Code review\n\nThe diff:\n{diff_text}\nWhat the diff does: It", ("\n",), "It", max_tokens=40
    )


def commit_from_explanation_document(explanation: str) -> DocumentPrompt:
    # Cued with "It" like the other documents: after a bare colon a base model starts a list on
    # the next line, the "\n" stop cuts it to nothing, and only the fallback subject was left.
    return DocumentPrompt(f"{explanation.strip()}\n\nOne-line summary of this change: It", ("\n",), "It", max_tokens=40)


def check_commit_message(text: str) -> list[str]:
    """What is wrong with a commit message as the model wrote it (empty: nothing)."""
    lines = [line for line in text.strip().split("\n")]
    if not lines or not lines[0].strip():
        return ["subject_missing"]
    subject = lines[0].strip()
    failed = []
    if len(subject) > SUBJECT_MAX:
        failed.append("subject_too_long")
    if not _CONVENTIONAL.match(subject) or _CONVENTIONAL.match(subject).group("type") not in COMMIT_TYPES:  # type: ignore[union-attr]
        failed.append("not_conventional")
    if len(lines) > 1 and lines[1].strip():
        failed.append("no_blank_line")
    return failed


def guess_type(paths: Sequence[str], text: str = "") -> str:
    """A conventional-commit type from what the change touches, for repairs."""
    lowered = [p.lower() for p in paths]
    if lowered and all(p.endswith((".md", ".rst", ".txt", ".adoc")) or p.startswith("docs/") for p in lowered):
        return "docs"
    if lowered and all("test" in p for p in lowered):
        return "test"
    if lowered and all(p.startswith((".github/", ".ci/", ".gitlab")) for p in lowered):
        return "ci"
    if re.search(r"\b(fix|bug|crash|error|wrong)", text, re.I):
        return "fix"
    if re.search(r"\b(add|new|support|introduce)", text, re.I):
        return "feat"
    return "chore"


def _shorten(subject: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when there is one."""
    if len(subject) <= limit:
        return subject
    sentence = subject.split(". ", 1)[0]
    if len(sentence) <= limit:
        return sentence  # a whole first sentence reads better than a cut one
    head = subject[: limit + 1]
    if " " not in head:
        return subject[:limit]
    return head.rsplit(" ", 1)[0].rstrip(",;:- ") or subject[:limit]


def repair_commit_message(text: str, paths: Sequence[str]) -> str:
    """Make any model answer a well-formed message: conventional subject <= 72, wrapped body."""
    raw = [line.rstrip() for line in text.replace("\r\n", "\n").strip().strip("`").split("\n")]
    raw = [line for line in raw if not line.lstrip().startswith("#") and not line.strip().startswith("```")]
    while raw and not raw[0].strip():
        raw.pop(0)
    subject = _NOISE_PREFIX.sub("", raw[0].strip().strip("\"'*")) if raw else ""
    subject = _NARRATION.sub("", subject)  # "It adds x" / "This change adds x" -> "adds x"
    body_lines = [line for line in raw[1:]]
    match = _CONVENTIONAL.match(subject)
    if match and match.group("type") in COMMIT_TYPES:
        prefix = subject[: match.start("subject")]
        words = match.group("subject")
    else:
        words = subject or "update " + (", ".join(paths[:3]) if paths else "files")
        prefix = f"{guess_type(paths, text)}: "
    words = words.rstrip(".").strip()
    if words[:1].isupper() and not words[1:2].isupper():
        words = words[0].lower() + words[1:]
    subject = prefix + _shorten(words, SUBJECT_MAX - len(prefix))
    paragraphs = "\n".join(body_lines).strip()
    body = "\n\n".join(
        textwrap.fill(" ".join(block.split()), BODY_WIDTH)
        if not block.lstrip().startswith(("-", "*"))
        else "\n".join(
            textwrap.fill(item.strip(), BODY_WIDTH, subsequent_indent="  ")
            for item in block.split("\n")
            if item.strip()
        )
        for block in re.split(r"\n\s*\n", paragraphs)
        if block.strip()
    )
    return subject + ("\n\n" + body if body else "")
