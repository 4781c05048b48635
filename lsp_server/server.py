"""Thin LSP handlers (pygls 2): translate between the protocol and the engine."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pydantic import ValidationError
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from . import __version__
from .backends.base import CancelToken
from .config import ServerConfig, describe_validation_error
from .engine import CompletionResult, Engine
from .positions import Encoding, clamp_position, normalize_encoding, split_lines
from .tasks.completion_prompt import CompletionInput, ContextFile

log = logging.getLogger(__name__)

SERVED_NOTIFICATION = "ninetyten/served"
RECENT_DOCUMENTS = 32


class NinetyTenProtocol(LanguageServerProtocol):
    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):  # type: ignore[override]
        # Prefer UTF-8 whenever the client offers it: no UTF-16 counting on our side.
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            offered = list(general.position_encodings)
            if types.PositionEncodingKind.Utf8 in offered:
                offered.remove(types.PositionEncodingKind.Utf8)
                general.position_encodings = [types.PositionEncodingKind.Utf8, *offered]
        return (yield from super().lsp_initialize(params))


class NinetyTenServer(LanguageServer):
    def __init__(self, config: ServerConfig, explicit_model: str | None = None) -> None:
        super().__init__("ninetyten", __version__, protocol_cls=NinetyTenProtocol)
        self.config = config
        self.explicit_model = explicit_model
        self.engine: Engine | None = None
        self.load_error: str | None = None
        self.recent: OrderedDict[str, None] = OrderedDict()
        self._inflight: CancelToken | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- helpers used by the handlers ----------------------------------------

    @property
    def encoding(self) -> Encoding:
        return normalize_encoding(self.workspace.position_encoding)

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
        return path.name or uri

    def completion_input(self, uri: str, position: types.Position) -> CompletionInput | None:
        document = self.workspace.text_documents.get(uri)
        if document is None:
            return None
        lines = split_lines(document.source)
        line, column = clamp_position(lines, position.line, position.character, self.encoding)
        extra: list[ContextFile] = []
        for other in reversed(self.recent):
            if len(extra) >= self.config.completion.extra_files:
                break
            if other == uri or other not in self.workspace.text_documents:
                continue
            extra.append(ContextFile(self.relative_path(other), self.workspace.text_documents[other].source))
        root = self.workspace.root_path
        return CompletionInput(
            path=self.relative_path(uri),
            text="\n".join(lines),
            line=line,
            character=column,
            extra=extra,
            repo_name=Path(root).name if root else "",
        )

    async def complete(self, uri: str, position: types.Position) -> CompletionResult | None:
        """Run one completion; the newest request wins, an older one comes back empty."""
        if self.engine is None:
            return None
        inp = self.completion_input(uri, position)
        if inp is None:
            return None
        if self._inflight is not None:
            self._inflight.cancel()
        token = self._inflight = CancelToken()
        try:
            result = await self.engine.complete(inp, token)
        except asyncio.CancelledError:
            if token.generation is not None:  # $/cancelRequest: say what was stopped
                usage = token.generation.usage
                self.notify_served(uri, {
                    "tier": "local", "backend": self.engine.local.name, "model": self.engine.local.model_name,
                    "prompt_tokens": usage.prompt_tokens, "cached_prompt_tokens": usage.cached_prompt_tokens,
                    "completion_tokens": usage.completion_tokens, "latency_ms": round(usage.total_ms, 1),
                    "generation_ms": round(usage.generation_ms, 1), "stop_reason": "cancelled",
                }, shown=False)
            raise
        except TimeoutError:
            log.warning("completion skipped: the model is still loading")
            return None
        except Exception as error:
            if self.engine.local.load_failed:
                return None  # reported to the user once, when loading failed
            log.exception("completion failed: %s", error)
            return None
        finally:
            if self._inflight is token:
                self._inflight = None
        self.notify_served(uri, result.summary(), shown=result.text is not None)
        return result

    def notify_served(self, uri: str, summary: dict[str, Any], *, shown: bool) -> None:
        """Tell the client (status bar, demo, tests) what served a request; never its content."""
        self.protocol.notify(SERVED_NOTIFICATION, {"uri": uri, **summary, "shown": shown})

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def create_server(config: ServerConfig | None = None, explicit_model: str | None = None) -> NinetyTenServer:
    server = NinetyTenServer(config or ServerConfig(), explicit_model)

    @server.feature(types.INITIALIZE)
    def initialize(ls: NinetyTenServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and options:
            settings = options.get("ninetyten", options)
            try:
                ls.config = ls.config.merged(settings)
            except ValidationError as error:
                ls.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Error,
                        message=f"ninetyten: ignoring invalid initializationOptions ({describe_validation_error(error)})",
                    )
                )
        ls.engine = Engine(ls.config, explicit_model=ls.explicit_model)
        ls.engine.start()  # resolve and load on the model thread; initialize answers now

    @server.feature(types.INITIALIZED)
    async def initialized(ls: NinetyTenServer, params: types.InitializedParams) -> None:
        ls.spawn(report_loading(ls))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NinetyTenServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NinetyTenServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NinetyTenServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.recent.pop(params.text_document.uri, None)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: NinetyTenServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        result = await ls.complete(params.text_document.uri, params.position)
        if result is None or result.text is None:
            return types.InlineCompletionList(items=[])
        # VS Code renders ghost text only for items that carry a range.
        here = types.Range(start=params.position, end=params.position)
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=result.text, range=here)])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
    async def completion(ls: NinetyTenServer, params: types.CompletionParams) -> types.CompletionList:
        empty = types.CompletionList(is_incomplete=True, items=[])
        mode = ls.config.completion.classic
        has_inline = ls.client_capabilities.text_document is not None and (
            ls.client_capabilities.text_document.inline_completion is not None
        )
        if mode == "never" or (mode == "auto" and has_inline):
            return empty
        result = await ls.complete(params.text_document.uri, params.position)
        if result is None or result.text is None:
            return empty
        return types.CompletionList(is_incomplete=True, items=[completion_item(result, params.position)])

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: NinetyTenServer, params: Any) -> None:
        if ls._inflight is not None:
            ls._inflight.cancel()
        if ls.engine is not None:
            ls.engine.close()

    return server


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
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"ninetyten: {error}"))
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
