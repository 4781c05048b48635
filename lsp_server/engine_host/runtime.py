"""Where an engine lives and what it last said about itself.

One engine per user and model: its socket, lock, status file and log sit in the user's
runtime directory (`NINETYTEN_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/ninetyten`, else `run/`
in the data directory), which must be a directory of this user with mode 0700. The
socket's name is a hash of the model file (path, size, modification time), the settings
that change what the engine computes (context size, GPU layers) and this installation
(version, protocol, where the package lives) — as gopls names its daemon's socket after
its own binary, so that an engine and a client from different checkouts never meet.

Models that crashed the engine while loading are remembered in the data directory (they
stay bad across log-ins), keyed by the file's identity: a file that changes is tried again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lsp_server import __version__
from lsp_server.backends.llama_cpp.settings import LlamaSettings

# Bumped whenever a message of protocol.py changes shape; an engine and a client of different
# versions never meet, because the version is part of the socket's name.
PROTOCOL_VERSION = 3
RUNTIME_ENV = "NINETYTEN_RUNTIME_DIR"
IDLE_ENV = "NINETYTEN_ENGINE_IDLE_S"
DEFAULT_IDLE_S = 300.0
# sockaddr_un holds 108 bytes on Linux, 104 on macOS: longer paths go to a short private dir.
MAX_SOCKET_PATH = 100
BAD_AFTER_LOAD_CRASHES = 3


class RuntimeDirError(Exception):
    """The runtime directory is missing, not ours, or open to other users."""


def _private_dir(path: Path) -> Path:
    """`path`, created 0700 if missing; refused if another user owns it or others may enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise RuntimeDirError(
            f"{path} belongs to another user (uid {info.st_uid}); the engine's socket "
            f"must live in a directory only you can enter (set {RUNTIME_ENV})"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours: close it rather than refuse
    return path


def runtime_dir() -> Path:
    configured = os.environ.get(RUNTIME_ENV, "").strip()
    if configured:
        return _private_dir(Path(configured).expanduser())
    xdg = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    if xdg and Path(xdg).is_dir():
        return _private_dir(Path(xdg) / "ninetyten")
    from local_models import ninetyten_home

    return _private_dir(ninetyten_home() / "run")


def state_dir(key: str) -> Path:
    """Where this engine process writes its clients' saved prompt states: on disk, in the
    user's cache (the runtime directory is often a RAM disk, which would save nothing), one
    directory per process; those of engines that are gone (a crash leaves its files) go."""
    from local_models.paths import cache_dir

    engines = cache_dir() / "engine-states" / key
    if engines.is_dir():
        for stale in engines.iterdir():
            if not (stale.name.isdigit() and pid_alive(int(stale.name))):
                shutil.rmtree(stale, ignore_errors=True)
    return engines / str(os.getpid())


def idle_seconds() -> float:
    try:
        return max(float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)), 0.1)
    except ValueError:
        return DEFAULT_IDLE_S


def _install_stamp() -> str:
    return f"{__version__}|{PROTOCOL_VERSION}|{Path(__file__).resolve().parent}"


class ModelIdentity(BaseModel):
    """A model file as it is now: a file that is replaced or rewritten is another model."""

    model_config = ConfigDict(frozen=True)

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> "ModelIdentity":
        resolved = Path(os.path.abspath(path))
        info = resolved.stat()
        return cls(path=str(resolved), size=info.st_size, mtime_ns=info.st_mtime_ns)


