"""Running a completed program and its tests, isolated from the machine and the network.

Completions are untrusted model output, so every program runs in its own process inside a
sandbox (`sandbox.py`: bubblewrap, or nothing but the guard when the user explicitly
allows that). In every case the process starts with the guard (`guard.py`): resource
limits, then an audit hook, then the program. Its own session, so a timeout kills the whole
process group; output goes to files, never pipes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from lsp_server.eval.program_run import DEFAULT_TIMEOUT_S, ExecutionResult, run_in_sandbox
from lsp_server.eval.sandbox import Sandbox, require_sandbox


def run_program(
    source: str, timeout_s: float = DEFAULT_TIMEOUT_S, *, sandbox: Sandbox | None = None
) -> ExecutionResult:
    """Run `source` (the program and its `check(...)` call); passed means exit status 0.

    Without `sandbox`, the bubblewrap sandbox is required (SandboxUnavailable otherwise)."""
    return run_in_sandbox(source, timeout_s, sandbox if sandbox is not None else require_sandbox())


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
