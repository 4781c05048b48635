"""Following the workspace: watchfiles events -> index updates.

Events are filtered cheaply here (a language we parse, a `.gitignore`, or a directory) and
handed to the index's builder thread, which decides what to re-parse. If the platform's
watcher cannot be started (too many directories for inotify, a network drive), the index
falls back to a periodic rescan, which re-parses only files whose size or time changed.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import watchfiles

from lsp_server.context.discovery import SKIP_DIRS
from lsp_server.context.languages import language_for_path

if TYPE_CHECKING:
    from lsp_server.context.index import WorkspaceIndex

log = logging.getLogger(__name__)

RESCAN_SECONDS = 60.0


class _Filter(watchfiles.DefaultFilter):
    def __init__(self) -> None:
        super().__init__(ignore_dirs=tuple(SKIP_DIRS))

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if not super().__call__(change, path):
            return False
        name = os.path.basename(path)
        if name == ".gitignore" or language_for_path(name) is not None:
            return True
        return "." not in name or os.path.isdir(path)  # directories (created, moved in, deleted)


def _route(index: WorkspaceIndex, changes: set[tuple[watchfiles.Change, str]]) -> None:
    files: list[tuple[int, str]] = []
    rescan: set[int] = set()
    for _change, raw in changes:
        located = index.locate(raw)
        if located is None:
            continue
        root_index, rel = located
        if os.path.basename(rel) == ".gitignore":
            rescan.add(root_index)
        else:
            files.append((root_index, rel))
    for root_index in sorted(rescan):
        index.request_rescan(root_index)
    if files:
        index.notify_changed(files)


def _watch(index: WorkspaceIndex, stop: threading.Event) -> None:
    # Watching starts with the build, so that a file saved while it runs is not missed: the
    # builder thread takes the changes once the build is done.
    roots = [str(root) for root in index.roots if Path(root).is_dir()]
    if not roots:
        return
    try:
        # yield_on_timeout: an empty set after a quiet second, the sign that the watcher is up.
        for changes in watchfiles.watch(
            *roots,
            watch_filter=_Filter(),
            debounce=index.limits.watch_debounce_ms,
            stop_event=stop,
            raise_interrupt=False,
            ignore_permission_denied=True,
            rust_timeout=1000,
            yield_on_timeout=True,
        ):
            index.watching.set()
            if changes:
                _route(index, changes)
    except Exception as exc:  # inotify limits, a vanished folder: degrade to rescans
        log.warning("context index: cannot watch the workspace (%s); rescanning every %.0f s", exc, RESCAN_SECONDS)
        index.watching.set()
        while not stop.wait(RESCAN_SECONDS):
            for root_index in range(len(index.roots)):
                index.request_rescan(root_index)


def start_watching(index: WorkspaceIndex, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=_watch, args=(index, stop), name="context-watch", daemon=True)
    thread.start()
    return thread
