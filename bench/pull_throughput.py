"""Pull throughput: `ninetyten models pull` against `hf download` of the same file, same run.

A generated tiny GGUF (default about 250 MB) is served by the loopback Hugging Face hub
(tests/loopback_hub.py: a hub origin that redirects to a CDN origin, as huggingface.co
does). Each round downloads it once with `hf download` (huggingface_hub's own CLI, the
baseline) and once with `ninetyten models pull`, into fresh caches, interleaved. Both are
whole commands (process start-up included). `models pull` also hashes the file to check its
SHA-256 before recording it, which `hf download` does not; that hash is timed separately so
the ratio can be read with and without it.

    python bench/pull_throughput.py [--mb 250] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_models import build_tiny_model, sha256_file  # noqa: E402
from tests.loopback_hub import LoopbackHub  # noqa: E402

REPO = "bench/Tiny-Large-GGUF"
FILE = "tiny-large-f32.gguf"
BIN = Path(sys.executable).parent


def build_model(directory: Path, megabytes: int) -> Path:
    # n_embd 1024 / n_ff 4096: about 59 MB per layer plus 9 MB of embeddings (f32).
    layers = max(1, round((megabytes - 9) / 59))
    return build_tiny_model(directory / FILE, seed=2, n_layer=layers, n_embd=1024, n_head=8, n_head_kv=2, n_ff=4096)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "NINETYTEN_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    env.update(extra)
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=250, help="approximate size of the served file (default 250)")
    parser.add_argument("--rounds", type=int, default=3, help="downloads per tool (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pull-bench-") as scratch, LoopbackHub() as hub:
        work = Path(scratch)
        model = build_model(work, args.mb)
        size = model.stat().st_size
        hub.add_file(REPO, FILE, model.read_bytes())
        hf_times: list[float] = []
        pull_times: list[float] = []
        for round_number in range(args.rounds):
            hf_home = work / f"hf-{round_number}"
            hf_times.append(
                timed(
                    [str(BIN / "hf"), "download", REPO, FILE, "--cache-dir", str(hf_home / "hub")],
                    clean_env({"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(hf_home)}),
                )
            )
            home = work / f"nt-{round_number}"
            pull_times.append(
                timed(
                    [sys.executable, "-m", "lsp_server", "models", "pull", f"{REPO}:{FILE}", "--no-progress"],
                    clean_env(
                        {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home / "hf-home"), "NINETYTEN_HOME": str(home)}
                    ),
                )
            )
        start = time.perf_counter()
        sha256_file(model)
        hash_s = time.perf_counter() - start
        transfers = len(hub.cdn_gets())

    hf_median, pull_median = statistics.median(hf_times), statistics.median(pull_times)
    mb = size / 1e6
    print(
        f"file                    {mb:.0f} MB generated GGUF, loopback hub (302 to a CDN origin), {transfers} transfers"
    )
    print(
        f"hf download             median {hf_median:.2f} s ({mb / hf_median:.0f} MB/s); "
        f"runs {', '.join(f'{t:.2f}' for t in hf_times)}"
    )
    print(
        f"ninetyten models pull   median {pull_median:.2f} s ({mb / pull_median:.0f} MB/s); "
        f"runs {', '.join(f'{t:.2f}' for t in pull_times)}"
    )
    print(f"  SHA-256 of the file   {hash_s:.2f} s (models pull verifies it; hf download does not)")
    print(
        f"ratio pull / hf         {pull_median / hf_median:.2f} "
        f"(without the verification hash: {(pull_median - hash_s) / hf_median:.2f})"
    )


if __name__ == "__main__":
    main()
