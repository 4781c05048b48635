"""Diffs for "explain this change": read them from git or stdin, parse, classify, chunk.

The one import for callers (`ninetyten explain`, the editor's "Explain this change", git hooks):
reading lives in `git`, parsing in `parse` (the records in `model`), chunking in `chunks`.
"""

from lsp_server.explain.diff.chunks import (
    DiffChunk,
    DiffStats,
    DiffTally,
    chunk_diff,
    diff_stats,
    file_header,
    skipped_line,
    summarize_skipped,
    with_totals,
)
from lsp_server.explain.diff.git import (
    git_diff_stream,
    range_diff,
    range_revisions,
    read_stdin_diff,
    staged_diff,
    working_tree_diff,
)
from lsp_server.explain.diff.model import DiffError, FileChange, Hunk, Status
from lsp_server.explain.diff.parse import iter_parse_diff, parse_diff
from lsp_server.explain.diff.summary_rules import DEFAULT_RULES, SummaryRules

__all__ = [
    "DEFAULT_RULES",
    "DiffChunk",
    "DiffError",
    "DiffStats",
    "DiffTally",
    "FileChange",
    "Hunk",
    "Status",
    "SummaryRules",
    "chunk_diff",
    "diff_stats",
    "file_header",
    "git_diff_stream",
    "iter_parse_diff",
    "parse_diff",
    "range_diff",
    "range_revisions",
    "read_stdin_diff",
    "skipped_line",
    "staged_diff",
    "summarize_skipped",
    "with_totals",
    "working_tree_diff",
]
