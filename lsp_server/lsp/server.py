"""Thin LSP handlers (pygls 2): translate between the protocol and the engine."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pygls.lsp.server import LanguageServer
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import RPCRequest

from lsp_server import __version__
from lsp_server.backends.base import CancelToken
from lsp_server.config import ServerConfig, describe_validation_error
from lsp_server.assist.run import assist
from lsp_server.completion.complete import Completer
from lsp_server.completion.service import CompletionService
from lsp_server.engine.results import AssistResult, CompletionResult
from lsp_server.engine.core import Engine
from lsp_server.ledger import Ledger
from lsp_server.ledger.outlets import attach as attach_ledger_outlets
from lsp_server.routing.watch import PolicyEvent, PolicyWatcher, initial_policy
from lsp_server.lsp.convert import Encoding, clamp_position, normalize_encoding, split_lines, to_client_character
from lsp_server.routing.policy import LoadedPolicy, PolicyError, parse_policy
from lsp_server.tiers import TierName
from lsp_server.routing.policy_trust import TrustStore, approve_policy, trust_state, untrusted_notice
from lsp_server.lsp.transport import INVALID_REQUEST, PARSE_ERROR, send_error, serve_stream
from lsp_server.assist.prompts import AssistInput
from lsp_server.completion.prompt import CompletionInput, ContextFile

log = logging.getLogger(__name__)

SERVED_NOTIFICATION = "ninetyten/served"
EXPLAIN_REQUEST = "ninetyten/explain"
EXPLAIN_SELECTION_COMMAND = "ninetyten.explainSelection"
REFACTOR_SELECTION_COMMAND = "ninetyten.refactorSelection"
ASK_COMMAND = "ninetyten.ask"
EXPLAIN_CHANGE_COMMAND = "ninetyten.explainChange"
REPORT_COMMAND = "ninetyten.report"
STATS_REQUEST = "ninetyten/stats"
TOGGLE_OFFLINE_COMMAND = "ninetyten.toggleOffline"
COMPLETION_ACCEPTED_COMMAND = "ninetyten.completionAccepted"
REFACTOR_REQUEST = "ninetyten/refactor"
ASK_REQUEST = "ninetyten/ask"
# The repository policy's trust state: a request (ask any time) and a notification (on change).
POLICY_TRUST = "ninetyten/policyTrust"
TRUST_POLICY_COMMAND = "ninetyten.trustPolicy"
UNTRUST_POLICY_COMMAND = "ninetyten.untrustPolicy"
RECENT_DOCUMENTS = 32
DIAGNOSTIC_SOURCE = "ninetyten policy"


class NinetyTenProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # workspace/executeCommand runs our coroutine as a task of its own, which pygls does
        # not cancel on $/cancelRequest: keep them by request id and cancel them ourselves.
        self.command_tasks: dict[Any, asyncio.Task[Any]] = {}

    initialize_seen = False

    def structure_message(self, data: dict[str, Any]) -> Any:
        """Params that fail validation get an InvalidParams answer, not silence."""
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            method = data.get("method")
            if "id" in data and isinstance(method, str):
                send_error(self, data["id"], INVALID_PARAMS, f"invalid params for {method}: {_validation_detail(error)}")
            else:
                log.warning("dropping a malformed %s message: %s", method or "JSON-RPC", _validation_detail(error))
            return _ANSWERED

    def handle_message(self, message: Any) -> None:
        if message is _ANSWERED:
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
        super()._check_handler_result(future)
        # pygls files every notification's future under a fresh random id and never removes
        # it: one leaked future per keystroke. Only requests in flight stay in this dict.
        for key in [key for key, value in self._request_futures.items() if value is future]:
            del self._request_futures[key]

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        task = self.command_tasks.pop(msg_id, None)
        if task is not None:
            task.cancel()
        super()._handle_cancel_notification(msg_id)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):  # type: ignore[override]
        self.initialize_seen = True
        # Prefer UTF-8 whenever the client offers it: no UTF-16 counting on our side.
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            offered = list(general.position_encodings)
            if types.PositionEncodingKind.Utf8 in offered:
                offered.remove(types.PositionEncodingKind.Utf8)
                general.position_encodings = [types.PositionEncodingKind.Utf8, *offered]
        return (yield from super().lsp_initialize(params))


INVALID_PARAMS = -32602
WINDOW_STEP = 256
SERVER_NOT_INITIALIZED = -32002
_ANSWERED = object()  # a message already answered (or dropped) while it was parsed


def _validation_detail(error: BaseException) -> str:
    cause = error.__cause__
    if cause is None:
        return str(error) or type(error).__name__
    try:
        from cattrs import transform_error

        details = transform_error(cause)  # type: ignore[arg-type]
        return "; ".join(details[:3])
    except Exception:
        return str(cause)[:200]


def _exit_on_sigterm(server: "NinetyTenServer") -> Any:
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


def _clip_long_lines(lines: list[str], line: int, column: int, limit: int) -> tuple[list[str], int]:
    """Minified files: keep `limit` characters of each line, the cursor's line around the cursor."""
    clipped = [text if len(text) <= limit else text[:limit] for text in lines]
    current = lines[line]
    if len(current) > limit:
        start = max(0, column - limit * 3 // 4) // 512 * 512  # in steps, so typing keeps the cache
        clipped[line] = current[start:start + limit]
        column -= start
    return clipped, column


def _handle_body(protocol: Any, body: bytes) -> None:
    try:
        message = json.loads(body, object_hook=protocol.structure_message)
    except (ValueError, UnicodeDecodeError) as error:
        send_error(protocol, None, PARSE_ERROR, f"parse error: {error}")
        return
    try:
        protocol.handle_message(message)
    except Exception:  # never let one message end the read loop
        log.exception("handling a message failed")


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Pos(_Params):
    line: int = Field(ge=0)
    character: int = Field(ge=0)


class _Range(_Params):
    start: _Pos
    end: _Pos


class _Doc(_Params):
    uri: str


class AssistParams(_Params):
    """Params of ninetyten/explain, ninetyten/refactor and ninetyten/ask."""

    text_document: _Doc = Field(alias="textDocument")
    range: _Range | None = None
    instruction: str = Field("", max_length=4000)
    question: str = Field("", max_length=4000)
    apply: bool = False


class NinetyTenServer(LanguageServer):
    def __init__(self, config: ServerConfig, explicit_model: str | None = None, policy: str | None = None) -> None:
        super().__init__("ninetyten", __version__, protocol_cls=NinetyTenProtocol)
        self.config = config
        self.explicit_model = explicit_model
        self.explicit_policy = policy
        self.engine: Engine | None = None
        self.completer: Completer | None = None
        self.load_error: str | None = None
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.watcher: PolicyWatcher | None = None
        self.policy_diagnostics_uri: str | None = None
        self._told_unreachable: set[str] = set()
        self.loaded_policy: LoadedPolicy | None = None
        # A client that asks the user itself (VS Code's Trust / Keep local) gets no showMessage.
        self.client_prompts_for_trust = False
        self._trust_key: tuple[object, ...] | None = None
        self._told_untrusted: set[str] = set()
        self.completions = CompletionService(config.completion, self.notify_served)
        self._background: set[asyncio.Task[Any]] = set()

    # -- transport: our own frame reader (see transport.py) -----------------

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        from pygls.io_ import StdinAsyncReader, StdoutWriter

        self._stop_event = threading.Event()
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        previous = _exit_on_sigterm(self)
        try:
            asyncio.run(serve_stream(self._stop_event, reader, self.protocol, _handle_body))
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.store_ledger_rows()
            self.shutdown()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def store_ledger_rows(self) -> None:
        """The client went away (EOF, SIGTERM) without `shutdown`: store the queued rows now."""
        if self.engine is not None:
            try:
                self.engine.sink.flush()
            except Exception:
                log.exception("storing the ledger rows failed")

    def start_tcp(self, host: str, port: int, token: str) -> None:
        """Serve one client on a TCP address; it must authenticate first (see tcp_auth.py).

        Connections that fail the handshake are answered with one error and closed, and
        the server goes on listening; once the authenticated client leaves, the server ends.
        """
        from lsp_server.lsp.tcp_auth import error_frame, handshake

        self._stop_event = stop_event = threading.Event()
        client_connected = False

        async def refuse(writer: asyncio.StreamWriter, msg_id: Any, message: str) -> None:
            try:
                writer.write(error_frame(msg_id, message))
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

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
            self.protocol.set_writer(writer)  # type: ignore[arg-type]
            _handle_body(self.protocol, first.body)
            await serve_stream(stop_event, reader, self.protocol, _handle_body)
            self.shutdown()

        async def listen() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            async with self._server:
                await self._server.serve_forever()

        try:
            asyncio.run(listen())
        except asyncio.CancelledError:
            pass

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Protocol-level junk is answered with JSON-RPC errors; pop-ups are for real failures.
        if isinstance(error, JsonRpcException):
            log.warning("%s", error)
            return
        super().report_server_error(error, source)

    # -- helpers used by the handlers ----------------------------------------

    @property
    def encoding(self) -> Encoding:
        return normalize_encoding(self.workspace.position_encoding)

    @property
    def workspace_root(self) -> Path | None:
        root = self.workspace.root_path
        return Path(root) if root else None

    def touch(self, uri: str) -> None:
        self.recent[uri] = None
        self.recent.move_to_end(uri)
        while len(self.recent) > RECENT_DOCUMENTS:
            self.recent.popitem(last=False)

    def relative_path(self, uri: str) -> str:
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(parsed.path or uri)
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
        self.notify_user(types.MessageType.Warning,
                         f"the {tier} tier is failing ({detail}); working on the local model")

    # -- policy --------------------------------------------------------------

    def apply_policy_event(self, event: PolicyEvent) -> None:
        if event.error is not None:
            self.publish_policy_error(event.error)
            self.notify_user(types.MessageType.Warning,
                             f"the policy file has errors; the last good policy stays in force ({event.error.path})")
            return
        assert event.loaded is not None
        self.clear_policy_diagnostics()
        if self.engine is not None:
            self.engine.set_policy(event.loaded)
        self._told_unreachable.clear()
        self.policy_trust_changed(event.loaded)
        where = event.loaded.path or "built-in default"
        self.window_log_message(types.LogMessageParams(
            type=types.MessageType.Info,
            message=f"ninetyten: policy {event.loaded.digest} in force ({where})"))
        if event.loaded.policy.offline:
            self.notify_user(types.MessageType.Info, "offline policy: everything runs on the local model")

    def policy_trust_changed(self, loaded: LoadedPolicy) -> None:
        """Tell the client when the trust state changes; tell the user once per file content
        that a repository policy is partly ignored (unless the client asks them itself)."""
        self.loaded_policy = loaded
        key = (loaded.source, loaded.path, loaded.sha256, loaded.trust, loaded.digest)
        if key == self._trust_key:
            return
        self._trust_key = key
        self.protocol.notify(POLICY_TRUST, trust_state(loaded))
        if loaded.needs_approval and loaded.sha256 not in self._told_untrusted:
            self._told_untrusted.add(loaded.sha256 or "")
            if not self.client_prompts_for_trust:
                where = self.relative_path(loaded.path.resolve().as_uri()) if loaded.path else None
                self.notify_user(types.MessageType.Warning, untrusted_notice(loaded, where))

    def reload_policy(self) -> None:
        """Read the policy again now (after an approval), as the watcher would."""
        event = self.watcher.reload() if self.watcher is not None else initial_policy(
            self.explicit_policy, self.workspace_root)
        self.apply_policy_event(event)

    def policy_trust(self) -> dict[str, Any]:
        if self.loaded_policy is None:
            return {"error": "the server is not initialized"}
        return trust_state(self.loaded_policy)

    def trust_policy(self, args: tuple[Any, ...], *, trust: bool) -> dict[str, Any]:
        """Record the user's approval of the repository policy they were shown (by its digest),
        or withdraw it; the policy in force follows at once."""
        loaded = self.loaded_policy
        if loaded is None or loaded.source != "workspace" or loaded.path is None:
            return {"error": "there is no repository policy here to trust"}
        params = _command_params(args, "trust")
        try:
            if trust:
                shown = params.get("sha256")
                if not isinstance(shown, str) or not shown:
                    return {"error": "trustPolicy needs the sha256 of the policy that was shown"}
                approve_policy(loaded.path, expected_sha256=shown)
            else:
                TrustStore().revoke(loaded.path)
        except (PolicyError, OSError) as error:
            return {"error": str(error)}
        self.reload_policy()
        return self.policy_trust()

    def publish_policy_error(self, error: PolicyError, uri: str | None = None) -> None:
        if error.path is None and uri is None:
            return
        uri = uri or error.path.resolve().as_uri()  # type: ignore[union-attr]
        diagnostics = []
        for line, key, message in error.problems:
            row = max((line or 1) - 1, 0)
            diagnostics.append(types.Diagnostic(
                range=types.Range(types.Position(row, 0), types.Position(row, 10_000)),
                message=f"{key}: {message}" if key else message,
                severity=types.DiagnosticSeverity.Error,
                source=DIAGNOSTIC_SOURCE,
            ))
        self.policy_diagnostics_uri = uri
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    def clear_policy_diagnostics(self, uri: str | None = None) -> None:
        uri = uri or self.policy_diagnostics_uri
        if uri:
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        if uri == self.policy_diagnostics_uri:
            self.policy_diagnostics_uri = None

    def check_policy_document(self, uri: str) -> None:
        """Validate an open policy.toml as the user types (applied only once saved)."""
        path = Path(unquote(urlparse(uri).path))
        if path.name != "policy.toml":
            return
        document = self.workspace.text_documents.get(uri)
        if document is None:
            return
        try:
            parse_policy(document.source, path)
        except PolicyError as error:
            self.publish_policy_error(error, uri)
            return
        self.clear_policy_diagnostics(uri)

    # -- completion ----------------------------------------------------------

    def completion_input(self, uri: str, position: types.Position) -> CompletionInput | None:
        document = self.workspace.text_documents.get(uri)
        if document is None:
            return None
        source = document.source
        lines = split_lines(source)
        line, column = clamp_position(lines, position.line, position.character, self.encoding)
        limits = self.config.completion
        if len(source) > limits.max_document_chars:
            # Only a window around the cursor is considered; its start moves in large steps
            # so the prompt (and the KV cache) stays put while the user types.
            start = max(0, line - limits.window_lines) // WINDOW_STEP * WINDOW_STEP
            lines = lines[start:line + limits.window_lines + 1]
            line -= start
        if max(map(len, lines)) > limits.max_line_chars:
            lines, column = _clip_long_lines(lines, line, column, limits.max_line_chars)
        extra: list[ContextFile] = self.completions.context_for(uri)
        root = self.workspace_root
        return CompletionInput(
            path=self.relative_path(uri),
            text="\n".join(lines),
            line=line,
            character=column,
            extra=extra,
            repo_name=root.name if root else "",
        )

    async def complete(self, uri: str, position: types.Position, *, invoked: bool = True
                       ) -> CompletionResult | None:
        """One completion through the cache / debounce / newest-wins pipeline."""
        if self.engine is None:
            return None
        inp = self.completion_input(uri, position)
        if inp is None:
            return None
        if self.completer is None or self.completer.engine is not self.engine:
            self.completer = Completer(self.engine)
        return await self.completions.complete(self.completer, uri, inp, invoked=invoked)

    def document_texts(self, uri: str) -> tuple[str, str] | None:
        document = self.workspace.text_documents.get(uri)
        return None if document is None else (self.relative_path(uri), document.source)

    def notify_served(self, uri: str, summary: dict[str, Any], shown: bool) -> None:
        """Tell the client (status bar, demo, tests) what served a request; never its content."""
        extra: dict[str, Any] = {}
        if self.engine is not None:
            extra = {"savings_today_usd": round(self.engine.savings_today_usd(), 6),
                     "offline": self.engine.policy.offline}
        self.protocol.notify(SERVED_NOTIFICATION, {"uri": uri, **summary, **extra, "shown": shown})

    # -- report / offline / feedback ----------------------------------------------

    async def report(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """The cost report as plain text (for a panel) and as JSON (for a client to draw)."""
        import io

        from rich.console import Console

        from lsp_server.ledger.report import build_report, parse_since
        from lsp_server.ledger.terminal import render_report

        params = _command_params(args, "report")
        since = params.get("since", "today")
        if self.engine is None or self.engine.sink.ledger is None:
            return {"error": "the server is not initialized"}
        try:
            start = parse_since(since if isinstance(since, str) else None)
        except ValueError as error:
            return {"error": str(error)}
        engine = self.engine
        ledger = engine.sink.ledger

        def build() -> Any:
            engine.sink.flush()  # rows of the requests just served count too
            return build_report(ledger, start)

        try:
            report = await asyncio.to_thread(build)
        except Exception as error:  # an unreadable ledger is a message, not a crash
            return {"error": f"the ledger could not be read: {error}"}
        buffer = io.StringIO()
        render_report(report, Console(file=buffer, width=110, color_system=None, force_terminal=False,
                                      legacy_windows=False))
        return {"text": buffer.getvalue(), "report": report.model_dump(mode="json")}

    def toggle_offline(self, args: tuple[Any, ...]) -> dict[str, Any]:
        if self.engine is None:
            return {"error": "the server is not initialized"}
        params = _command_params(args, "offline")
        wanted = params.get("offline")
        offline = (not self.engine.forced_offline) if not isinstance(wanted, bool) else wanted
        self.engine.set_offline(offline)
        effective = self.engine.policy.offline
        if effective and not offline:
            message = "the policy itself is offline: everything stays on the local model"
        else:
            message = ("offline: everything runs on the local model" if effective
                       else "online: the policy's remote tiers are back in use")
        self.notify_user(types.MessageType.Info, message)
        return {"offline": effective, "forced": self.engine.forced_offline}

    def completion_accepted(self, args: tuple[Any, ...]) -> dict[str, Any]:
        params = _command_params(args, "accepted")
        request_id = params.get("requestId")
        if self.engine is None or not isinstance(request_id, str) or not request_id:
            return {"error": "completionAccepted needs a requestId"}
        try:
            self.engine.feedback(request_id, accepted=True)
        except Exception as error:
            return {"error": f"invalid requestId: {error}"}
        return {"accepted": True}

    # -- explain / refactor / ask ------------------------------------------------

    def assist_input(self, task: str, params: AssistParams) -> tuple[AssistInput, types.Range]:
        uri = params.text_document.uri
        document = self.workspace.text_documents.get(uri)
        if document is None:
            raise ValueError(f"{uri} is not open")
        lines = split_lines(document.source)
        if params.range is None:
            start, end = (0, 0), (len(lines) - 1, len(lines[-1]))
        else:
            start = clamp_position(lines, params.range.start.line, params.range.start.character, self.encoding)
            end = clamp_position(lines, params.range.end.line, params.range.end.character, self.encoding)
            if end < start:
                start, end = end, start
        if start[0] == end[0]:
            code = lines[start[0]][start[1]:end[1]]
        else:
            code = "\n".join([lines[start[0]][start[1]:], *lines[start[0] + 1:end[0]], lines[end[0]][:end[1]]])
        client_range = types.Range(
            types.Position(start[0], to_client_character(lines[start[0]], start[1], self.encoding)),
            types.Position(end[0], to_client_character(lines[end[0]], end[1], self.encoding)),
        )
        instruction = params.instruction or params.question
        return AssistInput(task=task, code=code, path=self.relative_path(uri),  # type: ignore[arg-type]
                           language=document.language_id, instruction=instruction), client_range

    async def assist(self, task: str, raw: Any) -> dict[str, Any]:
        try:
            params = AssistParams.model_validate(_plain(raw))
            inp, selection = self.assist_input(task, params)
        except (ValidationError, ValueError) as error:
            return {"error": f"invalid {task} request: {error}"}
        if task == "refactor" and not inp.instruction.strip():
            return {"error": "a refactor needs an instruction (the `instruction` argument)"}
        if self.engine is None:
            return {"error": "the server is not initialized"}
        token = CancelToken()
        try:
            result: AssistResult = await assist(self.engine, inp, cancel=token, auto_apply=params.apply)
        except asyncio.CancelledError:
            token.cancel()
            raise
        answer = result.to_json()
        if task == "refactor" and result.text is not None and not self.edit_keeps_file_valid(
                params.text_document.uri, selection, result.text):
            answer["error"] = "the refactored code would break the file's syntax; nothing was changed"
            return answer
        if task == "refactor" and result.text is not None:
            document = self.workspace.text_documents.get(params.text_document.uri)
            edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=params.text_document.uri, version=document.version if document else None),
                edits=[types.TextEdit(selection, result.text)])])
            answer["edit"] = self.protocol._converter.unstructure(edit)
            if params.apply:
                applied = await self.workspace_apply_edit_async(
                    types.ApplyWorkspaceEditParams(edit=edit, label="ninetyten: refactor"))
                answer["applied"] = bool(applied and applied.applied)
        return answer

    def edit_keeps_file_valid(self, uri: str, selection: types.Range, new_text: str) -> bool:
        """A Python file that parsed before the edit must parse after it."""
        document = self.workspace.text_documents.get(uri)
        if document is None or document.language_id != "python":
            return True
        from lsp_server.routing.escalation import parses

        lines = split_lines(document.source)
        start = clamp_position(lines, selection.start.line, selection.start.character, self.encoding)
        end = clamp_position(lines, selection.end.line, selection.end.character, self.encoding)
        text = "\n".join(lines)
        offsets = [sum(len(line) + 1 for line in lines[:row]) + col for row, col in (start, end)]
        after = text[: offsets[0]] + new_text + text[offsets[1]:]
        return not parses(text, "python") or parses(after, "python")

    async def run_command(self, task: str, args: tuple[Any, ...]) -> dict[str, Any]:
        """A command from a code action: cancellable, with $/progress while it runs."""
        msg_id = self.protocol.msg_id
        current = asyncio.current_task()
        if msg_id is not None and current is not None:
            self.protocol.command_tasks[msg_id] = current
        try:
            raw = _command_params(args, task)
            return await self.assist(task, raw) if task != "explain_change" else await self.explain_change(raw)
        finally:
            if msg_id is not None:
                self.protocol.command_tasks.pop(msg_id, None)

    async def explain_change(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Explain the working-tree change of one file (or the whole workspace), or what is staged."""
        from lsp_server.explain.diff import DiffError, parse_diff, staged_diff, working_tree_diff
        from lsp_server.explain.pipeline import explain_changes

        if self.engine is None:
            return {"error": "the server is not initialized"}
        root = self.workspace_root
        if root is None:
            return {"error": "explaining a change needs a workspace folder (a git repository)"}
        uri = (raw.get("textDocument") or {}).get("uri")
        path = self.relative_path(uri) if uri else None
        try:
            staged = raw.get("staged") is True
            changes = parse_diff(staged_diff(root) if staged else working_tree_diff(root, path))
        except DiffError as error:
            return {"error": str(error)}
        if not changes:
            return {"explanation": None,
                    "error": "nothing is staged (git add some changes first)" if staged else "nothing changed"}
        token = f"ninetyten-explain-{uuid.uuid4().hex[:8]}"
        progress_ok = bool(self.client_capabilities.window and self.client_capabilities.window.work_done_progress)
        if progress_ok:
            try:
                await self.work_done_progress.create_async(token)
                self.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                    title="ninetyten: explaining the change", percentage=0, cancellable=False))
            except Exception:
                progress_ok = False

        def progress(done: int, total: int, what: str) -> None:
            if progress_ok:
                self.work_done_progress.report(token, types.WorkDoneProgressReport(
                    message=what, percentage=int(100 * done / max(total, 1))))

        try:
            result = await explain_changes(self.engine, changes, progress=progress)
        finally:
            if progress_ok:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
        return result.to_json()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _command_params(args: tuple[Any, ...], task: str) -> dict[str, Any]:
    """Command arguments: one object like the custom requests take, or (uri, range, text)."""
    values = [_plain(arg) for arg in args]
    if len(values) == 1 and isinstance(values[0], dict):
        return values[0]
    params: dict[str, Any] = {}
    if values and isinstance(values[0], str):
        params["textDocument"] = {"uri": values[0]}
    if len(values) > 1 and isinstance(values[1], dict):
        params["range"] = values[1]
    if len(values) > 2 and isinstance(values[2], str):
        params["question" if task == "ask" else "instruction"] = values[2]
    return params


def _plain(value: Any) -> Any:
    """pygls hands custom-request params over as namedtuples; pydantic wants dicts."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def create_server(config: ServerConfig | None = None, explicit_model: str | None = None,
                  policy: str | None = None) -> NinetyTenServer:
    server = NinetyTenServer(config or ServerConfig(), explicit_model, policy)

    @server.feature(types.INITIALIZE)
    def initialize(ls: NinetyTenServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and options:
            settings = options.get("ninetyten", options)
            try:
                ls.config = ls.config.merged(settings)
            except ValidationError as error:
                ls.notify_user(types.MessageType.Error,
                               f"ignoring invalid initializationOptions ({describe_validation_error(error)})")
            ls.completions.reconfigure(ls.config.completion)
        experimental = _plain(params.capabilities.experimental)
        ours = experimental.get("ninetyten") if isinstance(experimental, dict) else None
        ls.client_prompts_for_trust = isinstance(ours, dict) and ours.get("policyTrustPrompt") is True
        event = initial_policy(ls.explicit_policy, ls.workspace_root)
        ls.loaded_policy = event.loaded
        ledger = Ledger()
        ls.engine = Engine(ls.config, explicit_model=ls.explicit_model, policy=event.loaded, ledger=ledger,
                           on_remote_unreachable=ls.tier_unreachable)
        loop = asyncio.get_running_loop()  # the team ledger's warnings come from its own threads
        attach_ledger_outlets(ls.engine.sink, workspace=ls.workspace_root, notify=lambda message: (
            loop.call_soon_threadsafe(ls.notify_user, types.MessageType.Warning, message)))
        ls.engine.start()  # resolve and load on the model thread; initialize answers now
        if event.error is not None:
            ls.spawn(_report_initial_policy_error(ls, event.error))

    @server.feature(types.INITIALIZED)
    async def initialized(ls: NinetyTenServer, params: types.InitializedParams) -> None:
        ls.spawn(report_loading(ls))
        if ls.engine is not None and ls.engine.policy.offline:
            ls.notify_user(types.MessageType.Info, "offline policy: everything runs on the local model")
        if ls.loaded_policy is not None:
            ls.policy_trust_changed(ls.loaded_policy)
        ls.watcher = PolicyWatcher(ls.explicit_policy, ls.workspace_root, ls.apply_policy_event)
        ls.spawn(ls.watcher.run())

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NinetyTenServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)
        document = params.text_document
        ls.completions.opened(document.uri, ls.relative_path(document.uri), document.text)
        ls.check_policy_document(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NinetyTenServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)
        first = params.content_changes[0] if params.content_changes else None
        line = first.range.start.line if first is not None and hasattr(first, "range") else 0
        ls.completions.changed(params.text_document.uri, line, ls.document_texts)
        ls.check_policy_document(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NinetyTenServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.recent.pop(params.text_document.uri, None)
        ls.completions.closed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: NinetyTenServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        result = await ls.complete(params.text_document.uri, params.position, invoked=invoked)
        if result is None or result.text is None:
            return types.InlineCompletionList(items=[])
        # VS Code renders ghost text only for items that carry a range.
        here = types.Range(start=params.position, end=params.position)
        accepted = types.Command(title="ninetyten: completion accepted", command=COMPLETION_ACCEPTED_COMMAND,
                                 arguments=[{"requestId": result.request_id}])
        return types.InlineCompletionList(items=[
            types.InlineCompletionItem(insert_text=result.text, range=here, command=accepted)])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
    async def completion(ls: NinetyTenServer, params: types.CompletionParams) -> types.CompletionList:
        empty = types.CompletionList(is_incomplete=True, items=[])
        mode = ls.config.completion.classic
        has_inline = ls.client_capabilities.text_document is not None and (
            ls.client_capabilities.text_document.inline_completion is not None
        )
        if mode == "never" or (mode == "auto" and has_inline):
            return empty
        invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        result = await ls.complete(params.text_document.uri, params.position, invoked=invoked)
        if result is None or result.text is None:
            return empty
        return types.CompletionList(is_incomplete=True, items=[completion_item(result, params.position)])

    @server.feature(STATS_REQUEST)
    def stats(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return {**ls.completions.stats.to_json(), "cache_entries": len(ls.completions.cache),
                "context_chunks": len(ls.completions.ring),
                # requests the protocol still tracks: anything beyond those in flight is a leak
                "tracked_requests": len(ls.protocol._request_futures)}

    @server.feature(EXPLAIN_REQUEST)
    async def explain(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return await ls.assist("explain", params)

    @server.feature(REFACTOR_REQUEST)
    async def refactor(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return await ls.assist("refactor", params)

    @server.feature(ASK_REQUEST)
    async def ask(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return await ls.assist("ask", params)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite,
                                                   types.CodeActionKind.Empty]),
    )
    def code_actions(ls: NinetyTenServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        target = {"textDocument": {"uri": uri},
                  "range": ls.protocol._converter.unstructure(params.range)}
        actions = [types.CodeAction(
            title="ninetyten: Explain this change",
            kind=types.CodeActionKind.Empty,
            command=types.Command(title="ninetyten: Explain this change", command=EXPLAIN_CHANGE_COMMAND, arguments=[{"textDocument": {"uri": uri}}]),
        )]
        if params.range.start != params.range.end:
            actions[:0] = [
                types.CodeAction(title="ninetyten: Explain selection", kind=types.CodeActionKind.Empty,
                                 command=types.Command(title="ninetyten: Explain selection", command=EXPLAIN_SELECTION_COMMAND, arguments=[target])),
                types.CodeAction(title="ninetyten: Refactor selection…", kind=types.CodeActionKind.RefactorRewrite,
                                 command=types.Command(title="ninetyten: Refactor selection…", command=REFACTOR_SELECTION_COMMAND, arguments=[{**target, "apply": True}])),
                types.CodeAction(title="ninetyten: Ask about selection", kind=types.CodeActionKind.Empty,
                                 command=types.Command(title="ninetyten: Ask about selection", command=ASK_COMMAND, arguments=[target])),
            ]
        return actions

    @server.command(EXPLAIN_SELECTION_COMMAND)
    async def explain_selection_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await ls.run_command("explain", args)

    @server.command(REFACTOR_SELECTION_COMMAND)
    async def refactor_selection_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await ls.run_command("refactor", args)

    @server.command(ASK_COMMAND)
    async def ask_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await ls.run_command("ask", args)

    @server.command(EXPLAIN_CHANGE_COMMAND)
    async def explain_change_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await ls.run_command("explain_change", args)

    @server.command(REPORT_COMMAND)
    async def report_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await ls.report(args)

    @server.command(TOGGLE_OFFLINE_COMMAND)
    def toggle_offline_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return ls.toggle_offline(args)

    @server.feature(POLICY_TRUST)
    def policy_trust(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return ls.policy_trust()

    @server.command(TRUST_POLICY_COMMAND)
    def trust_policy_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return ls.trust_policy(args, trust=True)

    @server.command(UNTRUST_POLICY_COMMAND)
    def untrust_policy_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return ls.trust_policy(args, trust=False)

    @server.command(COMPLETION_ACCEPTED_COMMAND)
    def completion_accepted_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return ls.completion_accepted(args)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: NinetyTenServer, params: Any) -> None:
        if ls.watcher is not None:
            ls.watcher.stop()
        ls.completions.stop_running()
        if ls.engine is not None:
            await ls.engine.aclose()

    return server


async def _report_initial_policy_error(ls: NinetyTenServer, error: PolicyError) -> None:
    ls.publish_policy_error(error)
    ls.notify_user(types.MessageType.Error,
                   f"the policy file has errors; using the built-in default (everything local) until it is fixed: "
                   f"{error.path}:{error.first_line or '?'}")


def completion_item(result: CompletionResult, position: types.Position) -> types.CompletionItem:
    """The same text as the inline completion, shaped for clients without ghost text."""
    assert result.text is not None
    first = result.text.strip().split("\n", 1)[0]
    label = first if len(first) <= 60 else first[:59] + "…"
    if "\n" in result.text.strip():
        label += " …"
    return types.CompletionItem(
        label=label or result.text,
        kind=types.CompletionItemKind.Snippet,
        detail=f"ninetyten · {result.tier} · {result.model}",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{result.text}\n```"),
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=position, end=position), new_text=result.text),
        sort_text="0",
        filter_text=result.text,
        preselect=True,
    )


async def report_loading(ls: NinetyTenServer) -> None:
    """Work-done progress while the model loads, then one log line (or one error)."""
    engine = ls.engine
    if engine is None:
        return
    capabilities = ls.client_capabilities.window
    token: str | None = None
    if capabilities is not None and capabilities.work_done_progress:
        token = f"ninetyten-load-{uuid.uuid4().hex[:8]}"
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="ninetyten", message="loading the local model", cancellable=False)
            )
        except Exception:  # a client may refuse the token; loading goes on regardless
            token = None
    started = time.perf_counter()
    try:
        await engine.wait_ready(timeout=None)
    except Exception as error:
        ls.load_error = str(error)
        if token:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="model failed to load"))
        ls.notify_user(types.MessageType.Error, str(error))
        return
    seconds = time.perf_counter() - started
    backend = engine.local
    mode = "fill-in-the-middle" if backend.fim is not None else "prefix-only"
    if token:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=f"ready in {seconds:.1f}s"))
    ls.window_log_message(
        types.LogMessageParams(
            type=types.MessageType.Info,
            message=f"ninetyten: local model {backend.model_name} ready ({mode}, context {backend.n_ctx} tokens)",
        )
    )
