"""What the installer remembers: where wheels are cached, which build is installed (its
state file), the llama-cpp-python requirement, and a lock so that two set-ups never race.

Standard library only: it runs before the project's dependencies are installed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from lsp_server.llama_build.flags import AMX_ENV, BACKEND_ENV

PACKAGE = "llama-cpp-python"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_NAME = "ninetyten-llama-build.json"


class SetupError(RuntimeError):
    """The set-up cannot go on; the message says why and what to do."""


def default_wheel_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$NINETYTEN_CACHE/llama-cpp`, else the user cache dir (shared by every checkout of this user)."""
    if env.get("NINETYTEN_CACHE"):
        return Path(env["NINETYTEN_CACHE"]) / "llama-cpp"
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ninetyten" / "llama-cpp"


def default_state_path() -> Path:
    return Path(sys.prefix) / STATE_NAME


def sticky_env(env: Mapping[str, str], state: State | None) -> dict[str, str]:
    """The environment with the last set-up's choices filled in where it names none.

    `NINETYTEN_LLAMA_BACKEND=cuda make setup` followed by a plain `make test` keeps the CUDA
    build; naming a value again (even an empty CMAKE_ARGS) replaces it.
    """
    merged = dict(env)
    if state is not None:
        if not merged.get(BACKEND_ENV, "").strip():
            merged[BACKEND_ENV] = state.backend
        merged.setdefault("CMAKE_ARGS", state.user_args)
        merged.setdefault(AMX_ENV, "1" if state.amx else "")
    return merged


def llama_requirement(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> str:
    """The llama-cpp-python requirement of the project (without extras)."""
    requirements: list[str] = []
    try:
        import tomllib

        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        requirements = list(data.get("project", {}).get("dependencies", []))
    except (OSError, ValueError):
        with contextlib.suppress(metadata.PackageNotFoundError):
            requirements = list(metadata.requires("ninetyten") or [])
    for requirement in requirements:
        found = re.match(r"\s*llama[-_.]cpp[-_.]python\s*(\[[^\]]*\])?\s*([^;]*)", requirement, re.IGNORECASE)
        if found:
            return f"{PACKAGE}{found.group(2).strip()}"
    raise SetupError(f"no {PACKAGE} requirement found in {pyproject}")


def installed_version() -> str | None:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


@dataclass
class State:
    """What the set-up installed into this environment (a JSON file in the venv)."""

    key: str
    level: str
    backend: str
    cmake_args: str
    wheel: str
    version: str
    # What the user asked for, kept for the next set-up that does not say (see sticky_env).
    user_args: str = ""
    amx: bool = False
    cpu_flags: list[str] = field(default_factory=list)  # the flags the build was made for
    selftest: dict[str, Any] | None = None

    @staticmethod
    def load(path: Path) -> State | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return State(**{k: data[k] for k in State.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        write_json(path, self.__dict__)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One build per key at a time, across checkouts (other builders wait, then reuse the wheel)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent set-ups of one key are rare there
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