class EngineSpec(BaseModel):
    """What an engine is started with; the key is what makes two of them the same engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelIdentity
    catalog_id: str | None = None
    n_ctx: int = 4096
    gpu_layers: int = -1
    threads: int | None = None  # speed only: not part of the key
    idle_s: float = DEFAULT_IDLE_S
    # Speculative decoding of chat answers (the chat model's engine): drafts from n-grams, and/or
    # from a small model loaded beside the model. They change how the weights are loaded.
    prompt_lookup: bool = False
    draft_model: ModelIdentity | None = None
    max_draft: int = 6

    def key(self) -> str:
        draft = self.draft_model.model_dump() if self.draft_model is not None else None
        material = json.dumps(
            [
                os.getuid(),
                _install_stamp(),
                self.model.model_dump(),
                self.n_ctx,
                self.gpu_layers,
                self.prompt_lookup,
                draft,
                self.max_draft,
            ]
        )
        return hashlib.sha256(material.encode()).hexdigest()[:16]


def spec_for(settings: LlamaSettings, path: Path, catalog_id: str | None) -> tuple[EngineSpec, str | None]:
    """The engine for a local model's settings, and why it drafts nothing when its draft model
    cannot be found (a note: the model still serves)."""
    draft, note = None, None
    if settings.draft_model is not None:
        source = settings.draft_model
        try:
            draft = ModelIdentity.of(source if isinstance(source, Path) else source())
        except Exception as error:  # ModelError, OSError
            note = f"no draft model: {error}"
    spec = EngineSpec(
        model=ModelIdentity.of(path),
        catalog_id=catalog_id,
        n_ctx=settings.n_ctx,
        gpu_layers=settings.n_gpu_layers,
        threads=settings.n_threads,
        idle_s=idle_seconds(),
        prompt_lookup=settings.prompt_lookup,
        draft_model=draft,
        max_draft=settings.max_draft,
    )
    return spec, note


class EnginePaths:
    """The files of one engine."""

    def __init__(self, key: str, directory: Path | None = None) -> None:
        self.key = key
        self.directory = directory or runtime_dir()
        self.status = self.directory / f"engine-{key}.json"
        self.lock = self.directory / f"engine-{key}.lock"
        self.log = self.directory / f"engine-{key}.log"
        socket_path = self.directory / f"engine-{key}.sock"
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            socket_path = _short_socket_dir(self.directory) / f"{key}.sock"
        self.socket = socket_path

    @contextlib.contextmanager
    def locked(self, timeout_s: float = 30.0) -> Iterator[None]:
        """Held while an engine is started or torn down, so that exactly one runs per key."""
        with open(self.lock, "a+") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"another process holds {self.lock} for over {timeout_s:g} s") from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _short_socket_dir(long_dir: Path) -> Path:
    digest = hashlib.sha256(str(long_dir).encode()).hexdigest()[:10]
    return _private_dir(Path(tempfile.gettempdir()) / f"ninetyten-{os.getuid()}-{digest}")


# -- what the supervisor writes about the engine ------------------------------------------


Phase = Literal["load", "generation", "idle"]


class CrashRecord(BaseModel):
    worker_pid: int
    signal: str | None = None  # "SIGSEGV"; None when the process exited with a status instead
    exit_status: int | None = None
    during: Phase
    at: float
    cause: str = ""

    def describe(self, *, cause: bool = True) -> str:
        """ "SIGSEGV while generating; likely cause: ..." (what the user reads)."""
        what = self.signal or f"exit status {self.exit_status}"
        doing = {"load": "while loading the model", "generation": "while generating", "idle": "while idle"}[self.during]
        return f"{what} {doing}" + (f"; likely cause: {self.cause}" if cause and self.cause else "")


State = Literal["starting", "loading", "ready", "failed", "restarting", "bad", "stopped"]


class EngineStatus(BaseModel):
    key: str
    state: State
    supervisor_pid: int
    worker_pid: int | None = None
    model_path: str
    socket: str
    started_at: float
    restarts: int = 0
    load_crashes_in_a_row: int = 0
    crashes: list[CrashRecord] = Field(default_factory=list)
    error: str | None = None

    def write(self, path: Path) -> None:
        temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
        temporary.write_text(self.model_dump_json(), encoding="utf-8")
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> "EngineStatus | None":
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError):
            return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_engines(directory: Path | None = None) -> list[EngineStatus]:
    """Engines whose supervisor is alive, from their status files."""
    folder = directory or runtime_dir()
    found = []
    for path in sorted(folder.glob("engine-*.json")):
        status = EngineStatus.read(path)
        if status is not None and status.state != "stopped" and pid_alive(status.supervisor_pid):
            found.append(status)
    return found


def stop_engines(directory: Path | None = None, timeout_s: float = 10.0) -> tuple[int, int]:
    """SIGTERM every running engine's supervisor (it stops its engine) and wait up to `timeout_s`
    for them to exit; how many stopped, and how many still run."""
    engines = running_engines(directory)
    for status in engines:
        try:
            os.kill(status.supervisor_pid, signal.SIGTERM)
        except ProcessLookupError:  # exited since its status file was read
            pass
    deadline = time.monotonic() + timeout_s
    while any(pid_alive(s.supervisor_pid) for s in engines) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sum(1 for s in engines if pid_alive(s.supervisor_pid))
    return len(engines) - left, left


# -- models that crash the engine on load -------------------------------------------------


class BadModel(BaseModel):
    model: ModelIdentity
    crashes: list[CrashRecord]
    marked_at: float

    def describe(self) -> str:
        last = self.crashes[-1]
        return (
            f"{self.model.path} crashed the local engine {len(self.crashes)} times in a row while loading "
            f"({last.signal or f'exit status {last.exit_status}'}"
            + (f"; likely cause: {last.cause})" if last.cause else ")")
        )


class BadModels:
    """The data directory's list of model files not to load again (until they change)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from local_models import ninetyten_home

            path = ninetyten_home() / "engine" / "bad-models.json"
        self.path = path

    def _read(self) -> list[BadModel]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [BadModel.model_validate(item) for item in raw]
        except (OSError, ValueError, ValidationError, TypeError):
            return []

    def _write(self, entries: list[BadModel]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        temporary.write_text(
            json.dumps([entry.model_dump(mode="json") for entry in entries], indent=1), encoding="utf-8"
        )
        os.replace(temporary, self.path)

    def find(self, model: ModelIdentity) -> BadModel | None:
        return next((entry for entry in self._read() if entry.model == model), None)

    def entries(self) -> list[BadModel]:
        return self._read()

    def mark(self, model: ModelIdentity, crashes: list[CrashRecord]) -> BadModel:
        entry = BadModel(model=model, crashes=crashes, marked_at=time.time())
        self._write([*(e for e in self._read() if e.model.path != model.path), entry])
        return entry

    def clear(self, path: str | None = None) -> int:
        entries = self._read()
        kept = [e for e in entries if path is not None and e.model.path != os.path.abspath(path)]
        if len(kept) != len(entries):
            self._write(kept)
        return len(entries) - len(kept)
