"""One program run inside a sandbox, with the guard first; its status, time and the end of stderr.

Every program runs in its own process, in its own session (a timeout kills the whole process
group); output goes to files, never pipes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lsp_server.eval.sandbox import Sandbox

Status = Literal["passed", "failed", "timeout"]

DEFAULT_TIMEOUT_S = 5.0
MEMORY_LIMIT_BYTES = 2 * 1024**3
FILE_SIZE_LIMIT_BYTES = 16 * 1024**2
OUTPUT_TAIL_CHARS = 2000


@dataclass(frozen=True)
class ExecutionResult:
    status: Status
    duration_s: float
    detail: str = ""  # the end of stderr: why a program failed

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@lru_cache(maxsize=1)
def guard_source() -> str:
    """The guard program's text; it runs as `python -I -S -c` before the candidate."""
    return (Path(__file__).with_name("guard.py")).read_text(encoding="utf-8")


def python_args(sandbox: Sandbox, folder: Path, timeout_s: float) -> list[str]:
    # The limits are set by the child itself, before the program: a preexec_fn would run
    # between fork and exec in a process with threads (the model's), which can deadlock.
    # -S: the program needs the standard library only, not whatever site-packages hold.
    return [
        "-I",
        "-S",
        "-c",
        guard_source(),
        str(int(timeout_s) + 1),
        str(MEMORY_LIMIT_BYTES),
        str(FILE_SIZE_LIMIT_BYTES),
        str(sandbox.process_limit),
        sandbox.workdir(folder),
    ]


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-OUTPUT_TAIL_CHARS:].decode("utf-8", "replace").strip()


def run_in_sandbox(source: str, timeout_s: float, sandbox: Sandbox) -> ExecutionResult:
    """Run `source` (the program and its `check(...)` call) in `sandbox`; passed means exit status 0."""
    with tempfile.TemporaryDirectory(prefix="ninetyten-eval-") as work, ExitStack() as stack:
        folder = Path(work)
        (folder / "candidate.py").write_text(source, encoding="utf-8")
        launch = sandbox.launch(folder, python_args(sandbox, folder, timeout_s), stack)
        started = time.perf_counter()
        # Output goes to files, not pipes: a program printing forever cannot fill our memory,
        # and the file-size limit stops it.
        with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
            process = subprocess.Popen(
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=launch.pass_fds,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return ExecutionResult("timeout", time.perf_counter() - started, f"no result after {timeout_s:g} s")
        duration = time.perf_counter() - started
        if code == 0:
            return ExecutionResult("passed", duration)
        detail = _tail(folder / "stderr")
        # bwrap reports the program's death by a signal as exit status 128 + signal.
        signalled = -code if code < 0 else code - 128 if code > 128 else 0
        if signalled in (signal.SIGXCPU, signal.SIGKILL):
            return ExecutionResult("timeout", duration, detail or f"killed by signal {signalled}")
        return ExecutionResult("failed", duration, detail.splitlines()[-1] if detail else f"exit status {code}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # Killing bwrap kills the sandbox: its init has a parent-death signal, and the pid
    # namespace ends with its init.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
