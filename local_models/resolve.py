"""Deciding which model file to load.

Precedence: explicit argument (--model) > NINETYTEN_MODEL > configured value > embedded
default. Each of those may be a path to a .gguf, a catalog id, or REPO:FILE of a pulled
file. Resolution never downloads (a repository's policy may name a model, and that must
not fetch anything): a catalog model is found among the files `ninetyten models pull`
fetched and verified, or by its file name in the models directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from local_models.catalog import EMBEDDED_MODEL_ID, CatalogEntry, canonical_id, get_entry, load_catalog
from local_models.embedded import embedded_model_path
from local_models.errors import ModelError
from local_models.paths import models_dir
from local_models.pulled import find_intact, record_for_path
from local_models.verify import check_gguf_header

MODEL_ENV = "NINETYTEN_MODEL"
CHAT_MODEL_ENV = "NINETYTEN_CHAT_MODEL"  # the chat model's own variable (see Engine: per-task models)

Source = Literal["explicit", "env", "configured", "catalog", "pulled", "embedded"]
Origin = Literal["explicit", "env", "configured", "default"]


class ResolvedModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    model_id: str | None  # catalog id, when the model is a catalog model
    entry: CatalogEntry | None
    # What kind of thing was resolved: a path given via explicit/env/configured, a catalog
    # id found among pulled files or in the models dir, a pulled REPO:FILE, or the embedded
    # default.
    source: Source
    # Which setting asked for it (the same as `source` for paths).
    origin: Origin


_REPO_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*:[^:]+\.gguf$")


def _looks_like_path(value: str) -> bool:
    return value.lower().endswith(".gguf") or os.sep in value or "/" in value or value.startswith(("~", "."))


def _catalog_file(entry: CatalogEntry) -> Path:
    directory = models_dir()
    for model_file in entry.preferred_files():
        if model_file.repo is not None and (record := find_intact(model_file.repo, model_file.file)) is not None:
            return record.path
        candidate = directory / model_file.file
        if candidate.exists():
            return candidate
    wanted = entry.default_file()
    raise ModelError(
        f"Model {entry.id!r} is not pulled (and {wanted.file} is not in {directory}).",
        f"Run `ninetyten models pull {entry.id}` ({_size(wanted.size)} download), "
        f"or put {wanted.file} from {wanted.page_url()} into {directory}{os.sep}, "
        "or pass --model PATH to a .gguf you already have.",
    )


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _from_pulled(value: str, origin: Origin, env_var: str = MODEL_ENV) -> ResolvedModel:
    repo, _, file_name = value.partition(":")
    record = find_intact(repo, file_name)
    if record is None:
        raise ModelError(
            f"{value} (from {_describe(origin, env_var)}) is not pulled, or its file changed since it was verified.",
            f"Run `ninetyten models pull {value}`.",
        )
    check_gguf_header(record.path)
    entry = get_entry(record.model_id) if record.model_id and canonical_id(record.model_id) else None
    return ResolvedModel(
        path=record.path, model_id=entry.id if entry else None, entry=entry, source="pulled", origin=origin
    )


def _from_catalog(model_id: str, origin: Origin, progress: bool) -> ResolvedModel:
    entry = get_entry(model_id)
    if entry.id == EMBEDDED_MODEL_ID:
        path = embedded_model_path(progress=progress)
        source: Source = "embedded"
    else:
        path = _catalog_file(entry)
        source = "catalog"
    check_gguf_header(path)
    return ResolvedModel(path=path, model_id=entry.id, entry=entry, source=source, origin=origin)


def _entry_for_file(path: Path) -> CatalogEntry | None:
    """Recognise a catalog model by its file name, so its FIM template etc. still apply."""
    for entry in load_catalog().values():
        if entry.file_named(path.name) is not None:
            return entry
    return None


def _resolve_value(value: str, origin: Origin, progress: bool, env_var: str = MODEL_ENV) -> ResolvedModel:
    value = value.strip()
    path = Path(value).expanduser()
    if _REPO_FILE.fullmatch(value) and not path.exists():
        return _from_pulled(value, origin, env_var)
    # A catalog id wins unless a file of that exact name exists or it clearly is a path.
    if canonical_id(value) is not None and not path.exists() and not _looks_like_path(value):
        return _from_catalog(value, origin, progress)
    if not path.exists() and not _looks_like_path(value):
        known = ", ".join(sorted(load_catalog()))
        raise ModelError(
            f"{value!r} (from {_describe(origin, env_var)}) is neither an existing .gguf file "
            f"nor a known catalog id ({known}).",
            "Pass --model PATH to an existing .gguf, set NINETYTEN_MODEL, or run `ninetyten models list`.",
        )
    check_gguf_header(path)
    # abspath, not resolve(): a pulled file is a symlink named like the model, its target a digest.
    resolved = Path(os.path.abspath(path))
    record = record_for_path(resolved)
    entry = get_entry(record.model_id) if record and record.model_id and canonical_id(record.model_id) else None
    entry = entry or _entry_for_file(resolved)
    source: Source = "explicit" if origin == "default" else origin
    return ResolvedModel(path=resolved, model_id=entry.id if entry else None, entry=entry, source=source, origin=origin)


def _describe(origin: Origin, env_var: str = MODEL_ENV) -> str:
    return {
        "explicit": "--chat-model" if env_var == CHAT_MODEL_ENV else "--model",
        "env": env_var,
        "configured": "the configuration",
        "default": "the default",
    }[origin]


def resolve_model(
    explicit: str | None = None, configured: str | None = None, *, progress: bool = True, env_var: str = MODEL_ENV
) -> ResolvedModel:
    """Pick the model file to load. Raises ModelError (with a remedy) when it cannot.

    `env_var` is the environment variable that sits between `explicit` and `configured`:
    NINETYTEN_MODEL for the completion model, NINETYTEN_CHAT_MODEL for the chat model."""
    env_value = os.environ.get(env_var, "").strip() or None
    candidates: tuple[tuple[str | None, Origin], ...] = (
        (explicit, "explicit"),
        (env_value, "env"),
        (configured, "configured"),
    )
    for value, origin in candidates:
        if value is not None and value.strip():
            return _resolve_value(value, origin, progress, env_var)
    return _from_catalog(EMBEDDED_MODEL_ID, "default", progress)
