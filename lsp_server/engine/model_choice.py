"""Choosing local models from an editor: what serves each task now, what this machine should
run instead, pulling it (with progress, cancellable) and switching to it.

The language server's `ninetyten/models`, `ninetyten/pullModel` and `ninetyten/useModel`
requests are thin wrappers over these functions; nothing here knows LSP (progress is a
callback, cancelling is an event). A choice made here is saved in the user's config dir
(local_models/choice.py), never in a repository.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from local_models import ModelError, ResolvedModel, get_entry, parse_target, pull
from local_models.catalog import EMBEDDED_MODEL_ID, Role, canonical_id
from local_models.choice import Task, choice_path, save_choices
from local_models.machine import detect_machine
from local_models.pulled import PulledFile, all_records
from local_models.recommend import Choice, Recommendation, recommend
from lsp_server.backends.local import LocalBackend
from lsp_server.engine.core import Engine
from lsp_server.engine.local_tier import user_choice

# (what is being pulled, bytes done, bytes in all or None)
ProgressReport = Callable[[str, int, int | None], None]
# Progress is reported at most this often (and at every whole percent).
REPORT_EVERY_S = 0.25


class PullCancelled(Exception):
    """The user cancelled a pull; huggingface_hub's partial file is not used by anything."""


def _describe(resolved: ResolvedModel | None, backend: LocalBackend, named: str | None) -> dict[str, Any]:
    if resolved is None:  # not resolved yet (still loading), or failed
        return {
            "name": named or "default",
            "model_id": None,
            "source": None,
            "path": None,
            "ready": backend.ready,
            "load_failed": backend.load_failed,
        }
    return {
        "name": resolved.model_id or resolved.path.name,
        "model_id": resolved.model_id,
        "source": resolved.source,
        "origin": resolved.origin,
        "path": str(resolved.path),
        "ready": backend.ready,
        "load_failed": backend.load_failed,
        "chat_template": backend.has_chat_template if backend.ready else None,
        "fim": backend.fim is not None if backend.ready else None,
    }


def _choice_json(choice: Choice) -> dict[str, Any]:
    return {
        "model_id": choice.model_id,
        "name": choice.name,
        "quant": choice.quant,
        "pull_spec": choice.pull_spec,
        "download_bytes": choice.download_bytes,
        "memory_bytes": choice.memory_bytes,
        "why": choice.why,
    }


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    """What to offer: the two picks, the specs to pull (once each) and the bytes to download."""
    download = {c.pull_spec: c.download_bytes for c in (rec.completion, rec.chat)}  # a spec is one file: one size
    return {
        "machine": rec.machine.summary(),
        "completion": _choice_json(rec.completion),
        "chat": _choice_json(rec.chat),
        "pull": rec.pull_specs,
        "download_bytes": sum(download[spec] for spec in rec.pull_specs),
        "command": rec.command,
    }


def recommended_pulls() -> list[str]:
    """The specs a first run offers to pull on this machine (probes the machine: off the event loop)."""
    return recommend(detect_machine()).pull_specs


def _pulled_json(record: PulledFile) -> dict[str, Any]:
    return {
        "model_id": record.model_id,
        "spec": record.spec,
        "quant": record.quant,
        "size": record.size,
        "path": str(record.path),
        "intact": record.intact(),
    }


def _serves_embedded(engine: Engine, pinned: str | None) -> bool:
    """Whether the embedded model answers completions. A model just switched to is resolved on
    the loading thread: until then its name says it (nothing named and nothing pinned: the
    embedded default), so the answer to `use` never depends on which thread ran first."""
    if engine.model is not None:
        return engine.model.model_id == EMBEDDED_MODEL_ID
    return pinned is None and engine.names.completion in (None, EMBEDDED_MODEL_ID)


