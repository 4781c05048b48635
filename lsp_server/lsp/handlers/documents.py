"""Document events, passed on to the features that keep state about documents."""

from __future__ import annotations

from lsprotocol import types

from lsp_server.lsp.server import NinetyTenServer


def register(server: NinetyTenServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NinetyTenServer, params: types.DidOpenTextDocumentParams) -> None:
        document = params.text_document
        ls.completion_feature.opened(document.uri, document.text)
        ls.policy_feature.check_document(document.uri)
        ls.completion_feature.warm(document.uri, types.Position(line=0, character=0), opened=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NinetyTenServer, params: types.DidChangeTextDocumentParams) -> None:
        # Incremental changes name the lines they replace: the recently edited ranges.
        changes = [
            (change.range.start.line, change.range.end.line, change.text)
            for change in params.content_changes
            if isinstance(change, types.TextDocumentContentChangePartial)
        ]
        ls.completion_feature.changed(params.text_document.uri, changes)
        ls.policy_feature.check_document(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NinetyTenServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.completion_feature.closed(params.text_document.uri)
