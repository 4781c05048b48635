"""The refactor's syntax guard: an edit that would break a file that parsed is refused."""

from __future__ import annotations

from lsp_server.routing.escalation import parses

GUARDED_LANGUAGES = frozenset({"python"})


def edit_keeps_file_valid(before: str, after: str, language: str | None) -> bool:
    """A file that parsed before the edit must parse after it (languages we can parse)."""
    if language not in GUARDED_LANGUAGES:
        return True
    return not parses(before, language) or parses(after, language)
