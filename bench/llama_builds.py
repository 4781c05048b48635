"""Speed of llama.cpp builds against each other: same model, same prompt, same run.

    python bench/llama_builds.py native=A.whl tuned=B.whl [avx2=C.whl ...] [--model PATH] [--rounds 3]

Each wheel is unpacked into a temporary directory and imported by a child process ahead of
the installed llama-cpp-python, so builds with different compile flags run side by side
without a virtual environment each. Rounds interleave the builds, so that load from other
processes on the machine falls on all of them alike. The first build is the baseline;
the table prints prompt and generation tokens/s (median over rounds) and their ratio to it,
per wall-clock second and per CPU-second of the child process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT_FILE = ROOT / "lsp_server" / "positions.py"

CHILD = r"""
import json, os, sys, time
import llama_cpp, numpy as np
spec = json.loads(sys.argv[1])
assert os.path.dirname(llama_cpp.__file__).startswith(spec["root"]), llama_cpp.__file__
threads = spec["threads"] or max(1, min(len(os.sched_getaffinity(0)), 8))
llm = llama_cpp.Llama(model_path=spec["model"], n_ctx=2048, n_batch=512, n_threads=threads,
                      n_threads_batch=threads, verbose=False)
prompt = llm.tokenize(spec["prompt"].encode(), add_bos=True)[: spec["prompt_tokens"]]
started, cpu_started = time.perf_counter(), time.process_time()
llm.eval(prompt)
prompt_s, prompt_cpu = time.perf_counter() - started, time.process_time() - cpu_started
ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()
started, cpu_started = time.perf_counter(), time.process_time()
for _ in range(spec["tokens"]):
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
    llm.eval([int(np.argmax(logits))])
generate_s, generate_cpu = time.perf_counter() - started, time.process_time() - cpu_started
# Tokens per CPU-second as well: on a shared machine it moves less with other load than wall time.
print(json.dumps({"prompt_tps": len(prompt) / prompt_s, "gen_tps": spec["tokens"] / generate_s,
                  "prompt_cpu_tps": len(prompt) / prompt_cpu, "gen_cpu_tps": spec["tokens"] / generate_cpu,
                  "system_info": llama_cpp.llama_print_system_info().decode()}))
"""


def unpack(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    for library in (into / "llama_cpp" / "lib").iterdir():
        library.chmod(0o755)
    return into


def run_once(root: Path, model: Path, prompt: str, prompt_tokens: int, tokens: int, threads: int | None) -> dict:
    spec = {
        "root": str(root),
        "model": str(model),
        "prompt": prompt,
        "prompt_tokens": prompt_tokens,
        "tokens": tokens,
        "threads": threads,
    }
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, env=env, timeout=900
    )
    if result.returncode != 0:
        raise SystemExit(f"build in {root} failed (status {result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", metavar="NAME=WHEEL")
    parser.add_argument("--model", type=Path, default=None, help="default: the embedded Gemma 3 270M")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated per run")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None, help="default: all cores, at most 8 (as the server)")
    args = parser.parse_args()
    if args.model is None:
        from local_models import embedded_model_path

        args.model = embedded_model_path(progress=True)
    prompt = PROMPT_FILE.read_text(encoding="utf-8")
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="ninetyten-bench-builds-") as tmp:
        roots = {}
        for item in args.builds:
            name, _, wheel = item.partition("=")
            roots[name] = unpack(Path(wheel), Path(tmp) / name)
            results[name] = []
        for round_index in range(args.rounds):
            for name, root in roots.items():
                results[name].append(run_once(root, args.model, prompt, args.prompt_tokens, args.tokens, args.threads))
                last = results[name][-1]
                print(
                    f"round {round_index + 1} {name}: prompt {last['prompt_tps']:.1f} tok/s "
                    f"({last['prompt_cpu_tps']:.1f} per CPU-s), generation {last['gen_tps']:.1f} tok/s "
                    f"({last['gen_cpu_tps']:.1f} per CPU-s)",
                    file=sys.stderr,
                )
    baseline = next(iter(results))
    measures = ("prompt_tps", "gen_tps", "prompt_cpu_tps", "gen_cpu_tps")
    base = {m: statistics.median(r[m] for r in results[baseline]) for m in measures}
    print(
        f"model {args.model.name}, prompt {args.prompt_tokens} tokens, {args.tokens} generated, "
        f"{args.threads or 'default'} threads, median of {args.rounds} interleaved rounds; ratios against {baseline}"
    )
    print("tok/s per wall-clock second and per CPU-second of the process (less sensitive to other load)")
    print(
        f"{'build':<10} {'prompt':>8} {'ratio':>6} {'gen':>8} {'ratio':>6} {'prompt/cpu':>11} {'ratio':>6} "
        f"{'gen/cpu':>8} {'ratio':>6}"
    )
    for name, runs in results.items():
        row = f"{name:<10}"
        for measure, width in zip(measures, (8, 8, 11, 8)):
            value = statistics.median(r[measure] for r in runs)
            row += f" {value:>{width}.1f} {value / base[measure]:>6.2f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
