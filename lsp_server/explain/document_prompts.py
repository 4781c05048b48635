"""Explaining a diff with a base model (no chat template): a document it continues, cued
with "It" so that its next words describe the change."""

from __future__ import annotations

from collections.abc import Sequence

from lsp_server.engine.document import DocumentPrompt


def _facts_note(facts: Sequence[str]) -> str:
    """The facts as a base model reads them: a list at the top of the review."""
    if not facts:
        return ""
    return "Changes:\n" + "\n".join(f"- {line}" for line in facts if not line.startswith("commit type:")) + "\n\n"


def explain_document(diff_text: str, facts: Sequence[str] = ()) -> DocumentPrompt:
    return DocumentPrompt(
        f"Code review\n\n{_facts_note(facts)}The diff:\n{diff_text}\nWhat the diff does: It",
        ("\n\n",),
        "It",
        max_tokens=128,
    )


def merge_document(parts: Sequence[str]) -> DocumentPrompt:
    joined = "\n".join(f"- {' '.join(text.split())}" for text in parts)
    return DocumentPrompt(
        f"Notes on each part of one change:\n{joined}\n\nThe change as a whole:", ("\n\n",), max_tokens=160
    )


# Prompt evaluation dominates a base model's time: the hook sends the diff's head only.
COMMIT_DOCUMENT_CHARS = 3000


def commit_document(diff_text: str, facts: Sequence[str] = ()) -> DocumentPrompt:
    """One line from the diff: the hook's budget is a second or two."""
    if len(diff_text) > COMMIT_DOCUMENT_CHARS:
        diff_text = diff_text[:COMMIT_DOCUMENT_CHARS].rsplit("\n", 1)[0] + "\n..."
    return DocumentPrompt(
        f"Code review\n\n{_facts_note(facts)}The diff:\n{diff_text}\nWhat the diff does: It",
        ("\n",),
        "It",
        max_tokens=40,
    )


def commit_from_explanation_document(explanation: str, facts: Sequence[str] = ()) -> DocumentPrompt:
    # Cued with "It" like the other documents: after a bare colon a base model starts a list on
    # the next line, the "\n" stop cuts it to nothing, and only the fallback subject was left.
    return DocumentPrompt(
        f"{_facts_note(facts)}{explanation.strip()}\n\nOne-line summary of this change: It",
        ("\n",),
        "It",
        max_tokens=40,
    )
