"""Running a completed program and its tests, isolated from the machine and the network.

Completions are untrusted model output, so every program runs in its own process:
- `python -I` (no user site, no PYTHON* variables, the script's dir not on sys.path),
  a scrubbed environment and a fresh temporary directory as cwd and HOME;
- resource limits set before the program runs: CPU seconds, address space, file size, no
  core dumps; its own session, so a timeout kills the whole process group;
- no network: a fresh network namespace (`unshare -n`, or `unshare -rn` for a user
  without privileges) when the kernel allows it, and in every case an audit hook that
  refuses sockets, subprocesses and file deletion before the program's first line runs.
  The namespace is the real wall; the audit hook covers machines where it is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout"]

DEFAULT_TIMEOUT_S = 5.0
MEMORY_LIMIT_BYTES = 2 * 1024**3
FILE_SIZE_LIMIT_BYTES = 16 * 1024**2
OUTPUT_TAIL_CHARS = 2000

# Runs before the candidate program. Audit hooks cannot be removed once added, so the
# program cannot switch this off; the events are the documented CPython audit events.
_GUARD = r'''
import resource, sys
for _name, _value in (("RLIMIT_CPU", {cpu}), ("RLIMIT_AS", {memory}), ("RLIMIT_FSIZE", {fsize}), ("RLIMIT_CORE", 0)):
    resource.setrlimit(getattr(resource, _name), (_value, _value))
_DENIED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "pty.spawn", "os.remove", "os.unlink", "os.rmdir", "os.rename", "shutil.rmtree",
           "os.kill", "os.killpg", "ctypes.", "urllib.Request", "http.client.connect", "ftplib.", "smtplib.",
           "imaplib.", "poplib.", "nntplib.", "telnetlib.", "webbrowser.")
def _guard(event, args):
    if event.startswith(_DENIED):
        raise PermissionError(f"blocked in the evaluation sandbox: {event}")
sys.addaudithook(_guard)
del _guard
import runpy
runpy.run_path("candidate.py", run_name="__main__")
'''


@dataclass(frozen=True)
class ExecutionResult:
    status: Status
    duration_s: float
    detail: str = ""  # the end of stderr: why a program failed

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@lru_cache(maxsize=1)
def network_isolation() -> tuple[str, ...]:
    """The command prefix that gives a process a network namespace of its own, or ()."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    for flags in ("-n", "-rn"):
        try:
            probe = subprocess.run([unshare, flags, sys.executable, "-c", "pass"], capture_output=True, timeout=20,
                                   check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return (unshare, flags)
    return ()


def isolation_summary() -> str:
    prefix = network_isolation()
    namespace = f"network namespace ({' '.join(['unshare', *prefix[1:]])})" if prefix else "no network namespace"
    return f"{namespace} + audit hook refusing sockets/subprocesses; python -I, scrubbed env, rlimits, temp cwd"


def _guard(timeout_s: float) -> str:
    # The limits are set by the child itself, before the program: a preexec_fn would run
    # between fork and exec in a process with threads (the model's), which can deadlock.
    return _GUARD.replace("{cpu}", str(int(timeout_s) + 1)).replace("{memory}", str(MEMORY_LIMIT_BYTES)).replace(
        "{fsize}", str(FILE_SIZE_LIMIT_BYTES))


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-OUTPUT_TAIL_CHARS:].decode("utf-8", "replace").strip()


def run_program(source: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> ExecutionResult:
    """Run `source` (the program and its `check(...)` call); passed means exit status 0."""
    with tempfile.TemporaryDirectory(prefix="ninetyten-eval-") as work:
        folder = Path(work)
        (folder / "candidate.py").write_text(source, encoding="utf-8")
        env = {"PATH": os.defpath, "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        command = [*network_isolation(), sys.executable, "-I", "-c", _guard(timeout_s)]
        started = time.perf_counter()
        # Output goes to files, not pipes: a program printing forever cannot fill our memory,
        # and the file-size limit stops it.
        with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
            process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                       start_new_session=True)
            try:
                code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return ExecutionResult("timeout", time.perf_counter() - started, f"no result after {timeout_s:g} s")
        duration = time.perf_counter() - started
        if code == 0:
            return ExecutionResult("passed", duration)
        detail = _tail(folder / "stderr")
        if code < 0 and -code in (signal.SIGXCPU, signal.SIGKILL):
            return ExecutionResult("timeout", duration, detail or f"killed by signal {-code}")
        return ExecutionResult("failed", duration, detail.splitlines()[-1] if detail else f"exit status {code}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_programs(sources: Sequence[str], *, jobs: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_done: Callable[[], None] | None = None) -> list[ExecutionResult]:
    """Run many programs, `jobs` at a time; results in the order of `sources`."""

    def one(source: str) -> ExecutionResult:
        result = run_program(source, timeout_s)
        if on_done is not None:
            on_done()
        return result

    if jobs <= 1:
        return [one(source) for source in sources]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ninetyten-eval-run") as pool:
        return list(pool.map(one, sources))
