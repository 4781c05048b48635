"""Running a completed program and its tests, isolated from the machine and the network.

Completions are untrusted model output, so every program runs in its own process inside a
sandbox (`sandbox.py`: bubblewrap, or nothing but the guard when the user explicitly
allows that). In every case the process starts with the guard (`guard.py`): resource
limits, then an audit hook, then the program. Its own session, so a timeout kills the whole
process group; output goes to files, never pipes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from lsp_server.eval.sandbox import Sandbox, require_sandbox

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


def run_program(
    source: str, timeout_s: float = DEFAULT_TIMEOUT_S, *, sandbox: Sandbox | None = None
) -> ExecutionResult:
    """Run `source` (the program and its `check(...)` call); passed means exit status 0.

    Without `sandbox`, the bubblewrap sandbox is required (SandboxUnavailable otherwise)."""
    sandbox = sandbox if sandbox is not None else require_sandbox()
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


def run_programs(
    sources: Sequence[str],
    *,
    jobs: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sandbox: Sandbox | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[ExecutionResult]:
    """Run many programs, `jobs` at a time; results in the order of `sources`."""
    sandbox = sandbox if sandbox is not None else require_sandbox()

    def one(source: str) -> ExecutionResult:
        result = run_program(source, timeout_s, sandbox=sandbox)
        if on_done is not None:
            on_done()
        return result

    if jobs <= 1:
        return [one(source) for source in sources]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ninetyten-eval-run") as pool:
        return list(pool.map(one, sources))
