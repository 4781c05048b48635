"""What a completion prompt carries besides the document: the context the server gathers.

`PromptContext` is the completion feature's one handle on context. It owns the repository
index (`RepositoryContext`, built in the background from the workspace folders), the
recently edited ranges (`RecentEdits`, fed by `didChange`) and the definitions the editor
forwarded (`ForwardedDefinitions`), and answers one question per request: which snippets go
into the prompt, in which order.

Order and placement are chosen for llama.cpp's KV cache, which is re-used only up to the
first token that differs from the previous prompt:

1. edited ranges of other files (they change only when the user edits another file),
2. repository snippets: imports, the enclosing class, its bases, names used nearby, similar
   chunks (stable inside each group, see retrieval.py),
3. forwarded definitions (they follow the symbol at the cursor),

then the document itself. While the user types in one block of lines the repository part is
kept as it was, unless a name on the cursor line now has a definition the kept context lacks
(the function being called right now matters more than the cache); moving to another block
of lines refreshes it. Everything runs on the request path in a few milliseconds (retrieval
p99 11 ms on a 5,000-file repository); nothing here waits for the index.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from lsp_server.context.cursor import cursor_line_prefix
from lsp_server.context.edits import RecentEdits
from lsp_server.context.entries import IndexLimits
from lsp_server.context.forwarded import ForwardedDefinitions, Location
from lsp_server.context.retrieval import ContextOptions
from lsp_server.context.service import RepositoryContext
from lsp_server.context.snippets import ContextBundle, Gate
from lsp_server.token_estimate import estimate_tokens

log = logging.getLogger(__name__)

# The repository context is kept while the cursor stays in one block of this many lines.
BLOCK_LINES = 16
# Shares of the budget the smaller sources may take; the repository gets the rest.
EDITS_SHARE = 0.3
FORWARDED_SHARE = 0.25
FILE_HEADER_TOKENS = 8
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Item = TypeVar("Item")

SnippetSource = str  # "edit" | "import" | "class" | "base" | "usage" | "similar" | "call" | "forwarded"


@dataclass(frozen=True)
class PromptSnippet:
    """One piece of context as the prompt shows it: under its file's path."""

    path: str  # workspace-relative ('/'-separated), or as `forwarded.display_path` shows it
    text: str
    kind: SnippetSource
    start_line: int = 0
    symbol: str | None = None
    tokens: int = 0


@dataclass
class _Kept:
    block: tuple[str, int]
    bundle: ContextBundle
    symbols: frozenset[tuple[str, str]]  # (kind, short name) of each snippet that shows a symbol


