"""The completion prompt a stronger tier gets: chat messages with a `<CURSOR>` marker.

Remote tiers speak chat, not fill-in-the-middle tokens; they get the text around the
cursor with a marker where the answer goes, after the context from other files that the
sensitivity gate lets leave. `route_window` is what the routing scan reads for a completion:
the same neighbourhood, so what is judged is what would leave.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsp_server.backends.base import ChatMessage
from lsp_server.completion.prompt import CompletionInput, ContextFile, split_at_cursor
from lsp_server.context.prompt_context import Kept, withhold
from lsp_server.context.snippets import Gate
from lsp_server.engine.jobs import RemoteCompletionPrompt

SYSTEM = "You complete code. Reply with only the text to insert at <CURSOR>, no fences."
LINES_BEFORE = 80
LINES_AFTER = 40


def remote_messages(inp: CompletionInput, context: Sequence[ContextFile] = ()) -> list[ChatMessage]:
    before, line_prefix, line_suffix, after = split_at_cursor(inp)
    prefix = "".join(before[-LINES_BEFORE:]) + line_prefix
    suffix = line_suffix + ("\n" if after else "") + "".join(after[:LINES_AFTER])
    shown = "".join(f"--- {item.path} ---\n{item.text.rstrip()}\n\n" for item in context)
    others = f"Other code in this repository:\n\n{shown}" if shown else ""
    return [ChatMessage("system", SYSTEM), ChatMessage("user", f"{others}File: {inp.path}\n\n{prefix}<CURSOR>{suffix}")]


def remote_prompt(inp: CompletionInput, gate: Gate | None) -> RemoteCompletionPrompt:
    """The messages for a stronger tier. With a `gate` (a tier that does not keep data home),
    a context snippet from a sensitive path or holding a secret stays home, and the prompt
    says so in a content-free reason for the ledger."""
    kept = withhold(inp.extra, gate) if gate is not None and inp.extra else Kept(list(inp.extra), [])
    return RemoteCompletionPrompt(remote_messages(inp, kept.files), kept.ledger_reason())


def route_window(inp: CompletionInput) -> str:
    before, line_prefix, line_suffix, after = split_at_cursor(inp)
    return "".join(before[-60:]) + line_prefix + line_suffix + "\n" + "".join(after[:30])
