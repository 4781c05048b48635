"""Explain, refactor and ask about a selection: requests, commands and code actions.

A refactor comes back as a reviewable workspace edit, refused when it would break a file
that parsed (assist/verification.py), applied only when the client asked for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from lsprotocol import types
from pydantic import ValidationError

from lsp_server.assist.prompts import AssistInput, AssistTask
from lsp_server.assist.run import assist
from lsp_server.assist.verification import edit_keeps_file_valid
from lsp_server.backends.base import CancelToken
from lsp_server.lsp.convert import (
    client_point,
    ordered_range,
    replaced,
    split_lines,
    text_between,
    whole_document,
)
from lsp_server.lsp.ids import (
    ASK_COMMAND,
    ASK_REQUEST,
    EXPLAIN_CHANGE_COMMAND,
    EXPLAIN_REQUEST,
    EXPLAIN_SELECTION_COMMAND,
    REFACTOR_REQUEST,
    REFACTOR_SELECTION_COMMAND,
)
from lsp_server.lsp.params import AssistParams, command_params, plain
from lsp_server.lsp.server import NinetyTenServer


def assist_input(ls: NinetyTenServer, task: AssistTask, params: AssistParams) -> tuple[AssistInput, types.Range]:
    """The selection (or the whole document) as the feature's input, and its range as the client counts."""
    uri = params.text_document.uri
    document = ls.document(uri)
    if document is None:
        raise ValueError(f"{uri} is not open")
    lines = split_lines(document.source)
    chosen = params.range
    start, end = (
        whole_document(lines)
        if chosen is None
        else ordered_range(
            lines, (chosen.start.line, chosen.start.character), (chosen.end.line, chosen.end.character), ls.encoding
        )
    )
    client_range = types.Range(
        types.Position(*client_point(lines, start, ls.encoding)), types.Position(*client_point(lines, end, ls.encoding))
    )
    inp = AssistInput(
        task=task,
        code=text_between(lines, start, end),
        path=ls.relative_path(uri),
        language=document.language_id,
        instruction=params.instruction or params.question,
    )
    return inp, client_range


def refactor_keeps_file_valid(ls: NinetyTenServer, uri: str, selection: types.Range, new_text: str) -> bool:
    document = ls.document(uri)
    if document is None:
        return True
    lines = split_lines(document.source)
    start, end = ordered_range(
        lines,
        (selection.start.line, selection.start.character),
        (selection.end.line, selection.end.character),
        ls.encoding,
    )
    return edit_keeps_file_valid("\n".join(lines), replaced(lines, start, end, new_text), document.language_id)


def refactor_edit(ls: NinetyTenServer, uri: str, selection: types.Range, new_text: str) -> types.WorkspaceEdit:
    document = ls.document(uri)
    return types.WorkspaceEdit(
        document_changes=[
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=uri, version=document.version if document else None
                ),
                edits=[types.TextEdit(selection, new_text)],
            )
        ]
    )


async def run_assist(ls: NinetyTenServer, task: AssistTask, raw: Any) -> dict[str, Any]:
    """One explain / refactor / ask: validated, answered, and for a refactor, an edit."""
    try:
        params = AssistParams.model_validate(plain(raw))
        inp, selection = assist_input(ls, task, params)
    except (ValidationError, ValueError) as error:
        return {"error": f"invalid {task} request: {error}"}
    if task == "refactor" and not inp.instruction.strip():
        return {"error": "a refactor needs an instruction (the `instruction` argument)"}
    if ls.engine is None:
        return {"error": "the server is not initialized"}
    token = CancelToken()
    try:
        result = await assist(ls.engine, inp, cancel=token, auto_apply=params.apply)
    except asyncio.CancelledError:
        token.cancel()
        raise
    answer = result.to_json()
    if task != "refactor" or result.text is None:
        return answer
    uri = params.text_document.uri
    if not refactor_keeps_file_valid(ls, uri, selection, result.text):
        answer["error"] = "the refactored code would break the file's syntax; nothing was changed"
        return answer
    edit = refactor_edit(ls, uri, selection, result.text)
    answer["edit"] = ls.protocol.unstructure(edit)
    if params.apply:
        applied = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label="ninetyten: refactor")
        )
        answer["applied"] = bool(applied and applied.applied)
    return answer


def action(title: str, kind: types.CodeActionKind, command: str, argument: dict[str, Any]) -> types.CodeAction:
    return types.CodeAction(
        title=title, kind=kind, command=types.Command(title=title, command=command, arguments=[argument])
    )


def actions_for(uri: str, selection: dict[str, Any] | None) -> list[types.CodeAction]:
    """Explain / refactor / ask for a selection (`selection`: its range as JSON), and always
    explain the file's change."""
    change = action(
        "ninetyten: Explain this change",
        types.CodeActionKind.Empty,
        EXPLAIN_CHANGE_COMMAND,
        {"textDocument": {"uri": uri}},
    )
    if selection is None:
        return [change]
    target = {"textDocument": {"uri": uri}, "range": selection}
    return [
        action("ninetyten: Explain selection", types.CodeActionKind.Empty, EXPLAIN_SELECTION_COMMAND, target),
        action(
            "ninetyten: Refactor selection…",
            types.CodeActionKind.RefactorRewrite,
            REFACTOR_SELECTION_COMMAND,
            {**target, "apply": True},
        ),
        action("ninetyten: Ask about selection", types.CodeActionKind.Empty, ASK_COMMAND, target),
        change,
    ]


def code_actions(ls: NinetyTenServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    selected = params.range.start != params.range.end
    return actions_for(params.text_document.uri, ls.protocol.unstructure(params.range) if selected else None)


def assist_request(task: AssistTask) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def request(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return await run_assist(ls, task, params)

    return request


def assist_command(task: AssistTask) -> Callable[..., Awaitable[dict[str, Any]]]:
    # pygls maps a command's arguments onto every parameter after `ls`: no extra parameters here.
    async def command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await ls.cancellable(run_assist(ls, task, command_params(args, task)))

    return command


def register(server: NinetyTenServer) -> None:
    server.feature(EXPLAIN_REQUEST)(assist_request("explain"))
    server.feature(REFACTOR_REQUEST)(assist_request("refactor"))
    server.feature(ASK_REQUEST)(assist_request("ask"))
    server.command(EXPLAIN_SELECTION_COMMAND)(assist_command("explain"))
    server.command(REFACTOR_SELECTION_COMMAND)(assist_command("refactor"))
    server.command(ASK_COMMAND)(assist_command("ask"))
    server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite, types.CodeActionKind.Empty]),
    )(code_actions)
