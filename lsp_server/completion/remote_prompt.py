"""The completion prompt a stronger tier gets: chat messages with a `<CURSOR>` marker.

Remote tiers speak chat, not fill-in-the-middle tokens; they get the text around the
cursor with a marker where the answer goes. `route_window` is what the routing scan reads
for a completion: the same neighbourhood, so what is judged is what would leave.
"""

from __future__ import annotations

from lsp_server.backends.base import ChatMessage
from lsp_server.completion.prompt import CompletionInput, split_at_cursor

SYSTEM = "You complete code. Reply with only the text to insert at <CURSOR>, no fences."
LINES_BEFORE = 80
LINES_AFTER = 40


def remote_messages(inp: CompletionInput) -> list[ChatMessage]:
    before, line_prefix, line_suffix, after = split_at_cursor(inp)
    prefix = "".join(before[-LINES_BEFORE:]) + line_prefix
    suffix = line_suffix + ("\n" if after else "") + "".join(after[:LINES_AFTER])
    return [ChatMessage("system", SYSTEM), ChatMessage("user", f"File: {inp.path}\n\n{prefix}<CURSOR>{suffix}")]


def route_window(inp: CompletionInput) -> str:
    before, line_prefix, line_suffix, after = split_at_cursor(inp)
    return "".join(before[-60:]) + line_prefix + line_suffix + "\n" + "".join(after[:30])
