"""What routing costs: the decision alone, and a whole completion with and without it.

1. `decide()` for a completion under the example policy (the quick path: nothing can
   leave the machine, so no content scan), and full decisions with the sensitivity scan
   on 4 KB and 200 KB of real code; baseline: `str.count("\\n")` over the same text.
   A diff chunk of 8 files is judged once per file (the strictest decision applies): its
   baseline is the same chunk judged as one file. A repository policy laid over the user's
   (the trust merge) against parsing the same file alone.
2. Inline completions through `Engine.complete` (router + ledger) against the bare
   completion task (prompt, generation, post-processing) on the same inputs and model,
   interleaved; the difference is what routing adds to a completion.

    python bench/routing_overhead.py [--model PATH|ID] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsp_server.completion.complete import Completer  # noqa: E402
from lsp_server.completion.prompt import CompletionInput  # noqa: E402
from lsp_server.config import ServerConfig  # noqa: E402
from lsp_server.engine.core import Engine  # noqa: E402
from lsp_server.ledger import Ledger  # noqa: E402
from lsp_server.routing.policy import LoadedPolicy, Policy, load_policy_file, parse_policy  # noqa: E402
from lsp_server.routing.policy_merge import merge_repository_policy  # noqa: E402
from lsp_server.routing.router import RouteRequest, decide, scanner_for  # noqa: E402

EXAMPLE = ROOT / "examples" / "policy.toml"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def timed(fn, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def code_of_size(size: int) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = ""
    for name in ("textwrap.py", "difflib.py", "argparse.py", "typing.py"):
        text += (stdlib / name).read_text(encoding="utf-8")
        if len(text) >= size:
            break
    return text[:size]


def decision_bench() -> list[tuple[str, list[float], list[float]]]:
    policy = load_policy_file(EXAMPLE)
    scanner = scanner_for(policy)
    rows = []
    quick = RouteRequest(task="completion", path="src/app.py")

    class NoScan:
        def scan(self, text: str, path: str | None = None):  # type: ignore[no-untyped-def]
            from lsp_server.sensitivity.findings import SensitivityReport

            return SensitivityReport(())

    no_scan = NoScan()
    rows.append(
        (
            "completion decision (quick path)",
            timed(lambda: decide(policy, quick, no_scan), 5000),  # type: ignore[arg-type]
            timed(lambda: "src/app.py".count("/"), 5000),
        )
    )
    for label, size, runs in (("4 KB", 4 * 1024, 2000), ("200 KB", 200 * 1024, 150)):
        text = code_of_size(size)
        request = RouteRequest(task="refactor", text=text, path="src/auth/views.py")
        rows.append(
            (
                f"decision with scan, {label}",
                timed(lambda: decide(policy, request, scanner), runs),
                timed(lambda: text.count("\n"), runs),
            )
        )
    chunk = code_of_size(12 * 1024)
    files = tuple(f"src/module_{n}.py" for n in range(8))
    several = RouteRequest(task="explain", text=chunk, path=files[0], paths=files)
    single = RouteRequest(task="explain", text=chunk, path=files[0])
    rows.append(
        (
            "explain chunk 12 KB, 8 files",
            timed(lambda: decide(policy, several, scanner), 100),
            timed(lambda: decide(policy, single, scanner), 100),
        )
    )
    policy_text = EXAMPLE.read_text()
    rows.append(
        (
            "repository policy parsed + merged",
            timed(lambda: merge_repository_policy(Policy(), parse_policy(policy_text)), 500),
            timed(lambda: parse_policy(policy_text), 500),
        )
    )
    return rows


async def completion_bench(model: str | None, rounds: int) -> tuple[list[float], list[float], list[float]]:
    home = Path(tempfile.mkdtemp(prefix="ninetyten-bench-"))
    engine = Engine(
        ServerConfig(model=model, completion={"max_tokens": 16}),
        policy=LoadedPolicy(load_policy_file(EXAMPLE), "flag", EXAMPLE),
        ledger=Ledger(home / "ledger.sqlite3"),
    )
    engine.start()
    await engine.wait_ready()
    completer = Completer(engine)
    task = completer.task
    text = code_of_size(6000)
    lines = text.split("\n")
    spots = [(i, len(lines[i])) for i in range(40, len(lines) - 1, 7) if lines[i].strip()][:12]
    other = code_of_size(9000)[6000:]
    flush = CompletionInput(path="src/other.py", text=other, line=20, character=0)
    routed: list[float] = []
    bare: list[float] = []
    own: list[float] = []
    bare_own: list[float] = []
    for round_index in range(rounds + 1):
        for line, col in spots:
            inp = CompletionInput(path="src/app.py", text=text, line=line, character=col)
            # Each measured request starts from the same cache state: another file's prompt.
            await task.run(flush)
            started = time.perf_counter()
            result = await completer.complete(inp)
            routed_ms = (time.perf_counter() - started) * 1000
            # Everything the engine did besides prompt building and the model's own work.
            own.append(routed_ms - result.usage.total_ms - result.extra["build_ms"])
            await task.run(flush)
            started = time.perf_counter()
            outcome = await task.run(inp)
            bare_ms = (time.perf_counter() - started) * 1000
            bare_own.append(bare_ms - outcome.generation.usage.total_ms - outcome.build_ms)
            if round_index:
                routed.append(routed_ms)
                bare.append(bare_ms)
    await engine.aclose()
    added = [a - b for a, b in zip(own, bare_own)][len(spots) :]
    return routed, bare, added


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .gguf path or catalog id (default: the embedded model)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print(f"{'decision':<36}{'p50 us':>10}{'p99 us':>10}{'baseline p50 us':>17}{'ratio':>9}")
    for label, samples, baseline in decision_bench():
        print(
            f"{label:<36}{percentile(samples, 50):>10.1f}{percentile(samples, 99):>10.1f}"
            f"{percentile(baseline, 50):>17.2f}{percentile(samples, 50) / max(percentile(baseline, 50), 1e-3):>9.0f}x"
        )
    print(
        "targets: quick path well under 1000 us; with scan p99 < 1000 us (4 KB) and < 20000 us (200 KB); "
        "the last two rows' baselines are the one-file decision and the parse alone"
    )
    routed, bare, own = asyncio.run(completion_bench(args.model, args.rounds))
    overhead = statistics.median(r - b for r, b in zip(routed, bare))
    print()
    print(
        f"completion through the engine (router + ledger) p50 {percentile(routed, 50):.1f} ms, "
        f"bare task p50 {percentile(bare, 50):.1f} ms, ratio {percentile(routed, 50) / percentile(bare, 50):.3f}, "
        f"paired median difference {overhead * 1000:.0f} us (n={len(routed)})"
    )
    print(
        f"time routing adds to a completion (engine's own time minus the bare task's, outside the model): "
        f"p50 {percentile(own, 50) * 1000:.0f} us, p95 {percentile(own, 95) * 1000:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
