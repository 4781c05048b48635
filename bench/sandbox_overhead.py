"""What the bubblewrap sandbox costs per test program in `ninetyten eval`.

The same HumanEval programs (canonical answers, all passing) run one at a time through the
bubblewrap sandbox and through the unsandboxed child process that `--unsafe-no-sandbox`
uses (the previous default), interleaved so that both see the same machine load. The
baseline is that unsandboxed run, measured in the same process.

    python bench/sandbox_overhead.py [--programs N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsp_server.eval.execution import run_program  # noqa: E402
from lsp_server.eval.humaneval import sample_tasks  # noqa: E402
from lsp_server.eval.sandbox import Sandbox, UnsandboxedProcess, require_sandbox  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def one(source: str, sandbox: Sandbox) -> float:
    started = time.perf_counter()
    result = run_program(source, sandbox=sandbox)
    if not result.passed:
        raise SystemExit(f"a canonical program failed ({result.detail}): the benchmark measures nothing")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=20, help="HumanEval programs per round (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the programs (default 3)")
    args = parser.parse_args()

    sandboxed = require_sandbox()
    plain = UnsandboxedProcess.for_this_machine()
    sources = [task.program(task.middle) for task in sample_tasks("single", args.programs, seed=0)]
    times: dict[str, list[float]] = {"bubblewrap": [], "unsandboxed": []}
    one(sources[0], sandboxed), one(sources[0], plain)  # warm the page cache for both
    for round_index in range(args.rounds):
        for index, source in enumerate(sources):
            # Alternate which goes first, so neither always follows the other.
            order = [("bubblewrap", sandboxed), ("unsandboxed", plain)]
            if (index + round_index) % 2:
                order.reverse()
            for name, sandbox in order:
                times[name].append(one(source, sandbox))

    print(f"{len(times['bubblewrap'])} programs each, one at a time")
    print(f"unsandboxed: {plain.summary()}")
    print(f"bubblewrap:  {sandboxed.summary()}")
    print(f"{'':12} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, samples in times.items():
        print(
            f"{name:12} {percentile(samples, 50):8.1f} {percentile(samples, 95):8.1f} {statistics.fmean(samples):8.1f}"
        )
    ratio = percentile(times["bubblewrap"], 50) / percentile(times["unsandboxed"], 50)
    extra = percentile(times["bubblewrap"], 50) - percentile(times["unsandboxed"], 50)
    print(f"bubblewrap / unsandboxed, p50: {ratio:.2f}x ({extra:+.1f} ms per program)")


if __name__ == "__main__":
    main()
