"""Typing against the server: a burst of keystrokes, cache hits, and memory.

(a) a typing burst: 20 keystrokes 60 ms apart, each followed by an automatic inline
    completion request, as an editor sends them. Counts the generations the server
    started (target <= 2) and times the last keystroke -> suggestion, against one warm
    completion (an explicitly invoked request that runs the model) in the same run;
(b) cache hits: the same position asked again, and a position the user typed through
    (the first characters of the suggestion), timed from request to response
    (target < 5 ms), against the warm completion;
(c) accept -> next suggestion: after accepting a suggestion, the next one comes from the
    speculative request made while the user was reading;
(d) peak RSS of the server process against the size of the model file.

    python bench/typing_burst.py [--model PATH|ID] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from completion_latency import LspClient, long_document, percentile, summarize  # noqa: E402

from local_models import resolve_model  # noqa: E402

KEYSTROKES = 20
GAP_S = 0.060
N_CTX = 4096


class TypingClient(LspClient):
    async def request(self, uri: str, line: int, character: int, *, invoked: bool) -> tuple[float, str]:
        kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
        started = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line, character),
                context=types.InlineCompletionContext(trigger_kind=kind),
            )
        )
        text = result.items[0].insert_text if result and result.items else ""
        return (time.perf_counter() - started) * 1000.0, text

    async def stats(self) -> dict[str, int]:
        raw = await self.client.protocol.send_request_async("ninetyten/stats", {})
        return raw if isinstance(raw, dict) else raw._asdict()

    def peak_rss_mb(self) -> float:
        process = self.client._server
        status = Path(f"/proc/{process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


async def run(model_arg: str | None, rounds: int) -> dict[str, Any]:
    server = TypingClient(model_arg, {"n_ctx": N_CTX, "completion": {"max_tokens": 16}})
    await server.start()
    text, line, character = long_document()
    burst_ms: list[float] = []
    warm_ms: list[float] = []
    generations: list[int] = []
    same_ms: list[float] = []
    typed_ms: list[float] = []
    accept_ms: list[float] = []
    accept_hits = 0
    for round_index in range(rounds + 1):
        uri = f"file:///bench/typing-{round_index}.py"
        server.open(uri, text)
        version = 1
        # One warm completion: the model runs (nothing cached at this position).
        await server.request(uri, line, character, invoked=True)  # warms the KV cache for this file
        version += 1
        server.insert(uri, version, line, character, "(")
        warm, suggestion = await server.request(uri, line, character + 1, invoked=True)
        # (b) the same position again, then typed through.
        same, again = await server.request(uri, line, character + 1, invoked=False)
        typed_hit = None
        if len(suggestion) >= 2:
            version += 1
            server.insert(uri, version, line, character + 1, suggestion[0])
            typed_hit, _ = await server.request(uri, line, character + 2, invoked=False)
        # (c) accept the rest, give the speculative request a moment, ask at the new position.
        accept = None
        if len(suggestion) >= 2 and "\n" not in suggestion:
            await asyncio.sleep(0.5)  # the user reading the suggestion
            version += 1
            server.insert(uri, version, line, character + 2, suggestion[1:])
            before = (await server.stats())["cache_hits"]
            accept, _ = await server.request(uri, line, character + 1 + len(suggestion), invoked=False)
            if round_index > 0:
                accept_hits += int((await server.stats())["cache_hits"] > before)
        # (a) a burst on a fresh line below.
        burst_line = line + 1
        version += 1
        server.insert(uri, version, burst_line, 0, "        \n")
        start_stats = await server.stats()
        pending = []
        last_key = 0.0
        for n in range(KEYSTROKES):
            version += 1
            server.insert(uri, version, burst_line, 8 + n, "abcdefghijklmnopqrstuvwxyz"[n % 26])
            last_key = time.perf_counter()
            pending.append(asyncio.ensure_future(server.request(uri, burst_line, 9 + n, invoked=False)))
            if n < KEYSTROKES - 1:
                await asyncio.sleep(GAP_S)
        await asyncio.gather(*pending)
        last_done = (time.perf_counter() - last_key) * 1000.0
        end_stats = await server.stats()
        if round_index == 0:
            continue
        warm_ms.append(warm)
        same_ms.append(same)
        if typed_hit is not None:
            typed_ms.append(typed_hit)
        if accept is not None:
            accept_ms.append(accept)
        burst_ms.append(last_done)
        generations.append(end_stats["generations"] - start_stats["generations"])
    peak_rss = server.peak_rss_mb()
    final_stats = await server.stats()
    await server.stop()
    model_path = resolve_model(model_arg, None).path
    model_mb = model_path.stat().st_size / 2**20
    warm_p50 = percentile(warm_ms, 50)
    return {
        "model": model_path.name,
        "rounds": rounds,
        "warm": summarize("one warm completion", warm_ms),
        "burst": summarize("last keystroke -> suggestion", burst_ms),
        "burst_ratio_p50": percentile(burst_ms, 50) / warm_p50,
        "generations_per_burst_max": max(generations),
        "generations_target": 2,
        "same_position": summarize("same position again", same_ms),
        "typed_through": summarize("typed through", typed_ms),
        "accept_next": summarize("accepted -> next", accept_ms),
        "accept_hits": accept_hits,
        "accept_tries": len(accept_ms),
        "cache_target_ms": 5.0,
        "cache_ratio_p50": percentile(typed_ms + same_ms, 50) / warm_p50,
        "peak_rss_mb": peak_rss,
        "model_mb": model_mb,
        "rss_over_model": peak_rss / model_mb,
        "stats": final_stats,
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"model: {r['model']}   rounds: {r['rounds']}")
    print()
    print(f"{'':<32}{'p50 ms':>10}{'p95 ms':>10}{'n':>5}")
    for key in ("warm", "burst", "same_position", "typed_through", "accept_next"):
        row = r[key]
        print(f"{row['label']:<32}{row['p50_ms']:>10.1f}{row['p95_ms']:>10.1f}{row['n']:>5}")
    print()
    print(
        f"generations per 20-key burst (max):    {r['generations_per_burst_max']}  "
        f"(target <= {r['generations_target']})"
    )
    print(f"last keystroke -> suggestion / warm:   {r['burst_ratio_p50']:.2f}")
    print(
        f"cache hit p50 / warm completion p50:   {r['cache_ratio_p50']:.3f}  "
        f"(hits p50 {percentile([r['same_position']['p50_ms'], r['typed_through']['p50_ms']], 50):.2f} ms; "
        f"target < {r['cache_target_ms']:.0f} ms)"
    )
    print(f"accepted -> next from the cache:       {r['accept_hits']}/{r['accept_tries']}")
    print(
        f"peak server RSS / model file:          {r['peak_rss_mb']:.0f} MB / {r['model_mb']:.0f} MB = "
        f"{r['rss_over_model']:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .gguf path or catalog id (default: the embedded model)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (after one warm-up round)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = asyncio.run(run(args.model, args.rounds))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
