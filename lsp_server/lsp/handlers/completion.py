"""Inline completions (and textDocument/completion for older clients), the served notification,
stats and the accept command."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from lsprotocol import types
from pydantic import ValidationError

from lsp_server.completion.complete import Completer
from lsp_server.completion.prompt import CompletionInput, ContextFile
from lsp_server.completion.service import CompletionService, Gather
from lsp_server.config import CompletionConfig, describe_validation_error
from lsp_server.engine.core import Engine
from lsp_server.engine.results import CompletionResult
from lsp_server.ledger.row import PartialAccept
from lsp_server.lsp.convert import clamp_position, clip_long_lines, file_path, split_lines, window
from lsp_server.lsp.ids import COMPLETION_ACCEPTED_COMMAND, SERVED_NOTIFICATION, STATS_REQUEST, WARM_NOTIFICATION
from lsp_server.lsp.params import AcceptedParams, WarmParams, command_params, plain
from lsp_server.lsp.server import NinetyTenServer

log = logging.getLogger(__name__)


class CompletionFeature:
    """The completion service's state for this client, and the protocol around it."""

    def __init__(self, ls: NinetyTenServer) -> None:
        self.ls = ls
        self.service = CompletionService(ls.config.completion, self.notify_served)
        self._completer: Completer | None = None

    def reconfigure(self, config: CompletionConfig) -> None:
        self.service.reconfigure(config)

    # -- document events -----------------------------------------------------

    def opened(self, uri: str, text: str) -> None:
        self.service.opened(uri, file_path(uri), text)

    def changed(self, uri: str, changes: list[tuple[int, int, str]]) -> None:
        self.service.changed(uri, self.ls.relative_path(uri), changes)

    def closed(self, uri: str) -> None:
        self.service.closed(uri, file_path(uri))

    def document_text(self, uri: str) -> str | None:
        document = self.ls.document(uri)
        return None if document is None else document.source

    def open_text(self, path: Path) -> str | None:
        """The editor's text of the file at `path`, if it is open (it may be unsaved)."""
        return self.document_text(path.as_uri())

    def start_context(self) -> None:
        """Index the workspace folders in the background (once the client is initialized)."""
        folders = [file_path(folder.uri) for folder in self.ls.workspace.folders.values()]
        found = [folder for folder in folders if folder is not None]
        root = self.ls.workspace_root
        self.service.context.start(found or ([root] if root is not None else []))

    def shutdown(self) -> None:
        self.service.close()

    def model_changed(self) -> None:
        """Another model serves completions now: nothing of the old one is shown again."""
        self.service.stop_running()
        self.service.cache.clear()
        self._completer = None

    # -- requests --------------------------------------------------------------

    def completion_input(self, uri: str, position: types.Position) -> CompletionInput | None:
        """The prompt's input for a cursor, repository context included."""
        prepared = self.prepare_input(uri, position)
        if prepared is None:
            return None
        inp, gather = prepared
        return dataclasses.replace(inp, extra=gather())

    def prepare_input(self, uri: str, position: types.Position) -> tuple[CompletionInput, Gather] | None:
        """The input without its repository context, and how to gather that context: a request
        answered from the cache, or replaced by the next keystroke while it waits out the
        debounce, never needs it."""
        document = self.ls.document(uri)
        if document is None:
            return None
        limits = self.ls.config.completion
        source = document.source
        lines = split_lines(source)
        line, column = clamp_position(lines, position.line, position.character, self.ls.encoding)

        at_line, at_column = line, column  # in the whole document (the prompt may get a window of it)

        def gather() -> list[ContextFile]:
            return self.service.context.files(
                uri, file_path(uri), source, at_line, at_column, text_of=self.document_text, open_text=self.open_text
            )

        if len(source) > limits.max_document_chars:  # only a window around the cursor
            lines, line = window(lines, line, limits.window_lines)
        if max(map(len, lines)) > limits.max_line_chars:
            lines, column = clip_long_lines(lines, line, column, limits.max_line_chars)
        root = self.ls.workspace_root
        inp = CompletionInput(
            path=self.ls.relative_path(uri),
            text="\n".join(lines),
            line=line,
            character=column,
            repo_name=root.name if root else "",
        )
        return inp, gather

    async def complete(self, uri: str, position: types.Position, *, invoked: bool) -> CompletionResult | None:
        """One completion through the cache / debounce / newest-wins pipeline."""
        engine = self.ls.engine
        prepared = self.prepare_input(uri, position) if engine is not None else None
        if engine is None or prepared is None:
            return None
        inp, gather = prepared
        return await self.service.complete(self.completer(engine), uri, inp, invoked=invoked, gather=gather)

    def completer(self, engine: Engine) -> Completer:
        if self._completer is None or self._completer.engine is not engine:
            self._completer = Completer(engine)
        return self._completer

    def warm(self, uri: str, position: types.Position, *, opened: bool = False) -> None:
        """Warm the model's cache for a cursor (see CompletionService.warm); never waits."""
        engine = self.ls.engine
        if engine is None or not self.ls.config.completion.warm:
            return
        prepared = self.prepare_input(uri, position)
        if prepared is None:
            return
        inp, gather = prepared
        self.service.warm(self.completer(engine), inp, opened=opened, spawn=self.ls.spawn, gather=gather)

    def warm_focused(self, params: Any) -> None:
        """ninetyten/warm from the editor: a document got the focus, with its cursor."""
        try:
            request = WarmParams.model_validate(plain(params))
        except ValidationError as error:
            log.warning("ignoring a malformed %s: %s", WARM_NOTIFICATION, describe_validation_error(error))
            return
        position = types.Position(line=request.position.line, character=request.position.character)
        self.warm(request.text_document.uri, position)

    def notify_served(self, uri: str, summary: dict[str, Any], shown: bool) -> None:
        """Tell the client (status bar, demo, tests) what served a request; never its content."""
        engine = self.ls.engine
        extra: dict[str, Any] = (
            {}
            if engine is None
            else {"savings_today_usd": round(engine.savings_today_usd(), 6), "offline": engine.policy.offline}
        )
        self.ls.protocol.notify(SERVED_NOTIFICATION, {"uri": uri, **summary, **extra, "shown": shown})

    def accepted(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A suggestion accepted whole, or in part (a word or a line at a time: the counts of
        what was kept so far, never the text)."""
        engine = self.ls.engine
        try:
            params = AcceptedParams.model_validate(raw)
            partial = partial_accept(params)
        except ValidationError as error:
            return {"error": f"completionAccepted needs a requestId: {describe_validation_error(error)}"}
        if engine is None:
            return {"error": "completionAccepted needs a requestId"}
        try:
            if partial is not None and partial.kept_chars < partial.shown_chars:
                engine.feedback(params.request_id, partial=partial)
                return {"accepted": "partly"}
            engine.feedback(params.request_id, accepted=True, partial=partial)
        except Exception as error:
            return {"error": f"invalid requestId: {error}"}
        return {"accepted": True}

    def stats(self) -> dict[str, Any]:
        service = self.service
        return {
            **service.stats.to_json(),
            "cache_entries": len(service.cache),
            **service.context.stats(),
            "tracked_requests": self.ls.protocol.requests_in_flight,
        }

    def wants_classic(self) -> bool:
        """textDocument/completion is answered only for clients without inline completion ('auto')."""
        mode = self.ls.config.completion.classic
        text_document = self.ls.client_capabilities.text_document
        has_inline = text_document is not None and text_document.inline_completion is not None
        return mode == "always" or (mode == "auto" and not has_inline)


def partial_accept(params: AcceptedParams) -> PartialAccept | None:
    """The counts of a partial accept, when the client sent them (all four or none)."""
    counts = (params.kept_chars, params.shown_chars, params.kept_words, params.shown_words)
    if all(count is None for count in counts):
        return None
    kept_chars, shown_chars, kept_words, shown_words = (count or 0 for count in counts)
    return PartialAccept(kept_chars=kept_chars, shown_chars=shown_chars, kept_words=kept_words, shown_words=shown_words)


def inline_items(result: CompletionResult, position: types.Position) -> list[types.InlineCompletionItem]:
    """The suggestion and its alternatives; accepting one tells the server which (its index)."""
    assert result.text is not None
    # VS Code renders ghost text only for items that carry a range.
    here = types.Range(start=position, end=position)
    return [
        types.InlineCompletionItem(
            insert_text=text,
            range=here,
            command=types.Command(
                title="ninetyten: completion accepted",
                command=COMPLETION_ACCEPTED_COMMAND,
                arguments=[{"requestId": result.request_id, "index": index}],
            ),
        )
        for index, text in enumerate([result.text, *result.alternatives])
    ]


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


def register(server: NinetyTenServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: NinetyTenServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        result = await ls.completion_feature.complete(params.text_document.uri, params.position, invoked=invoked)
        if result is None or result.text is None:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(items=inline_items(result, params.position))

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
    async def completion(ls: NinetyTenServer, params: types.CompletionParams) -> types.CompletionList:
        empty = types.CompletionList(is_incomplete=True, items=[])
        if not ls.completion_feature.wants_classic():
            return empty
        invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        result = await ls.completion_feature.complete(params.text_document.uri, params.position, invoked=invoked)
        if result is None or result.text is None:
            return empty
        return types.CompletionList(is_incomplete=True, items=[completion_item(result, params.position)])

    @server.feature(WARM_NOTIFICATION)
    def warm(ls: NinetyTenServer, params: Any) -> None:
        ls.completion_feature.warm_focused(params)

    @server.feature(STATS_REQUEST)
    def stats(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return ls.completion_feature.stats()

    @server.command(COMPLETION_ACCEPTED_COMMAND)
    def completion_accepted_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return ls.completion_feature.accepted(command_params(args, "accepted"))
