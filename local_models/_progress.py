"""Byte-progress reporting on stderr (stdout may be an LSP stream, so never there)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


class ByteBar:
    """A byte counter shown as a rich bar on a terminal, one line elsewhere, or nothing.

    It also speaks the small part of tqdm's interface that huggingface_hub uses for its
    `tqdm_class` (constructor keywords, `update`, `close`, context manager), so downloads
    report through the same bar as everything else.
    """

    def __init__(
        self,
        description: str = "",
        total: int | None = None,
        *,
        progress: bool = True,
        initial: int = 0,
        **_tqdm_keywords: Any,
    ) -> None:
        self.n = initial
        self.total = total
        self._bar: Any = None
        self._task: Any = None
        if not progress_wanted(progress):
            if progress:
                print(f"ninetyten: {description} ...", file=sys.stderr, flush=True)
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
        self._bar = Progress(*columns, console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, completed=initial)

    def update(self, n: int | float | None = 1) -> None:
        step = int(n or 0)
        self.n += step
        if self._bar is not None:
            self._bar.advance(self._task, step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> ByteBar:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def tqdm_class_for(description: str, *, progress: bool) -> type[ByteBar]:
    """A ByteBar class with our description and switch baked in, for huggingface_hub's tqdm_class."""

    class _HubBar(ByteBar):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("desc", None)  # huggingface_hub's is the URL or a truncated file name
            super().__init__(
                description, kwargs.pop("total", None), progress=progress, initial=int(kwargs.pop("initial", 0) or 0)
            )

    return _HubBar


@contextmanager
def byte_progress(description: str, total: int, *, progress: bool) -> Iterator[Advance]:
    """Yield an `advance(n_bytes)` callback that drives a rich bar, a single line, or nothing."""
    with ByteBar(description, total, progress=progress) as bar:
        yield bar.update
