"""Each patch of pygls behaviour in lsp_server/lsp/protocol.py, checked twice: pygls still
behaves the way the patch works around (if pygls changes, the first test fails and the patch
can go), and our protocol behaves as the server needs.

A plain in-memory writer stands in for the client: these are unit tests of our own logic.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from lsp_server.config import ServerConfig
from lsp_server.lsp.protocol import ANSWERED, SERVER_NOT_INITIALIZED, own_listener, own_stop_event
from lsp_server.lsp.server import NinetyTenServer

BAD_HOVER = {"jsonrpc": "2.0", "id": 7, "method": "textDocument/hover", "params": {"textDocument": 5}}


class Writer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    def close(self) -> None:
        pass

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(frame.split(b"\r\n\r\n", 1)[1]) for frame in self.frames]


def pygls_server() -> LanguageServer:
    server = LanguageServer("plain", "1")
    server.protocol.set_writer(Writer())  # type: ignore[arg-type]
    return server


def our_server() -> tuple[NinetyTenServer, Writer]:
    server = NinetyTenServer(ServerConfig())
    writer = Writer()
    server.protocol.set_writer(writer)  # type: ignore[arg-type]
    return server, writer


def parsed(server: LanguageServer, message: dict[str, Any]) -> Any:
    return json.loads(json.dumps(message), object_hook=server.protocol.structure_message)


def test_pygls_raises_on_params_that_fail_validation_and_we_answer_invalid_params():
    with pytest.raises(JsonRpcException):
        pygls_server().protocol.structure_message(BAD_HOVER)
    server, writer = our_server()
    assert server.protocol.structure_message(BAD_HOVER) is ANSWERED
    [answer] = writer.messages()
    assert (
        answer["id"] == 7 and answer["error"]["code"] == -32602 and "textDocument/hover" in answer["error"]["message"]
    )


def test_pygls_crashes_on_json_that_is_not_json_rpc_and_we_answer_invalid_request():
    with pytest.raises(AttributeError):
        pygls_server().protocol.handle_message({"id": 3, "method": "x"})
    server, writer = our_server()
    server.protocol.handle_message({"id": 3, "method": "x"})
    assert writer.messages()[0]["error"]["code"] == -32600


def test_pygls_serves_requests_before_initialize_and_we_refuse_them():
    plain = pygls_server()
    plain.protocol.handle_message(parsed(plain, {"jsonrpc": "2.0", "id": 4, "method": "shutdown"}))
    assert "error" not in plain.protocol.writer.messages()[0]  # type: ignore[attr-defined]
    server, writer = our_server()
    server.protocol.handle_message(parsed(server, {"jsonrpc": "2.0", "id": 4, "method": "shutdown"}))
    assert writer.messages()[0]["error"]["code"] == SERVER_NOT_INITIALIZED


async def test_pygls_keeps_every_notification_future_and_we_drop_them():
    async def handler(ls: LanguageServer, params: Any) -> None:
        return None

    plain = pygls_server()
    plain.feature("test/notify")(handler)
    plain.protocol._handle_notification("test/notify", None)
    await asyncio.sleep(0.01)
    assert len(plain.protocol._request_futures) == 1  # leaked: the patch is still needed
    server, _ = our_server()
    server.feature("test/notify")(handler)
    server.protocol._handle_notification("test/notify", None)
    await asyncio.sleep(0.01)
    assert server.protocol.requests_in_flight == 0


async def test_pygls_cancels_only_request_futures_and_we_cancel_command_tasks():
    plain = pygls_server()
    task = asyncio.ensure_future(asyncio.sleep(10))
    plain.protocol._handle_cancel_notification(5)
    await asyncio.sleep(0)
    assert not task.cancelled()
    server, _ = our_server()
    server.protocol.command_tasks[5] = task
    server.protocol._handle_cancel_notification(5)
    await asyncio.sleep(0)
    assert task.cancelled() and 5 not in server.protocol.command_tasks


def initialize(server: LanguageServer) -> types.InitializeResult:
    client = types.ClientCapabilities(
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8]
        )
    )
    generator = server.protocol.lsp_initialize(types.InitializeParams(capabilities=client))
    with pytest.raises(StopIteration) as done:
        next(generator)
    return done.value.value  # type: ignore[no-any-return]


def test_pygls_takes_the_clients_first_encoding_and_we_prefer_utf8():
    assert initialize(pygls_server()).capabilities.position_encoding == types.PositionEncodingKind.Utf16
    server, _ = our_server()
    assert initialize(server).capabilities.position_encoding == types.PositionEncodingKind.Utf8


def test_pygls_shutdown_ends_the_loop_and_the_listener_through_the_attributes_we_set():
    class Listener:
        closed = False

        def close(self) -> None:
            self.closed = True

    server = pygls_server()
    stop = own_stop_event(server)
    listener = Listener()
    own_listener(server, listener)  # type: ignore[arg-type]
    server.shutdown()
    assert stop.is_set() and listener.closed


def test_the_converter_we_unstructure_with():
    server, _ = our_server()
    assert server.protocol.unstructure(types.Position(line=1, character=2)) == {"line": 1, "character": 2}
