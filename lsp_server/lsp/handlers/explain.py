"""Explain this change: the working-tree change of one file (or the workspace), or what is staged."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from lsp_server.explain.diff import DiffError, FileChange, parse_diff, staged_diff, working_tree_diff
from lsp_server.explain.facts import GitTexts
from lsp_server.explain.pipeline import explain_changes
from lsp_server.lsp.handlers.lifecycle import begin_progress
from lsp_server.lsp.ids import EXPLAIN_CHANGE_COMMAND
from lsp_server.lsp.params import command_params
from lsp_server.lsp.server import NinetyTenServer


def changes_to_explain(ls: NinetyTenServer, raw: dict[str, Any]) -> list[FileChange] | dict[str, Any]:
    """The parsed change, or the answer saying why there is nothing to explain."""
    root = ls.workspace_root
    if root is None:
        return {"error": "explaining a change needs a workspace folder (a git repository)"}
    uri = (raw.get("textDocument") or {}).get("uri")
    staged = raw.get("staged") is True
    try:
        changes = parse_diff(
            staged_diff(root) if staged else working_tree_diff(root, ls.relative_path(uri) if uri else None)
        )
    except DiffError as error:
        return {"error": str(error)}
    if not changes:
        return {
            "explanation": None,
            "error": "nothing is staged (git add some changes first)" if staged else "nothing changed",
        }
    return changes


async def explain_change(ls: NinetyTenServer, raw: dict[str, Any]) -> dict[str, Any]:
    """The explanation, with $/progress per part while it is written."""
    if ls.engine is None:
        return {"error": "the server is not initialized"}
    changes = changes_to_explain(ls, raw)
    if isinstance(changes, dict):
        return changes
    token = await begin_progress(ls, "explain", "ninetyten: explaining the change", percentage=0)

    def progress(done: int, total: int, what: str) -> None:
        if token:
            ls.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=what, percentage=int(100 * done / max(total, 1)))
            )

    root = ls.workspace_root
    assert root is not None  # changes_to_explain answered otherwise
    # Whole file texts for the change's facts: what is staged, or the working tree.
    texts = GitTexts.staged(root) if raw.get("staged") is True else GitTexts.worktree(root)
    try:
        result = await explain_changes(ls.engine, changes, progress=progress, texts=texts)
    finally:
        texts.close()
        if token:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
    return result.to_json()


def register(server: NinetyTenServer) -> None:
    @server.command(EXPLAIN_CHANGE_COMMAND)
    async def explain_change_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return await ls.cancellable(explain_change(ls, command_params(args, "explain_change")))
