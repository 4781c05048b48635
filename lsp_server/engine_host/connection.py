"""Reaching the user's engine: finding its socket, starting it when none runs, one connection.

Like gopls's `-remote=auto`, the first client starts the engine and later ones attach; the
engine is a detached process (nobody's child but its supervisor's) that outlives the client
that started it, until it has had no client for the idle period. When a connection is lost,
the supervisor's status file says why: the signal that ended the engine and what it was doing.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from lsp_server.backends.base import BackendError
from lsp_server.engine_host.protocol import EngineInfo, Event, FrameReader, ProtocolError, Reply, encode, parse_incoming
from lsp_server.engine_host.runtime import BadModels, CrashRecord, EnginePaths, EngineSpec, EngineStatus, pid_alive

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_S = 30.0
CRASH_LOOKUP_S = 0.5  # how long a lost connection waits for the supervisor to say why
RPC_TIMEOUT_S = 60.0
LOG_ROTATE_BYTES = 2 << 20


class EngineUnavailable(BackendError):
    kind = "engine_unavailable"


class EngineCrashed(BackendError):
    """The engine died while this request was in it."""

    kind = "engine_crashed"

    def __init__(self, message: str, crash: CrashRecord | None = None) -> None:
        super().__init__(message)
        self.crash = crash
        if crash is not None and crash.signal:
            self.kind = f"engine_crashed_{crash.signal.lower()}"


class ModelMarkedBad(BackendError):
    kind = "model_marked_bad"


# -- finding or starting the engine -----------------------------------------------------


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def spawn_engine(spec: EngineSpec, paths: EnginePaths) -> int:
    """Start a supervisor (and so an engine) for `spec`, detached; its pid. Hold `paths.locked()`."""
    try:
        if paths.log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(paths.log, paths.log.with_name(paths.log.name + ".1"))
    except FileNotFoundError:
        pass
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
    command = [
        sys.executable,
        "-m",
        "lsp_server.engine_host.supervisor",
        "--detach",
        "--spec",
        spec.model_dump_json(),
        "--runtime-dir",
        str(paths.directory),
    ]
    fd = os.open(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        starter = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=fd,
            start_new_session=True,
            cwd="/",
            env=env,
        )
    finally:
        os.close(fd)
    assert starter.stdout is not None
    line = starter.stdout.readline()
    starter.stdout.close()
    starter.wait()
    try:
        return int(line)
    except ValueError:
        raise EngineUnavailable(
            f"the local engine did not start; its log ({paths.log}) says:\n{_log_tail(paths.log)}"
        ) from None


def attach(spec: EngineSpec, paths: EnginePaths, *, timeout_s: float = SPAWN_TIMEOUT_S) -> socket.socket:
    """A connection to the engine for `spec`, started first when none is running."""
    sock = _connect(paths.socket)
    if sock is not None:
        return sock
    with paths.locked(timeout_s):
        sock = _connect(paths.socket)
        if sock is not None:
            return sock
        bad = BadModels().find(spec.model)
        if bad is not None:
            raise ModelMarkedBad(
                f"{bad.describe()}; it is marked bad and not loaded again until the file "
                "changes (`ninetyten engine reset` forgets this); choose another model "
                "(`ninetyten models recommend`)"
            )
        pid = spawn_engine(spec, paths)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sock = _connect(paths.socket)
            if sock is not None:
                return sock
            status = EngineStatus.read(paths.status)
            if status is not None and status.supervisor_pid == pid and status.state in ("bad", "stopped"):
                break
            if not pid_alive(pid):
                break
            time.sleep(0.01)
    raise EngineUnavailable(f"the local engine did not start; its log ({paths.log}) says:\n{_log_tail(paths.log)}")


def crash_of(paths: EnginePaths, worker_pid: int | None, wait_s: float = CRASH_LOOKUP_S) -> CrashRecord | None:
    """What the supervisor recorded about the death of engine `worker_pid`, waiting a moment for it."""
    deadline = time.monotonic() + wait_s
    while True:
        status = EngineStatus.read(paths.status)
        if status is not None:
            for crash in reversed(status.crashes):
                if crash.worker_pid == worker_pid:
                    return crash
            if status.state in ("stopped",) or (status.worker_pid not in (None, worker_pid)):
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


# -- one connection ----------------------------------------------------------------------


class EngineConnection:
    """A socket to the engine, its reader thread, and the requests waiting for replies."""

    def __init__(self, sock: socket.socket, on_lost: Callable[["EngineConnection", list[Future[Reply]]], None]) -> None:
        self.sock = sock
        self._on_lost = on_lost
        # The model's state once it has loaded (the engine says so to every client), or why not.
        self.loaded: Future[EngineInfo] = Future()
        self._pending: dict[int, Future[Reply]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = False
        self.closing = False
        self.info: EngineInfo | None = None
        self._reader = threading.Thread(target=self._read, name="ninetyten-engine-reader", daemon=True)
        self._reader.start()

    def call(self, make: Callable[[int], Any]) -> tuple[int, Future[Reply]]:
        future: Future[Reply] = Future()
        with self._lock:
            if self.closed:
                raise EngineUnavailable("the connection to the local engine is closed")
            number = next(self._ids)
            self._pending[number] = future
            try:
                self.sock.sendall(encode(make(number)))
            except OSError as error:
                self._pending.pop(number, None)
                raise EngineUnavailable(f"the local engine is unreachable: {error}") from None
        return number, future

    def send(self, make: Callable[[int], Any]) -> None:
        """A message that gets no reply (a cancel); dropped when the connection is gone."""
        with self._lock:
            if self.closed:
                return
            try:
                self.sock.sendall(encode(make(next(self._ids))))
            except OSError:
                pass

    def request(self, make: Callable[[int], Any], timeout: float = RPC_TIMEOUT_S) -> Reply:
        _, future = self.call(make)
        reply = future.result(timeout)
        if reply.error is not None:
            raise BackendError(reply.error)
        return reply

    def _read(self) -> None:
        reader = FrameReader(self.sock)
        try:
            while True:
                body = reader.read()
                if body is None:
                    break
                message = parse_incoming(body)
                if isinstance(message, Event):
                    if message.event == "loaded" and not self.loaded.done():
                        self.loaded.set_result(message.info)
                    continue
                with self._lock:
                    future = self._pending.pop(message.id, None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (OSError, ProtocolError) as error:
            if not self.closing:
                log.warning("the connection to the local engine failed: %s", error)
        finally:
            with self._lock:
                self.closed = True
                pending = list(self._pending.values())
                self._pending.clear()
            try:
                self.sock.close()
            except OSError:
                pass
            self._on_lost(self, pending)

    def close(self) -> None:
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
