"""Byte-progress reporting on stderr (stdout may be an LSP stream, so never there)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PROGRESS_ENV = "NINETYTEN_PROGRESS"

Advance = Callable[[int], None]


def progress_wanted(progress: bool) -> bool:
    """A live bar only makes sense on a terminal, unless forced with NINETYTEN_PROGRESS=1."""
    if not progress:
        return False
    forced = os.environ.get(PROGRESS_ENV, "").strip()
    if forced:
        return forced == "1"
    return sys.stderr.isatty()


@contextmanager
def byte_progress(description: str, total: int, *, progress: bool) -> Iterator[Advance]:
    """Yield an `advance(n_bytes)` callback that drives a rich bar, a single line, or nothing."""
    if not progress_wanted(progress):
        if progress:
            print(f"ninetyten: {description} ...", file=sys.stderr, flush=True)
        yield lambda _n: None
        return

    from rich.console import Console  # imported lazily: keeps server start-up lean
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