def models_state(engine: Engine) -> dict[str, Any]:
    """Which model serves completions and which serves chat tasks, what this machine should run,
    what is pulled, and the user's saved choice. Reads files: call it off the event loop."""
    names = engine.names
    completion = _describe(engine.model, engine.local, names.completion)
    chat_backend = engine.chat_local
    chat = (
        _describe(engine.chat_model, chat_backend, names.chat)
        if chat_backend is not engine.local
        else {**completion, "same_as_completion": True}
    )
    pinned, pinned_chat = names.pinned("completion"), names.pinned("chat")
    try:
        records = all_records()
    except (ModelError, OSError):
        records = []
    choice = user_choice()
    return {
        "completion": completion,
        "chat": chat,
        # The embedded model answers completions: what a first run offers to change.
        "embedded": _serves_embedded(engine, pinned),
        # --model / NINETYTEN_MODEL win over any choice made here.
        "pinned": {"completion": pinned, "chat": pinned_chat},
        "choice": {"completion": choice.completion, "chat": choice.chat, "path": str(choice_path())},
        "recommendation": recommendation_json(recommend(detect_machine())),
        "pulled": [_pulled_json(record) for record in records],
    }


def _progress_bar(what: str, report: ProgressReport, cancel: threading.Event) -> type:
    """A tqdm-like class (what huggingface_hub's downloads drive) that reports through `report`
    and stops the transfer when `cancel` is set."""

    class Bar:
        def __init__(
            self, *_args: Any, total: int | float | None = None, initial: int | float = 0, **_kwargs: Any
        ) -> None:
            self.n = int(initial or 0)
            self.total = int(total) if total else None
            self._reported = (0.0, -1)
            self._report(force=True)

        def _report(self, force: bool = False) -> None:
            percent = int(100 * self.n / self.total) if self.total else -1
            now = time.monotonic()
            if force or percent != self._reported[1] or now - self._reported[0] >= REPORT_EVERY_S:
                self._reported = (now, percent)
                report(what, self.n, self.total)

        def update(self, n: int | float | None = 1) -> None:
            if cancel.is_set():
                raise PullCancelled(f"pulling {what} was cancelled")
            self.n += int(n or 0)
            self._report()

        def close(self) -> None:
            self._report(force=True)

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *_exc: object) -> None:
            self.close()

    return Bar


def pull_models(specs: list[str], report: ProgressReport, cancel: threading.Event) -> list[PulledFile]:
    """Pull each spec (ID, ID:QUANT, REPO:FILE), verified; blocking. ModelError / PullCancelled."""
    pulled = []
    for spec in specs:
        if cancel.is_set():
            raise PullCancelled(f"pulling {spec} was cancelled")
        target = parse_target(spec)
        what = target.model_id + (f" ({target.quant})" if target.quant else "") if target.model_id else target.spec
        result = pull(target, progress=False, report=lambda _line: None, bar=_progress_bar(what, report, cancel))
        pulled.append(result.record)
    return pulled


def task_of(record: PulledFile) -> Task:
    """Which task a pulled model is for: a chat-only (instruct) model answers chat tasks."""
    model_id = canonical_id(record.model_id) if record.model_id else None
    if model_id is not None:
        entry = get_entry(model_id)
        if entry.has_role(Role.CHAT) and not entry.has_role(Role.FIM):
            return "chat"
    return "completion"


def use_value(record: PulledFile) -> str:
    """How to name a pulled file in a choice: its catalog id when that finds this very file
    (its default quantisation), else REPO:FILE."""
    model_id = canonical_id(record.model_id) if record.model_id else None
    if model_id is not None and get_entry(model_id).default_file().file == record.file:
        return model_id
    return record.spec


def use_models(engine: Engine, choices: dict[Task, str]) -> list[Task]:
    """Save the user's choice of model per task and switch the running engine to it.

    Every value must resolve to a file here (pulled, or a path): nothing is saved otherwise.
    "default" clears the choice (the embedded model for completions, the completion model for
    chat). Blocking (it checks files): call it off the event loop. Returns the tasks whose
    model changed in this process (--model / NINETYTEN_MODEL still win over a choice)."""
    save_choices(choices)
    return engine.reload_local_models()


__all__ = [
    "ProgressReport",
    "PullCancelled",
    "models_state",
    "pull_models",
    "recommendation_json",
    "task_of",
    "use_models",
    "use_value",
]