class PromptContext:
    """Context for completion prompts; see the module docstring."""

    def __init__(
        self,
        *,
        max_edits: int = 4,
        limits: IndexLimits | None = None,
        options: ContextOptions | None = None,
        count_tokens: Callable[[str], int] = estimate_tokens,
    ) -> None:
        self.max_edits = max_edits
        self.limits = limits
        self.options = options or ContextOptions()
        self.count_tokens = count_tokens
        self.repository: RepositoryContext | None = None
        self.edits = RecentEdits(max_ranges=max(max_edits, 1) * 2)
        self.forwarded = ForwardedDefinitions()
        self._kept: dict[str, _Kept] = {}

    # -- life cycle ------------------------------------------------------------------

    def start(self, folders: Sequence[Path]) -> None:
        """Index the workspace folders in the background (returns at once)."""
        folders = [Path(f) for f in folders if Path(f).is_dir()]
        self.forwarded.roots = list(folders)
        if not folders or self.repository is not None:
            return
        try:
            self.repository = RepositoryContext(folders, self.limits, self.options)
            self.repository.start()
        except Exception:  # completions go on without the index
            log.exception("repository context: the index could not start")
            self.repository = None

    def build(self, folders: Sequence[Path]) -> None:
        """Index the folders now, in the calling thread (the eval, the benchmark)."""
        self.forwarded.roots = [Path(f) for f in folders]
        self.repository = RepositoryContext(folders, self.limits, self.options)
        self.repository.index.build()

    def stop(self) -> None:
        if self.repository is not None:
            self.repository.stop()
            self.repository = None

    @property
    def indexing(self) -> bool:
        return self.repository is not None and not self.repository.ready

    # -- document events -------------------------------------------------------------

    def opened(self, path: Path | None, text: str) -> None:
        if self.repository is not None and path is not None:
            try:
                self.repository.document_opened(path, text)
            except Exception:
                log.debug("context: could not parse %s on open", path, exc_info=True)

    def changed(self, uri: str, rel: str, changes: Sequence[tuple[int, int, str]]) -> None:
        """Incremental changes: (first line, last line replaced, new text) each."""
        for start, end, text in changes:
            self.edits.record(uri, rel, start, end, text)

    def closed(self, uri: str, path: Path | None) -> None:
        # A closed file stops being context for the others (it may be one the user only
        # glanced at, a secret among them), and its text is no longer kept up to date.
        self.edits.forget(uri)
        self.forwarded.forget(uri)
        self._kept.pop(uri, None)
        if self.repository is not None and path is not None:
            self.repository.document_closed(path)

    def forward(self, uri: str, locations: Sequence[Location]) -> bool:
        return self.forwarded.set(uri, locations)

    # -- the prompt's context ---------------------------------------------------------

    def snippets(
        self,
        uri: str,
        path: Path | None,
        text: str,
        line: int,
        character: int,
        budget: int,
        *,
        text_of: Callable[[str], str | None],
        open_text: Callable[[Path], str | None],
    ) -> tuple[list[PromptSnippet], ContextBundle]:
        """The snippets for a cursor, in prompt order, within `budget` tokens (estimated), and
        the repository bundle they came from."""
        if budget <= 0:
            return [], ContextBundle()
        edits = self._edit_snippets(uri, text_of, int(budget * EDITS_SHARE)) if self.max_edits else []
        forwarded = self._forwarded_snippets(uri, open_text, int(budget * FORWARDED_SHARE))
        used = sum(s.tokens for s in edits) + sum(s.tokens for s in forwarded)
        bundle = self._repository_bundle(uri, path, text, line, character, budget - used)
        repo = [PromptSnippet(s.path, s.text, s.kind, s.start_line, s.symbol, s.tokens) for s in bundle.snippets]
        return [*edits, *repo, *forwarded], bundle

    def _edit_snippets(self, uri: str, text_of: Callable[[str], str | None], budget: int) -> list[PromptSnippet]:
        found = self.edits.snippets(uri, text_of)[-self.max_edits :]
        out: list[PromptSnippet] = []
        used = 0
        # The newest edits matter most: fill from the newest, then show them oldest first.
        for snippet in reversed(found):
            text = snippet.text
            cost = self.count_tokens(text) + FILE_HEADER_TOKENS
            while cost + used > budget and "\n" in text:  # a long range keeps its first lines
                text = text[: text.rfind("\n")]
                cost = self.count_tokens(text) + FILE_HEADER_TOKENS
            if used + cost > budget:
                continue
            used += cost
            out.append(PromptSnippet(snippet.path, text, "edit", snippet.start, None, cost))
        out.reverse()
        return out

    def _forwarded_snippets(
        self, uri: str, open_text: Callable[[Path], str | None], budget: int
    ) -> list[PromptSnippet]:
        out: list[PromptSnippet] = []
        used = 0
        for snippet in self.forwarded.snippets(uri, open_text):
            cost = self.count_tokens(snippet.text) + FILE_HEADER_TOKENS
            if used + cost > budget:
                continue
            used += cost
            out.append(PromptSnippet(snippet.path, snippet.text, "forwarded", snippet.line, None, cost))
        return out

    def _repository_bundle(
        self, uri: str, path: Path | None, text: str, line: int, character: int, budget: int
    ) -> ContextBundle:
        repository = self.repository
        if repository is None or path is None or budget <= 0:
            return ContextBundle()
        try:
            fresh = repository.gather(path, text, line, character, budget_tokens=budget)
        except Exception:  # context is a bonus: a failure costs it, never the completion
            log.exception("context: gathering failed for %s", path)
            return ContextBundle()
        block = (str(path), line // BLOCK_LINES)
        # By kind too: the other calls of a name whose definition is already kept are news.
        symbols = frozenset((s.kind, _short(s.symbol)) for s in fresh.snippets if s.symbol)
        kept = self._kept.get(uri)
        if kept is not None and kept.block == block and kept.bundle.budget == fresh.budget:
            wanted = set(_NAME.findall(cursor_line_prefix(text, line, character)))
            if not ({name for _, name in symbols - kept.symbols} & wanted):
                return kept.bundle  # same block, nothing new for the cursor line: keep the KV cache
        self._kept[uri] = _Kept(block, fresh, symbols)
        return fresh


def _short(symbol: str) -> str:
    return symbol.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Kept(Generic[Item]):
    """What of a prompt's context may go to a remote tier, and what the gate kept home."""

    files: list[Item]  # the items that passed, in their order
    withheld: list[tuple[str, str, str]]  # (path, kind, reason) of each one kept home

    def ledger_reason(self) -> str | None:
        """A content-free reason for the ledger row of the remote attempt, or None."""
        if not self.withheld:
            return None
        kinds = sorted({reason.split(":", 1)[0] for _, _, reason in self.withheld})
        count = len(self.withheld)
        return f"context_withheld: {count} snippet{'s' if count != 1 else ''} kept home ({', '.join(kinds)})"


def withhold(files: Sequence[Item], gate: Gate) -> Kept[Item]:
    """Split context items (anything with `path`, `text` and `kind`) by the sensitivity gate:
    a snippet from a sensitive path or holding a secret never goes to a remote tier."""
    kept: list[Item] = []
    withheld: list[tuple[str, str, str]] = []
    for item in files:
        path, text, kind = getattr(item, "path"), getattr(item, "text"), getattr(item, "kind", "file")
        reason = gate(path, text)
        if reason is None:
            kept.append(item)
        else:
            withheld.append((path, kind, reason))
    return Kept(kept, withheld)
