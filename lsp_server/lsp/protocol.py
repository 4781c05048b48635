"""The pygls protocol, with every patch of its private behaviour in one place.

Each override names the pygls behaviour it works around; tests/unit/test_pygls_patches.py
fails when pygls changes that behaviour (or the private attribute a patch relies on).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import RPCRequest

from lsp_server.lsp.transport import INVALID_REQUEST, PARSE_ERROR, send_error

log = logging.getLogger(__name__)

INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
ANSWERED = object()  # a message already answered (or dropped) while it was parsed


def validation_detail(error: BaseException) -> str:
    """The first few problems cattrs found in a message's params, readable in an editor."""
    cause = error.__cause__
    if cause is None:
        return str(error) or type(error).__name__
    try:
        from cattrs import transform_error

        details = transform_error(cause)
        return "; ".join(details[:3])
    except Exception:
        return str(cause)[:200]


class NinetyTenProtocol(LanguageServerProtocol):
    initialize_seen = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # pygls runs a workspace/executeCommand coroutine as a task of its own and does not
        # cancel it on $/cancelRequest: commands are kept here by request id and cancelled by us.
        self.command_tasks: dict[Any, asyncio.Task[Any]] = {}

    def structure_message(self, data: dict[str, Any]) -> Any:
        """pygls raises (and the read loop logs) when params fail validation; the client gets
        nothing. Here a request gets an InvalidParams answer and a notification a log line."""
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            method = data.get("method")
            if "id" in data and isinstance(method, str):
                send_error(self, data["id"], INVALID_PARAMS, f"invalid params for {method}: {validation_detail(error)}")
            else:
                log.warning("dropping a malformed %s message: %s", method or "JSON-RPC", validation_detail(error))
            return ANSWERED

    def handle_message(self, message: Any) -> None:
        """pygls dispatches anything that parsed, before initialize too, and crashes on JSON
        that is not a JSON-RPC object (a batch, a bare value)."""
        if message is ANSWERED:
            return
        if not hasattr(message, "jsonrpc"):  # valid JSON, but not a JSON-RPC message (or a batch)
            msg_id = message.get("id") if isinstance(message, dict) else None
            send_error(self, msg_id, INVALID_REQUEST, "not a JSON-RPC 2.0 message")
            return
        if isinstance(message, RPCRequest) and not self.initialize_seen and message.method != types.INITIALIZE:
            send_error(self, message.id, SERVER_NOT_INITIALIZED, f"{message.method} before initialize")
            return
        super().handle_message(message)

    def _check_handler_result(self, future: Any) -> None:
        """pygls files every notification's future in `_request_futures` under a fresh random id
        and never removes it: one leaked future per keystroke. Only requests in flight stay."""
        super()._check_handler_result(future)
        for key in [key for key, value in self._request_futures.items() if value is future]:
            del self._request_futures[key]

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        """pygls cancels request futures only; an executeCommand task is ours to cancel."""
        task = self.command_tasks.pop(msg_id, None)
        if task is not None:
            task.cancel()
        super()._handle_cancel_notification(msg_id)

    @property
    def requests_in_flight(self) -> int:
        """Requests pygls still tracks: anything beyond those in flight is a leak."""
        return len(self._request_futures)

    def unstructure(self, value: Any) -> Any:
        """An lsprotocol object as plain JSON data (for answers that embed one)."""
        return self._converter.unstructure(value)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        """Prefer UTF-8 whenever the client offers it: no UTF-16 counting on our side. pygls
        picks the first encoding the client lists."""
        self.initialize_seen = True
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            offered = list(general.position_encodings)
            if types.PositionEncodingKind.Utf8 in offered:
                offered.remove(types.PositionEncodingKind.Utf8)
                general.position_encodings = [types.PositionEncodingKind.Utf8, *offered]
        return (yield from super().lsp_initialize(params))


def handle_body(protocol: Any, body: bytes) -> None:
    """One frame's body: parsed (a parse error is answered), then handled; never raises."""
    try:
        message = json.loads(body, object_hook=protocol.structure_message)
    except (ValueError, UnicodeDecodeError) as error:
        send_error(protocol, None, PARSE_ERROR, f"parse error: {error}")
        return
    try:
        protocol.handle_message(message)
    except Exception:  # never let one message end the read loop
        log.exception("handling a message failed")


def own_stop_event(server: Any) -> threading.Event:
    """pygls's JsonRPCServer.shutdown() sets its private `_stop_event` to end its read loop. Our
    read loop (transport.serve_stream) watches the event we put there, so that `shutdown` and
    `exit` end it too."""
    server._stop_event = event = threading.Event()
    return event


def own_listener(server: Any, listener: asyncio.Server) -> None:
    """pygls's shutdown() closes its private `_server`, the TCP listener its own start_tcp would
    have made; ours goes there so that shutdown stops listening."""
    server._server = listener
