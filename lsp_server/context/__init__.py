"""Repository context for completions: a background index of the workspace (tree-sitter
definitions, imports and chunks) and retrieval of the snippets that matter at a cursor.

The one import for callers; see `service.RepositoryContext` for the life cycle and
docs/context-engine.md for how it works and what it costs.
"""

from lsp_server.context.documents import DocumentCache
from lsp_server.context.entries import DefinitionRef, FileEntry, IndexLimits, IndexStats
from lsp_server.context.imports import Import
from lsp_server.context.index import WorkspaceIndex
from lsp_server.context.languages import LANGUAGES, language_for_path
from lsp_server.context.outline import Definition, FileOutline, outline
from lsp_server.context.retrieval import ContextOptions, gather_context
from lsp_server.context.service import RepositoryContext
from lsp_server.context.snippets import ContextBundle, ContextSnippet, Gate, SourceLines, Withheld, gate_from_scanner

__all__ = [
    "LANGUAGES",
    "ContextBundle",
    "ContextOptions",
    "ContextSnippet",
    "Definition",
    "DefinitionRef",
    "DocumentCache",
    "FileEntry",
    "FileOutline",
    "Gate",
    "Import",
    "IndexLimits",
    "IndexStats",
    "RepositoryContext",
    "SourceLines",
    "Withheld",
    "WorkspaceIndex",
    "gate_from_scanner",
    "gather_context",
    "language_for_path",
    "outline",
]
