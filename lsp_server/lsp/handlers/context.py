"""Completion context from the editor's side: definitions its other language servers know
(`ninetyten/definitions`), and what a completion at a position would carry (`ninetyten/context`)."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pydantic import ValidationError

from lsp_server.context.forwarded import Location
from lsp_server.lsp.convert import file_path
from lsp_server.lsp.ids import CONTEXT_REQUEST, DEFINITIONS_NOTIFICATION
from lsp_server.lsp.params import ContextParams, DefinitionsParams, plain
from lsp_server.lsp.server import NinetyTenServer

log = logging.getLogger(__name__)


def _first_error(error: ValidationError) -> str:
    return str(error.errors()[0].get("msg", "invalid"))


def forward_definitions(ls: NinetyTenServer, raw: Any) -> None:
    """Where the editor's other language servers say the symbols at the cursor are defined
    (see context/forwarded.py). Bad params are dropped with a warning: it is a notification."""
    try:
        params = DefinitionsParams.model_validate(plain(raw))
    except ValidationError as error:
        log.warning("dropping ninetyten/definitions: %s", _first_error(error))
        return
    locations = [
        Location(path, item.range.start.line)
        for item in params.definitions
        if (path := file_path(item.uri)) is not None
    ]
    ls.completion_feature.service.context.forward(params.text_document.uri, locations)


def describe_context(ls: NinetyTenServer, raw: Any) -> dict[str, Any]:
    """The context a completion at a position would carry, and the prompt as the model would
    read it (for "why did it suggest that?" and for tests)."""
    try:
        params = ContextParams.model_validate(plain(raw))
    except ValidationError as error:
        return {"error": f"invalid ninetyten/context request: {_first_error(error)}"}
    feature = ls.completion_feature
    uri = params.text_document.uri
    inp = feature.completion_input(uri, types.Position(params.position.line, params.position.character))
    if inp is None:
        return {"error": f"{uri} is not open"}
    answer: dict[str, Any] = {
        "snippets": [{"path": f.path, "kind": f.kind, "text": f.text} for f in inp.extra],
        "indexing": feature.service.context.stats()["context_indexing"],
    }
    engine = ls.engine
    if engine is not None and engine.local.ready:
        completer = feature.completer(engine)
        prompt = completer.task.builder.build(inp)
        answer["prompt"] = engine.local.detokenize(prompt.tokens, special=True)
        answer["prompt_tokens"] = len(prompt.tokens)
        answer["context_tokens"] = prompt.n_extra
    return answer


def register(server: NinetyTenServer) -> None:
    @server.feature(DEFINITIONS_NOTIFICATION)
    def definitions(ls: NinetyTenServer, params: Any) -> None:
        forward_definitions(ls, params)

    @server.feature(CONTEXT_REQUEST)
    def completion_context(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return describe_context(ls, params)
