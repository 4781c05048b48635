"""The repository context engine as one object: an index of the workspace kept current in
the background, parsed open documents, and context for a cursor.

    engine = RepositoryContext([workspace_folder])
    engine.start()                                  # returns at once; indexing runs behind
    engine.document_opened(path, text)              # optional: parse now, not on the first keystroke
    bundle = engine.gather(path, text, line, character, budget_tokens=512)
    for snippet in bundle.snippets: ...             # path, kind, symbol, text, tokens
    remote = bundle.filtered(gate_from_scanner(scanner))   # for a remote tier
    engine.stop()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from lsp_server.context.documents import DocumentCache
from lsp_server.context.entries import IndexLimits
from lsp_server.context.index import WorkspaceIndex
from lsp_server.context.retrieval import ContextOptions, gather_context
from lsp_server.context.snippets import ContextBundle, Gate, SourceLines


class RepositoryContext:
    def __init__(
        self, folders: Iterable[str | Path], limits: IndexLimits | None = None, options: ContextOptions | None = None
    ) -> None:
        self.index = WorkspaceIndex(folders, limits)
        self.documents = DocumentCache()
        self.sources = SourceLines()
        self.options = options or ContextOptions()

    def start(self) -> None:
        self.index.start()

    def stop(self) -> None:
        self.index.stop()

    def __enter__(self) -> RepositoryContext:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ready(self) -> bool:
        """The first build is done (before that, context comes from what is indexed so far)."""
        return self.index.ready.is_set()

    def document_opened(self, path: str | Path, text: str) -> None:
        self.documents.warm(str(path), text)

    def document_closed(self, path: str | Path) -> None:
        self.documents.forget(str(path))

    def gather(
        self,
        path: str | Path,
        text: str,
        line: int,
        character: int,
        *,
        budget_tokens: int | None = None,
        gate: Gate | None = None,
    ) -> ContextBundle:
        options = self.options if budget_tokens is None else replace(self.options, budget_tokens=budget_tokens)
        return gather_context(self.index, self.documents, self.sources, path, text, line, character, options, gate)
