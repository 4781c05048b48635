"""End to end: `ninetyten serve` over stdio, real llama.cpp, tiny generated GGUF models.

The "endless" tiny model greedily emits "x" forever, so what the server returns is
fully determined by the server's own logic: token limits, time boxes, cancellation,
suffix-overlap trimming at the cursor the server computed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pytest_lsp import client_capabilities

from tests.lsp_session import inline, lsp_session, open_document, served_notifications
from tests.raw_lsp import RawServer

# Exact answers ("x" * 8) need the token limit to end every generation: a time box long
# enough that a busy machine never reaches it first.
FAST = {"completion": {"max_tokens": 8, "time_limit_ms": 60_000}}


async def test_initialize_advertises_completion_and_prefers_utf8(endless_model_path, session_home, tmp_path):
    caps = types.ClientCapabilities(
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8]
        ),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities()
        ),
    )
    async with lsp_session(model=endless_model_path, home=session_home, capabilities=caps, options=FAST) as client:
        capabilities = client.init_result.capabilities
        assert capabilities.position_encoding == types.PositionEncodingKind.Utf8
        assert capabilities.inline_completion_provider is not None
        assert capabilities.completion_provider is not None
        assert capabilities.text_document_sync.change == types.TextDocumentSyncKind.Incremental
        uri = open_document(client, tmp_path / "a.py", 'a = "😀😀" + xx\n')
        # "xx" starts at byte 17 in UTF-8 (each emoji is four bytes); the server must read it so.
        items = await inline(client, uri, 0, 17)
        assert items is not None and items.items[0].insert_text == "x" * 6  # "xx" after the cursor trimmed


async def test_inline_completion_utf16_positions(endless_model_path, session_home, tmp_path):
    async with lsp_session(model=endless_model_path, home=session_home, options=FAST) as client:
        assert client.init_result.capabilities.position_encoding == types.PositionEncodingKind.Utf16
        uri = open_document(client, tmp_path / "a.py", 'a = "😀😀" + xx\n')
        # In UTF-16 each emoji is two units, so "xx" starts at character 13 (code point 11).
        result = await inline(client, uri, 0, 13)
        assert result is not None
        item = result.items[0]
        assert item.insert_text == "x" * 6  # the 8 generated x's minus the "xx" already there
        assert item.range == types.Range(start=types.Position(0, 13), end=types.Position(0, 13))
        # At the end of the line nothing follows, so nothing is trimmed.
        result = await inline(client, uri, 0, 15)
        assert result.items[0].insert_text == "x" * 8


async def test_incremental_edits_are_applied(endless_model_path, session_home, tmp_path):
    async with lsp_session(model=endless_model_path, home=session_home, options=FAST) as client:
        served = served_notifications(client)
        uri = open_document(client, tmp_path / "b.py", "value = \nother = 1\n")
        first = await inline(client, uri, 0, 8)
        assert first.items[0].insert_text == "x" * 8
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(0, 8), end=types.Position(0, 8)), text="xx"
                    )
                ],
            )
        )
        second = await inline(client, uri, 0, 8)
        assert second.items[0].insert_text == "x" * 6  # the server saw "xx" after the cursor
        await asyncio.sleep(0.1)
        assert [n["tier"] for n in served] == ["local", "local"]
        assert all(n["completion_tokens"] == 8 for n in served)
        # The second prompt shares its start with the first: the KV cache was reused.
        assert served[1]["cached_prompt_tokens"] > 0


async def test_classic_completion_for_clients_without_inline(endless_model_path, session_home, tmp_path):
    caps = client_capabilities("neovim@v0.7.0")
    assert caps.text_document.inline_completion is None
    async with lsp_session(model=endless_model_path, home=session_home, capabilities=caps, options=FAST) as client:
        uri = open_document(client, tmp_path / "c.py", "name = \n")
        result = await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 7))
        )
        assert isinstance(result, types.CompletionList) and len(result.items) == 1
        item = result.items[0]
        assert item.text_edit.new_text == "x" * 8
        assert item.text_edit.range.start == types.Position(0, 7)
        assert item.insert_text_format == types.InsertTextFormat.PlainText


async def test_classic_completion_is_quiet_when_client_has_inline(endless_model_path, session_home, tmp_path):
    async with lsp_session(model=endless_model_path, home=session_home, options=FAST) as client:
        uri = open_document(client, tmp_path / "d.py", "name = \n")
        result = await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 7))
        )
        assert list(result.items) == []  # the same text already comes as ghost text


async def test_cancel_stops_a_long_generation(endless_model_path, session_home, tmp_path):
    options = {"n_ctx": 16384, "completion": {"max_tokens": 16000, "time_limit_ms": 10000}}
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options) as client:
        served = served_notifications(client)
        uri = open_document(client, tmp_path / "e.py", "data = \n")
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(0, 7),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
        future = client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="long-one")
        await asyncio.sleep(0.5)
        cancelled_at = time.perf_counter()
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-one"))
        with pytest.raises(Exception) as error:
            await asyncio.wait_for(asyncio.wrap_future(future), 10)
        assert "cancel" in str(error.value).lower()
        while not served:
            await asyncio.sleep(0.01)
        stopped = served[0]
        assert stopped["stop_reason"] == "cancelled"
        assert time.perf_counter() - cancelled_at < 1.5
        assert 0 < stopped["completion_tokens"] < 16000
        assert stopped["generation_ms"] < 2500  # neither the time box (10 s) nor the token limit

        # The next request is served normally (the time box ends it: 16,000 tokens take long).
        result = await inline(client, uri, 0, 7)
        assert result.items and set(result.items[0].insert_text) == {"x"}
        assert served[-1]["stop_reason"] != "cancelled"
    # Both attempts are in the ledger, the cancelled one too.
    rows = (
        sqlite3.connect(tmp_path / "home" / "ledger.sqlite3")
        .execute("SELECT outcome, completion_tokens FROM attempts WHERE task = 'completion' ORDER BY id")
        .fetchall()
    )
    assert [outcome for outcome, _ in rows] == ["cancelled", "ok"]
    assert 0 < rows[0][1] < 16000


async def test_the_time_box_ends_a_long_generation(endless_model_path, session_home, tmp_path):
    # 16,000 tokens take far longer than two seconds on any CPU: only the time box can end them.
    # (Whether the few tokens of a busy machine are worth showing is another rule's business.)
    options = {"n_ctx": 16384, "completion": {"max_tokens": 16000, "time_limit_ms": 2000}}
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options) as client:
        served = served_notifications(client)
        await inline(client, open_document(client, tmp_path / "t.py", "data = \n"), 0, 7)
        while not served:
            await asyncio.sleep(0.01)
    [stopped] = served
    assert stopped["stop_reason"] == "time_limit" and 0 < stopped["completion_tokens"] < 16000
    rows = (
        sqlite3.connect(tmp_path / "home" / "ledger.sqlite3")
        .execute("SELECT outcome, completion_tokens FROM attempts WHERE task = 'completion'")
        .fetchall()
    )
    assert rows == [("ok", stopped["completion_tokens"])]


async def test_newest_request_wins(endless_model_path, session_home, tmp_path):
    options = {"n_ctx": 8192, "completion": {"max_tokens": 8000, "time_limit_ms": 20000}}
    async with lsp_session(model=endless_model_path, home=session_home, options=options) as client:
        served = served_notifications(client)
        uri = open_document(client, tmp_path / "f.py", "data = \nmore = \n")
        old = asyncio.ensure_future(inline(client, uri, 0, 7))
        await asyncio.sleep(0.3)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text="data = \nmore = 1\n")],
            )
        )
        started = time.perf_counter()
        new = asyncio.ensure_future(inline(client, uri, 0, 7))
        old_result = await asyncio.wait_for(old, 5)
        assert list(old_result.items) == []  # superseded: nothing to show, not an error
        assert time.perf_counter() - started < 2
        new.cancel()
        with pytest.raises(asyncio.CancelledError):
            await new
        assert served[0]["stop_reason"] == "cancelled"


async def test_request_for_unknown_document_is_empty_not_an_error(endless_model_path, session_home, tmp_path):
    async with lsp_session(model=endless_model_path, home=session_home, options=FAST) as client:
        result = await inline(client, (tmp_path / "never-opened.py").as_uri(), 3, 1)
        assert list(result.items) == []
        # Positions past the end are clamped, not fatal. The answer shows where: the endless model's
        # 8 x's lose the "xx" that follows the cursor, so only the very end gives all 8.
        uri = open_document(client, tmp_path / "g.py", "xx\nxx")
        assert (await inline(client, uri, 0, 0)).items[0].insert_text == "x" * 6
        assert (await inline(client, uri, 1, 99)).items[0].insert_text == "x" * 8  # end of that line
        assert (await inline(client, uri, 99, 99)).items[0].insert_text == "x" * 8  # end of the last line
        assert (await inline(client, uri, 99, 0)).items[0].insert_text == "x" * 8


async def test_invalid_initialization_options_are_reported_and_defaults_kept(
    endless_model_path, session_home, tmp_path
):
    options = {"completion": {"max_tokens": "lots"}}
    async with lsp_session(model=endless_model_path, home=session_home, options=options, wait_ready=False) as client:
        # Other messages may come first (the engine starting, on a loaded machine): find ours.
        deadline = time.monotonic() + 60
        while not any("completion.max_tokens" in m.message for m in client.messages):
            assert time.monotonic() < deadline, [m.message for m in client.messages]
            await asyncio.sleep(0.02)
        served = served_notifications(client)
        uri = open_document(client, tmp_path / "h.py", "v = \n")
        result = await inline(client, uri, 0, 4)
        assert result.items and result.items[0].insert_text == "x" * 48, served  # the default limit


async def test_progress_and_ready_message(tiny_model_path, session_home):
    # A plain pygls client records every $/progress value in arrival order.
    client = LanguageClient("progress-test", "1")
    created: list[str] = []
    progress: list[tuple[str, str]] = []
    logs: list[str] = []

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def on_create(params: types.WorkDoneProgressCreateParams) -> None:
        created.append(str(params.token))

    @client.feature(types.PROGRESS)
    def on_progress(params: types.ProgressParams) -> None:
        progress.append((str(params.token), params.value["kind"]))

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:
        logs.append(params.message)

    env = {**os.environ, "NINETYTEN_HOME": str(session_home)}
    await client.start_io(sys.executable, "-m", "lsp_server", "serve", "--model", str(tiny_model_path), env=env)
    try:
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True))
            )
        )
        client.initialized(types.InitializedParams())
        deadline = time.monotonic() + 30
        while not any("ready" in message for message in logs):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert any("fill-in-the-middle" in message for message in logs)
        assert len(created) == 1
        assert progress == [(created[0], "begin"), (created[0], "end")]
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()


async def test_missing_model_file_is_a_clear_message(session_home, tmp_path):
    missing = tmp_path / "nope.gguf"
    async with lsp_session(model=missing, home=session_home, wait_ready=False) as client:
        while not client.messages:
            await asyncio.sleep(0.02)
        message = client.messages[0]
        assert message.type == types.MessageType.Error
        assert str(missing) in message.message
        # The server is still alive and answers, with nothing to offer.
        uri = open_document(client, tmp_path / "i.py", "v = \n")
        assert list((await inline(client, uri, 0, 4)).items) == []


async def test_shutdown_exits_cleanly(endless_model_path, session_home):
    async with lsp_session(model=endless_model_path, home=session_home, options=FAST) as client:
        server = client._server
    assert server.returncode == 0


def test_the_served_notification_is_the_one_the_editors_subscribe_to(endless_model_path, session_home, tmp_path):
    # Read off the wire (no client library), then looked up in both editors' sources: the status
    # bars listen for exactly this method.
    server = RawServer(endless_model_path, session_home)
    try:
        server.initialize(options=FAST)
        uri = (tmp_path / "s.py").as_uri()
        server.open(uri, "value = \n")
        assert server.inline(uri, 0, 8)["result"]["items"][0]["insertText"] == "x" * 8
        served = server.wait_for(lambda message: message.get("method", "").endswith("/served"))
    finally:
        server.close()
    assert served["method"] == "ninetyten/served" and served["params"]["uri"] == uri
    assert served["params"]["completion_tokens"] == 8 and served["params"]["tier"] == "local"
    # The editors take the method from the generated id files, and their status bars listen to it.
    editors = Path(__file__).resolve().parents[2] / "editors"
    assert f'"served": "{served["method"]}"' in (editors / "vscode" / "src" / "ids.js").read_text()
    assert f'served = "{served["method"]}"' in (editors / "nvim" / "lua" / "ninetyten" / "ids.lua").read_text()
    assert "METHODS.served" in (editors / "vscode" / "src" / "extension.js").read_text()
    assert "ids.methods.served" in (editors / "nvim" / "lua" / "ninetyten" / "lsp.lua").read_text()
