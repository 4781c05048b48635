"""Prompts for base models: a document the model continues, not a chat it follows.

Small base models (the embedded Gemma 3 270M has no chat template) echo chat-style
instructions back; given the start of a familiar document they write the next part.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocumentPrompt:
    text: str  # ends with the cue the model continues from
    stops: tuple[str, ...] = ("\n\n",)
    answer_prefix: str = ""  # put back in front of the continuation (the cue's last words)
    max_tokens: int | None = None  # small models ramble: a tighter limit than the chat answer's
