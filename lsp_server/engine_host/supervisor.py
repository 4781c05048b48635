"""The engine's supervisor: a small process that owns the socket and keeps the engine alive.

llama.cpp dies by a signal when it meets an instruction the CPU lacks, a damaged model
file or too little memory; no exception reaches Python. So the model runs in a child
(daemon.py) of this process, which imports no native code: it binds the user's socket,
starts the engine with the listening socket inherited, and when the engine dies it knows
by which signal and in which phase (loading, generating, idle: the engine reports them on
a pipe). It writes that to the status file, where every client that lost its connection
reads the cause, and starts the engine again after a backoff. A model that crashes the
engine three times in a row while loading is marked bad (runtime.BadModels) and not
started again until the file changes. Clients that connect while the engine restarts
wait in the socket's backlog.

When the engine exits because it has been idle, the supervisor removes the socket (under
the engine's lock, so that no client starts a second one meanwhile) and exits too.
SIGTERM (`ninetyten engine stop`) stops both.

For tests: `NINETYTEN_ENGINE_INJECT=SIGNAL@PHASE[*N]` arms the first N engines started
(default 1) to raise SIGNAL themselves at PHASE (load or generation); see daemon.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from lsp_server.engine_host.runtime import (
    BAD_AFTER_LOAD_CRASHES,
    BadModels,
    CrashRecord,
    EnginePaths,
    EngineSpec,
    EngineStatus,
    Phase,
)
from lsp_server.llama_build.selftest import likely_cause, signal_name

log = logging.getLogger(__name__)

INJECT_ENV = "NINETYTEN_ENGINE_INJECT"
ARMED_ENV = "NINETYTEN_ENGINE_INJECT_ARMED"
# Seconds before the next start, by crashes in a row: the first restart is at once.
BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STOP_GRACE_S = 3.0


def bind_private(path: Path) -> socket.socket:
    """A listening unix socket at `path` that only this user can connect to (mode 0600)."""
    try:
        path.unlink()  # a stale socket of an engine that died; the caller holds the lock
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600: no moment in which another user could connect
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener


class Supervisor:
    def __init__(self, spec: EngineSpec, paths: EnginePaths, *, env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.paths = paths
        self.env = dict(os.environ if env is None else env)
        self.stopping = threading.Event()
        self.worker: subprocess.Popen[bytes] | None = None
        self.status = EngineStatus(
            key=spec.key(),
            state="starting",
            supervisor_pid=os.getpid(),
            model_path=spec.model.path,
            socket=str(paths.socket),
            started_at=time.time(),
        )
        injection = self.env.pop(INJECT_ENV, "").strip()
        self._armed, _, count = injection.partition("*")
        self._armed_left = (int(count) if count.strip().isdigit() else 1) if self._armed else 0
        self._socket_inode: int | None = None

    def _write_status(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.status, key, value)
        try:
            self.status.write(self.paths.status)
        except OSError as error:
            log.warning("could not write %s: %s", self.paths.status, error)

    def stop(self, *_: object) -> None:
        self.stopping.set()
        worker = self.worker
        if worker is not None and worker.poll() is None:
            worker.terminate()

    def _start_worker(self, listener: socket.socket) -> tuple[subprocess.Popen[bytes], int]:
        read_end, write_end = os.pipe()
        env = dict(self.env)
        env.pop(ARMED_ENV, None)
        if self._armed_left > 0:
            env[ARMED_ENV] = self._armed
            self._armed_left -= 1
        command = [
            sys.executable,
            "-m",
            "lsp_server.engine_host.worker",
            "--listen-fd",
            str(listener.fileno()),
            "--report-fd",
            str(write_end),
            "--spec",
            self.spec.model_dump_json(),
        ]
        worker = subprocess.Popen(
            command, stdin=subprocess.PIPE, pass_fds=(listener.fileno(), write_end), env=env, cwd="/"
        )
        os.close(write_end)
        return worker, read_end

    def run(self) -> int:
        listener = bind_private(self.paths.socket)
        self._socket_inode = self.paths.socket.stat().st_ino
        crashes_in_a_row = 0
        load_crashes: list[CrashRecord] = []
        try:
            while not self.stopping.is_set():
                worker, report = self._start_worker(listener)
                self.worker = worker
                self._write_status(state="loading", worker_pid=worker.pid, error=None)
                phase: Phase = "load"
                last = ""
                served = False
                with os.fdopen(report, "r") as lines:
                    for line in lines:  # until the engine's end of the pipe closes: it exited
                        last = line.strip()
                        if last == "ready":
                            phase = "idle"
                            self._write_status(state="ready")
                        elif last.startswith("failed"):
                            phase = "idle"
                            self._write_status(state="failed", error=last[len("failed ") :])
                        elif last == "busy":
                            phase = "generation"
                        elif last == "idle":
                            phase = "idle"
                        elif last == "served":
                            served = True
                returncode = worker.wait()
                self.worker = None
                if self.stopping.is_set() or (returncode == 0 and last == "exit-idle"):
                    break
                if returncode == 0:
                    log.info("the engine exited (its supervisor's pipe closed)")
                    break
                crash = CrashRecord(
                    worker_pid=worker.pid,
                    during=phase,
                    at=time.time(),
                    signal=signal_name(-returncode) if returncode < 0 else None,
                    exit_status=returncode if returncode > 0 else None,
                    cause=likely_cause(signal_name(-returncode))
                    if returncode < 0
                    else "the engine process failed (its log has the details)",
                )
                log.error("engine %d died: %s", worker.pid, crash.describe())
                crashes_in_a_row = 1 if served else crashes_in_a_row + 1
                load_crashes = [*load_crashes, crash] if phase == "load" else []
                self.status.crashes = [*self.status.crashes, crash][-10:]
                if len(load_crashes) >= BAD_AFTER_LOAD_CRASHES:
                    entry = BadModels().mark(self.spec.model, load_crashes[-BAD_AFTER_LOAD_CRASHES:])
                    log.error("marked bad: %s", entry.describe())
                    self._write_status(
                        state="bad", worker_pid=None, load_crashes_in_a_row=len(load_crashes), error=entry.describe()
                    )
                    return 0
                self._write_status(
                    state="restarting",
                    worker_pid=None,
                    restarts=self.status.restarts + 1,
                    load_crashes_in_a_row=len(load_crashes),
                )
                delay = BACKOFF_S[min(crashes_in_a_row - 1, len(BACKOFF_S) - 1)]
                if delay:
                    self.stopping.wait(delay)
        finally:
            self._teardown(listener)
        return 0

    def _teardown(self, listener: socket.socket) -> None:
        worker = self.worker
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        try:
            with self.paths.locked(timeout_s=10.0):
                try:
                    if self.paths.socket.stat().st_ino == self._socket_inode:
                        self.paths.socket.unlink()
                except FileNotFoundError:
                    pass
                listener.close()
                if self.status.state != "bad":
                    self._write_status(state="stopped", worker_pid=None)
        except TimeoutError:
            listener.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsp_server.engine_host.supervisor")
    parser.add_argument("--spec", required=True, help="the EngineSpec as JSON")
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument(
        "--detach", action="store_true", help="fork once and let the parent exit, so that the engine is nobody's child"
    )
    args = parser.parse_args(argv)
    if args.detach:
        child = os.fork()  # single-threaded here: safe
        if child:
            print(child, flush=True)
            os._exit(0)
        os.setsid()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s supervisor[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    spec = EngineSpec.model_validate_json(args.spec)
    paths = EnginePaths(spec.key(), Path(args.runtime_dir))
    supervisor = Supervisor(spec, paths)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
