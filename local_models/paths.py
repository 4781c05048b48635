"""Where ninetyten keeps its files.

NINETYTEN_HOME pins everything (data and models) under one directory, which is what
tests, CI and portable installs want; otherwise we follow the platform conventions
(models are re-creatable, so they live in the cache dir, not the data dir).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from local_models.errors import ModelError

APP_NAME = "ninetyten"
HOME_ENV = "NINETYTEN_HOME"


def _ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"Cannot create directory {path}: {exc.strerror or exc}.",
            f"Set {HOME_ENV} to a writable directory.",
        ) from exc
    return path


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def ninetyten_home(*, create: bool = True) -> Path:
    """The data directory (created on first use, unless `create` is False)."""
    override = _home_override()
    path = override if override is not None else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return _ensure_dir(path) if create else path


def models_dir() -> Path:
    """The directory holding model files (created on first use)."""
    override = _home_override()
    if override is not None:
        return _ensure_dir(override / "models")
    return _ensure_dir(Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "models")


def cache_dir() -> Path:
    """Re-creatable files that are better on disk than in memory (created on first use)."""
    override = _home_override()
    if override is not None:
        return _ensure_dir(override / "cache")
    return _ensure_dir(Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)))


def hub_cache_dir() -> Path:
    """Where pulled models live: a Hugging Face hub cache (blobs/, snapshots/, refs/ per repo).

    By default the user's own Hugging Face cache (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface/hub),
    so a file fetched with `hf download` or llama-cpp-python is not fetched twice; under
    NINETYTEN_HOME a private one, so tests and portable installs stay inside that directory.
    """
    override = _home_override()
    if override is not None:
        return override / "models" / "hub"
    from huggingface_hub import constants  # lazy: only pulls, lists and removals need it

    return Path(constants.HF_HUB_CACHE)


def pulled_records_dir() -> Path:
    """ninetyten's own record of each pulled and verified file (created on first use)."""
    return _ensure_dir(models_dir() / "pulled")
