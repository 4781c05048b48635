"""How the eval commands show themselves: a progress bar while they run, rich tables after."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

R = TypeVar("R", bound=BaseModel)


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal; a no-op callback otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield lambda phase, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def console() -> Any:
    from rich.console import Console

    # Piped output keeps whole rows instead of rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=150)


def emit(
    report: R,
    outcomes: Sequence[BaseModel],
    *,
    out: str | None,
    name: str,
    outcomes_name: str,
    as_json: bool,
    show: Callable[[R, Any], None],
) -> None:
    """A finished eval: `name`.json and `outcomes_name`.jsonl under `out` when given, then the
    report as JSON or as `show`'s table (with where the files went)."""
    from lsp_server.eval.tables import write_json, write_outcomes

    report_path = outcomes_path = None
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        report_path, outcomes_path = folder / f"{name}.json", folder / f"{outcomes_name}.jsonl"
        write_json(report_path, report.model_dump(mode="json"))
        write_outcomes(outcomes_path, outcomes)
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    show(report, console())
    if report_path is not None and outcomes_path is not None:
        print(f"results: {report_path} and {outcomes_path.name}")
