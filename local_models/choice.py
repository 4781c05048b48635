"""The user's own choice of local models, kept in their config dir (never in a repository).

`ninetyten models use` and the editors' model commands (Neovim's `:NinetyTenModel use`, the
server's `ninetyten/useModel`) write it; every ninetyten process on the machine reads it — the
language servers, the CLI and the git hook — so a model chosen once is used everywhere. It sits
beside the user's `policy.toml`:

    # Written by `ninetyten models use` (and the editors' model commands).
    completion = "qwen2.5-coder-0.5b"
    chat = "qwen2.5-coder-0.5b-instruct"

A value is what `--model` takes (a catalog id, REPO:FILE of a pulled file, or a path). Where it
stands among the other ways to name a model: see `Engine` (below `--model`, the environment and
the editor's settings; above the policy's `tiers.local` models).
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from local_models.errors import ModelError

CHOICE_FILE = "models.toml"
Task = Literal["completion", "chat"]
_HEADER = "# Written by `ninetyten models use` (and the editors' model commands).\n"


class ModelChoice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    completion: str | None = Field(None, min_length=1, max_length=1000, pattern=r"^[^\n\r\x00]+$")
    chat: str | None = Field(None, min_length=1, max_length=1000, pattern=r"^[^\n\r\x00]+$")

    def get(self, task: Task) -> str | None:
        return self.completion if task == "completion" else self.chat


def choice_path() -> Path:
    return Path(platformdirs.user_config_dir("ninetyten")) / CHOICE_FILE


def read_choice(path: Path | None = None) -> ModelChoice:
    """The saved choice; empty when there is none. A broken file is a ModelError that names it."""
    path = path or choice_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ModelChoice()
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"Cannot read the model choice {path}: {error}.", "Fix or delete the file.") from None
    try:
        return ModelChoice.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as error:
        detail = str(error).splitlines()[0]
        raise ModelError(
            f"The model choice {path} is not valid ({detail}).",
            "Fix it, delete it, or run `ninetyten models use ID` to write it again.",
        ) from None


def write_choice(choice: ModelChoice, path: Path | None = None) -> Path:
    """Save `choice` atomically (a reader never sees half a file); returns the path."""
    path = path or choice_path()
    lines = [_HEADER]
    for key in ("completion", "chat"):
        value = getattr(choice, key)
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}\n")  # a JSON string is a TOML basic string
    text = "".join(lines)
    if ModelChoice.model_validate(tomllib.loads(text)) != choice:  # never write what reads back otherwise
        raise ModelError(f"Cannot save {choice!r} as TOML.", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def update_choice(task: Task, value: str | None, path: Path | None = None) -> ModelChoice:
    """Set (or, with None or "default", clear) the model for one task; returns the new choice."""
    return _update({task: value}, path)


def save_choices(choices: dict[Task, str], path: Path | None = None) -> ModelChoice:
    """Set the model of several tasks in one write, once every value is usable here: a value
    other than "default" must resolve to a file (pulled, or a path, kept absolute). ModelError
    (not pulled, not a GGUF, unknown) propagates and nothing is saved."""
    from local_models.resolve import resolve_model

    checked: dict[Task, str | None] = {}
    for task, value in choices.items():
        if value.strip() != "default":
            resolved = resolve_model(value, None, progress=False)
            value = str(resolved.path) if resolved.source == "explicit" else value  # a path, from anywhere
        checked[task] = value
    return _update(checked, path)


def _update(values: dict[Task, str | None], path: Path | None) -> ModelChoice:
    current = read_choice(path)
    changes = {
        task: None if value is None or value.strip() in ("", "default") else value.strip()
        for task, value in values.items()
    }
    updated = ModelChoice.model_validate({**current.model_dump(), **changes})
    write_choice(updated, path)
    return updated


__all__ = [
    "CHOICE_FILE",
    "ModelChoice",
    "Task",
    "choice_path",
    "read_choice",
    "save_choices",
    "update_choice",
    "write_choice",
]
