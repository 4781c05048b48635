"""The completion feature's context for one client session: what the prompt carries besides
the document (see lsp_server/context/prompt_context.py).

The repository index starts once the client is initialized, on its workspace folders; the
context engine's imports (tree-sitter grammars) happen then, not on a keystroke. Documents
feed it as they open, change and close; the editor may forward what its other language
servers know. Each request asks for the context of one cursor, within the prompt's budget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsp_server.completion.prompt import ContextFile
from lsp_server.config import CompletionConfig

if TYPE_CHECKING:
    from lsp_server.context.forwarded import Location
    from lsp_server.context.prompt_context import PromptContext


class SessionContext:
    def __init__(self, config: CompletionConfig) -> None:
        self.config = config
        self._context: PromptContext | None = None
        self.gathered = 0  # requests that gathered context (those the model answered, not the cache)

    def reconfigure(self, config: CompletionConfig) -> None:
        self.config = config
        if self._context is not None:
            self._context.max_edits = config.extra_files

    @property
    def context(self) -> PromptContext:
        """Recently edited ranges, forwarded definitions and (once started) the repository index.
        Made on first use: the context engine's imports wait until a document needs them."""
        if self._context is None:
            from lsp_server.context.prompt_context import PromptContext

            self._context = PromptContext(max_edits=self.config.extra_files)
        return self._context

    def start(self, folders: list[Path]) -> None:
        """Index the workspace folders in the background, if the settings allow it."""
        context = self.context
        if self.config.repository_context and folders:
            context.start(folders)

    def stop(self) -> None:
        if self._context is not None:
            self._context.stop()

    def stats(self) -> dict[str, Any]:
        counts: dict[str, Any] = {"context_gathered": self.gathered}
        context = self._context
        if context is None:
            return {
                **counts,
                "context_chunks": 0,
                "context_forwarded": 0,
                "context_indexed_files": 0,
                "context_indexing": False,
            }
        repository = context.repository
        return {
            **counts,
            "context_chunks": len(context.edits),
            "context_forwarded": len(context.forwarded),
            "context_indexed_files": repository.index.stats.files if repository is not None else 0,
            "context_indexing": context.indexing,
        }

    # -- document events ---------------------------------------------------------

    def opened(self, path: Path | None, text: str) -> None:
        if self.config.repository_context:
            self.context.opened(path, text)

    def changed(self, uri: str, rel: str, changes: list[tuple[int, int, str]]) -> None:
        if self.config.extra_files and changes:
            self.context.changed(uri, rel, changes)

    def closed(self, uri: str, path: Path | None) -> None:
        if self._context is not None:
            self._context.closed(uri, path)

    def forward(self, uri: str, locations: list[Location]) -> None:
        self.context.forward(uri, locations)

    # -- requests ------------------------------------------------------------------

    def files(
        self,
        uri: str,
        path: Path | None,
        text: str,
        line: int,
        character: int,
        *,
        text_of: Callable[[str], str | None],
        open_text: Callable[[Path], str | None],
    ) -> list[ContextFile]:
        """The prompt's context for a cursor, as prompt files (nothing when the budget is 0)."""
        budget = self.config.extra_tokens
        if budget <= 0:
            return []
        self.gathered += 1
        return prompt_files(
            self.context, uri, path, text, line, character, budget, text_of=text_of, open_text=open_text
        )


def _no_text(_: object) -> str | None:
    return None


def prompt_files(
    context: PromptContext,
    uri: str,
    path: Path | None,
    text: str,
    line: int,
    character: int,
    budget: int,
    *,
    text_of: Callable[[str], str | None] = _no_text,
    open_text: Callable[[Path], str | None] = _no_text,
) -> list[ContextFile]:
    """`context`'s snippets for a cursor as prompt files: what the server, the eval and the
    benchmark put in a prompt (without an editor, no other document is open)."""
    snippets, _ = context.snippets(uri, path, text, line, character, budget, text_of=text_of, open_text=open_text)
    return [ContextFile(s.path, s.text, s.kind) for s in snippets]
