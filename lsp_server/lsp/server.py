"""The language server: transport, the engine once initialized, and the features' state.

No feature logic lives here: handlers (lsp/handlers/, put together by lsp/app.py) translate
the protocol to feature calls and back; the features (completion/, assist/, explain/) know
nothing of LSP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Coroutine, TypeVar
from urllib.parse import urlparse

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from lsp_server import __version__
from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.lsp.convert import Encoding, file_path, normalize_encoding
from lsp_server.lsp.protocol import NinetyTenProtocol, handle_body, own_stop_event
from lsp_server.lsp.transport import serve_stream
from lsp_server.tiers import TierName

if TYPE_CHECKING:
    from lsp_server.lsp.handlers.completion import CompletionFeature
    from lsp_server.lsp.handlers.policy import PolicyFeature

log = logging.getLogger(__name__)

T = TypeVar("T")


def _exit_on_sigterm(server: NinetyTenServer) -> Any:
    """On SIGTERM store the queued ledger rows, then exit.

    Done on a thread of its own: the read loop may sit in a blocking read of stdin that
    nothing can interrupt, and the rows may wait for another process's write lock.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def finish() -> None:
        server.store_ledger_rows()
        logging.shutdown()
        os._exit(0)

    def terminate(signum: int, frame: Any) -> None:
        threading.Thread(target=finish, name="ninetyten-sigterm", daemon=True).start()

    return signal.signal(signal.SIGTERM, terminate)


class NinetyTenServer(LanguageServer):
    protocol: NinetyTenProtocol
    # Each feature's state for this client; set up by lsp.app.create_server with the handlers.
    completion_feature: CompletionFeature
    policy_feature: PolicyFeature

    def __init__(
        self,
        config: ServerConfig,
        explicit_model: str | None = None,
        policy: str | None = None,
        explicit_chat_model: str | None = None,
    ) -> None:
        super().__init__("ninetyten", __version__, protocol_cls=NinetyTenProtocol)
        self.config = config
        self.explicit_model = explicit_model
        self.explicit_chat_model = explicit_chat_model
        self.explicit_policy = policy
        self.engine: Engine | None = None  # built in initialize, from the client's settings
        self._told_unreachable: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self.event_loop: asyncio.AbstractEventLoop | None = None  # set in initialize

    # -- transport: our own frame reader (see transport.py) -----------------

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        from pygls.io_ import StdinAsyncReader, StdoutWriter

        stop_event = own_stop_event(self)
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        previous = _exit_on_sigterm(self)
        try:
            asyncio.run(serve_stream(stop_event, reader, self.protocol, handle_body))
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.store_ledger_rows()
            self.shutdown()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def start_tcp(self, host: str, port: int, token: str) -> None:  # type: ignore[override]
        """Serve one client on a TCP address; it must authenticate first (see tcp.py)."""
        from lsp_server.lsp.tcp import serve_tcp

        try:
            asyncio.run(serve_tcp(self, host, port, token, own_stop_event(self)))
        except asyncio.CancelledError:
            pass

    def store_ledger_rows(self) -> None:
        """The client went away (EOF, SIGTERM) without `shutdown`: store the queued rows now."""
        if self.engine is not None:
            try:
                self.engine.sink.flush()
            except Exception:
                log.exception("storing the ledger rows failed")

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Protocol-level junk is answered with JSON-RPC errors; pop-ups are for real failures.
        if isinstance(error, JsonRpcException):
            log.warning("%s", error)
            return
        super().report_server_error(error, source)

    # -- what handlers share -------------------------------------------------

    @property
    def encoding(self) -> Encoding:
        return normalize_encoding(self.workspace.position_encoding)

    @property
    def workspace_root(self) -> Path | None:
        root = self.workspace.root_path
        return Path(root) if root else None

    def document(self, uri: str) -> TextDocument | None:
        return self.workspace.text_documents.get(uri)

    def relative_path(self, uri: str) -> str:
        path = file_path(uri)
        if path is None:  # another scheme (an untitled buffer, a remote file): its path part, as is
            path = Path(urlparse(uri).path or uri)
        root = self.workspace.root_path
        if root:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                pass
        return path.as_posix() if path.is_absolute() else (path.name or uri)

    def notify_user(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"ninetyten: {message}"))

    def tier_unreachable(self, tier: TierName, detail: str) -> None:
        """Tell the user once that a remote tier is out of reach; requests go local meanwhile."""
        if tier in self._told_unreachable:
            return
        self._told_unreachable.add(tier)
        self.notify_user(
            types.MessageType.Warning, f"the {tier} tier is failing ({detail}); working on the local model"
        )

    def local_notice(self, severity: str, message: str) -> None:
        """From the local engine's client (any thread): it crashed, or a model is marked bad."""
        kind = types.MessageType.Error if severity == "error" else types.MessageType.Warning
        loop = self.event_loop
        if loop is not None:
            loop.call_soon_threadsafe(self.notify_user, kind, message)

    def policy_reloaded(self) -> None:
        self._told_unreachable.clear()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cancellable(self, work: Awaitable[T]) -> T:
        """A workspace/executeCommand handler's work, cancelled by $/cancelRequest (see protocol.py)."""
        msg_id = self.protocol.msg_id
        current = asyncio.current_task()
        if msg_id is not None and current is not None:
            self.protocol.command_tasks[msg_id] = current
        try:
            return await work
        finally:
            if msg_id is not None:
                self.protocol.command_tasks.pop(msg_id, None)
