"""Code actions and commands on a selection, through a real LSP session."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.test_routing_server import KEY, KEY_ENV, _as_dict, write_policy
from tests.loopback_provider import LoopbackProvider
from tests.lsp_session import lsp_session, open_document

SOURCE = "def old():\n    return 1\n\n\nprint(old())\n"
SELECTION = types.Range(types.Position(0, 0), types.Position(1, 12))


@pytest.fixture
def env_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def record_edits(client: Any) -> list[types.ApplyWorkspaceEditParams]:
    edits: list[types.ApplyWorkspaceEditParams] = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    return edits


async def execute(client: Any, command: str, *arguments: Any) -> dict[str, Any]:
    result = await asyncio.wait_for(
        client.workspace_execute_command_async(types.ExecuteCommandParams(command=command, arguments=list(arguments))),
        60,
    )
    return _as_dict(result)


async def test_code_actions_are_offered_for_a_selection(endless_model_path, tmp_path):
    async with lsp_session(model=endless_model_path, home=tmp_path / "home") as client:
        uri = open_document(client, tmp_path / "a.py", SOURCE)
        actions = await client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri),
                range=SELECTION,
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        titles = [action.title for action in actions]
        assert titles == [
            "ninetyten: Explain selection",
            "ninetyten: Refactor selection…",
            "ninetyten: Ask about selection",
            "ninetyten: Explain this change",
        ]
        commands = client.init_result.capabilities.execute_command_provider.commands
        assert {
            "ninetyten.explainSelection",
            "ninetyten.refactorSelection",
            "ninetyten.ask",
            "ninetyten.explainChange",
        } <= set(commands)
        empty = await client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri),
                range=types.Range(SELECTION.start, SELECTION.start),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert [action.title for action in empty] == ["ninetyten: Explain this change"]


async def test_refactor_command_applies_a_verified_edit(env_key, endless_model_path, tmp_path):
    with LoopbackProvider(reply="def renamed():\n    return 1") as frontier:
        workspace = tmp_path / "ws"
        write_policy(workspace, frontier.url, trusted_in=tmp_path / "home")
        async with lsp_session(model=endless_model_path, home=tmp_path / "home", root=workspace) as client:
            edits = record_edits(client)
            uri = open_document(client, workspace / "a.py", SOURCE)
            answer = await execute(
                client,
                "ninetyten.refactorSelection",
                {
                    "textDocument": {"uri": uri},
                    "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
                    "instruction": "rename to renamed",
                    "apply": True,
                },
            )
            assert answer["applied"] is True and answer["tier"] == "frontier"
            assert len(edits) == 1
            change = edits[0].edit.document_changes[0]
            assert change.text_document.uri == uri
            assert change.edits[0].range == SELECTION  # the edit stays inside the selection
            assert change.edits[0].new_text == "def renamed():\n    return 1"


async def test_refactor_that_breaks_syntax_is_not_applied(env_key, endless_model_path, tmp_path):
    with LoopbackProvider(reply="def renamed(:\n    return 1") as frontier:
        workspace = tmp_path / "ws"
        write_policy(workspace, frontier.url, trusted_in=tmp_path / "home")
        async with lsp_session(model=endless_model_path, home=tmp_path / "home", root=workspace) as client:
            edits = record_edits(client)
            uri = open_document(client, workspace / "a.py", SOURCE)
            answer = await execute(
                client,
                "ninetyten.refactorSelection",
                uri,
                {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
                "rename it",
            )
            assert "syntax" in answer["error"]
            assert edits == []


async def test_refactor_needs_an_instruction(endless_model_path, tmp_path):
    async with lsp_session(model=endless_model_path, home=tmp_path / "home") as client:
        uri = open_document(client, tmp_path / "a.py", SOURCE)
        answer = await execute(
            client,
            "ninetyten.refactorSelection",
            uri,
            {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
        )
        assert "instruction" in answer["error"]


async def test_explain_and_ask_commands_answer(endless_model_path, tmp_path):
    options = {"assist": {"max_tokens": 6}}
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options) as client:
        uri = open_document(client, tmp_path / "a.py", SOURCE)
        explained = await execute(
            client,
            "ninetyten.explainSelection",
            {
                "textDocument": {"uri": uri},
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
            },
        )
        assert explained["text"] == "x" * 6 and explained["tier"] == "local"
        asked = await execute(
            client,
            "ninetyten.ask",
            uri,
            {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
            "what is it?",
        )
        assert asked["text"] == "x" * 6


async def test_cancelling_a_long_explain_command_stops_it(endless_model_path, tmp_path):
    options = {"n_ctx": 16384, "assist": {"max_tokens": 15000}}
    home = tmp_path / "home"
    async with lsp_session(model=endless_model_path, home=home, options=options) as client:
        uri = open_document(client, tmp_path / "a.py", SOURCE)
        future = client.protocol.send_request(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(
                command="ninetyten.explainSelection",
                arguments=[
                    {
                        "textDocument": {"uri": uri},
                        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
                    }
                ],
            ),
            msg_id="long-explain",
        )
        await asyncio.sleep(0.5)
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-explain"))
        with pytest.raises(Exception):
            await asyncio.wait_for(asyncio.wrap_future(future), 10)
        # The model is free again at once: a short request does not wait behind 15,000 tokens.
        started = time.perf_counter()
        answer = await execute(
            client,
            "ninetyten.ask",
            {
                "textDocument": {"uri": uri},
                "question": "short?",
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 3}},
            },
        )
        assert answer["tier"] == "local"
        assert time.perf_counter() - started < 30
    rows = (
        sqlite3.connect(home / "ledger.sqlite3")
        .execute("SELECT task, outcome, completion_tokens FROM attempts ORDER BY id")
        .fetchall()
    )
    assert rows[0][:2] == ("explain", "cancelled")


async def test_explain_this_change_with_progress(endless_model_path, tmp_path):
    import subprocess

    workspace = tmp_path / "ws"
    workspace.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "d@e.f"], ["config", "user.name", "D"]):
        subprocess.run(["git", "-C", str(workspace), *args], check=True)
    (workspace / "a.py").write_text(SOURCE)
    subprocess.run(["git", "-C", str(workspace), "add", "."], check=True)
    subprocess.run(["git", "-C", str(workspace), "commit", "-qm", "init"], check=True)
    (workspace / "a.py").write_text(SOURCE.replace("return 1", "return 2"))
    options = {"assist": {"max_tokens": 6}}
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options, root=workspace) as client:
        uri = open_document(client, workspace / "a.py", SOURCE.replace("return 1", "return 2"))
        answer = await execute(client, "ninetyten.explainChange", {"textDocument": {"uri": uri}})
        # The model's answer, then the facts read from the diff (grounded explanations).
        assert (
            answer["explanation"]
            == "x" * 6 + "\n\nChanged (from the diff):\n- a.py: function old changed: return value changed"
        )
        assert answer["usage"]["chunks"] == 1 and answer["decision"]["task"] == "explain"
        explain_tokens = [t for t in client.progress_reports if str(t).startswith("ninetyten-explain")]
        assert explain_tokens
        kinds = [type(v).__name__ for v in client.progress_reports[explain_tokens[0]]]
        assert kinds[-1] == "WorkDoneProgressEnd" and "WorkDoneProgressReport" in kinds
        # Nothing changed in another file: a clear answer, not an error.
        (workspace / "b.py").write_text("x = 1\n")
        subprocess.run(["git", "-C", str(workspace), "add", "b.py"], check=True)
        subprocess.run(["git", "-C", str(workspace), "commit", "-qm", "b"], check=True)
        other = open_document(client, workspace / "b.py", "x = 1\n")
        assert (await execute(client, "ninetyten.explainChange", {"textDocument": {"uri": other}}))[
            "error"
        ] == "nothing changed"
