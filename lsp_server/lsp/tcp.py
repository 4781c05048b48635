"""Serving one LSP client on a loopback TCP address, after it authenticated (see tcp_auth.py).

Connections that fail the handshake are answered with one error and closed, and the server
goes on listening; once the authenticated client leaves, the server ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from lsp_server.lsp.protocol import handle_body, own_listener
from lsp_server.lsp.tcp_auth import error_frame, handshake
from lsp_server.lsp.transport import serve_stream

log = logging.getLogger(__name__)


async def refuse(writer: asyncio.StreamWriter, msg_id: Any, message: str) -> None:
    try:
        writer.write(error_frame(msg_id, message))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def serve_tcp(server: Any, host: str, port: int, token: str, stop_event: threading.Event) -> None:
    """Listen on (host, port) until the one authenticated client is done."""
    client_connected = False

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal client_connected
        peer = writer.get_extra_info("peername")
        first = await handshake(reader, token)
        if first.error is not None or first.body is None:
            log.warning("refused a TCP connection from %s: %s", peer, first.error)
            await refuse(writer, first.msg_id, first.error or "unauthorized")
            return
        if client_connected:
            log.warning("refused a second TCP client from %s", peer)
            await refuse(writer, first.msg_id, "another client is connected to this server")
            return
        client_connected = True
        log.info("TCP client %s authenticated", peer)
        server.protocol.set_writer(writer)
        handle_body(server.protocol, first.body)
        await serve_stream(stop_event, reader, server.protocol, handle_body)
        server.shutdown()

    listener = await asyncio.start_server(connection, host, port)
    own_listener(server, listener)
    async with listener:
        await listener.serve_forever()
