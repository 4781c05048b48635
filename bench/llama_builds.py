"""Speed of llama.cpp builds against each other: same model, same prompt, same run.

    python bench/llama_builds.py native=A.whl tuned=B.whl [avx2=C.whl ...] [--model PATH] [--rounds 3]

Each wheel is unpacked into a temporary directory and imported by a child process ahead of
the installed llama-cpp-python, so builds with different compile flags run side by side
without a virtual environment each. Rounds interleave the builds, so that load from other
processes on the machine falls on all of them alike. The first build is the baseline;
the table prints prompt and generation tokens/s (median over rounds) and their ratio to it.
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
started = time.perf_counter()
llm.eval(prompt)
prompt_s = time.perf_counter() - started
ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()
started = time.perf_counter()
for _ in range(spec["tokens"]):
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
    llm.eval([int(np.argmax(logits))])
generate_s = time.perf_counter() - started
print(json.dumps({"prompt_tps": len(prompt) / prompt_s, "gen_tps": spec["tokens"] / generate_s,
                  "system_info": llama_cpp.llama_print_system_info().decode()}))
"""


def unpack(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    for library in (into / "llama_cpp" / "lib").iterdir():
        library.chmod(0o755)
    return into


def run_once(root: Path, model: Path, prompt: str, prompt_tokens: int, tokens: int, threads: int | None) -> dict:
    spec = {"root": str(root), "model": str(model), "prompt": prompt, "prompt_tokens": prompt_tokens,
            "tokens": tokens, "threads": threads}
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, env=env,
                            timeout=900)
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
                results[name].append(run_once(root, args.model, prompt, args.prompt_tokens, args.tokens,
                                               args.threads))
                print(f"round {round_index + 1} {name}: prompt {results[name][-1]['prompt_tps']:.1f} tok/s, "
                      f"generation {results[name][-1]['gen_tps']:.1f} tok/s", file=sys.stderr)
    baseline = next(iter(results))
    base_prompt = statistics.median(r["prompt_tps"] for r in results[baseline])
    base_gen = statistics.median(r["gen_tps"] for r in results[baseline])
    print(f"model {args.model.name}, prompt {args.prompt_tokens} tokens, {args.tokens} generated, "
          f"{args.threads or 'default'} threads, "
          f"median of {args.rounds} interleaved rounds; ratios against {baseline}")
    print(f"{'build':<12} {'prompt tok/s':>13} {'ratio':>6} {'gen tok/s':>10} {'ratio':>6}")
    for name, runs in results.items():
        prompt_tps = statistics.median(r["prompt_tps"] for r in runs)
        gen_tps = statistics.median(r["gen_tps"] for r in runs)
        print(f"{name:<12} {prompt_tps:>13.1f} {prompt_tps / base_prompt:>6.2f} {gen_tps:>10.1f} "
              f"{gen_tps / base_gen:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
