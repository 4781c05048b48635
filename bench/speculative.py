"""Speculative decoding on a refactor: tokens per second with prompt lookup against without.

The refactor of a 60-line function: the messages the server sends for a local refactor, in the
model's chat layout, with the answer's code block opened (what an instruct model writes first:
the embedded base model, left to itself, writes anything but code), greedy until the block
closes, once without drafts and once with prompt lookup, interleaved, in one run; tokens per
second (wall clock, and CPU time of this process, which a busy machine disturbs less) and
whether the two answers are the same, token for token.

On the embedded model (the default) the backend first checks that llama.cpp computes a token in
a batch exactly as alone (`exact_rows`, see lsp_server/backends/llama_cpp/speculative.py). Where it does
not, the backend refuses to draft and the "lookup" runs are plain greedy again; `--force` then
also runs the drafting loop anyway (as llama.cpp's own speculative modes do, without that check)
to show what it would gain and whether its answer would differ.

    python bench/speculative.py [--model PATH] [--tokens 640] [--rounds 2] [--force]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_models import embedded_model_path  # noqa: E402
from lsp_server.assist.prompts import AssistInput, messages_for  # noqa: E402
from lsp_server.backends.base import Generation, GenerationRequest  # noqa: E402
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings  # noqa: E402
from lsp_server.backends.llama_cpp.chat_template import stop_at_strings, stop_on_repetition  # noqa: E402

# A 60-line function, and an edit that leaves most of it as it is.
FUNCTION = '''def summarize_orders(orders, customers, tax_rate=0.2, currency="EUR"):
    """Totals per customer, with tax, and the biggest order of each.
    `orders` and `customers` come from the shop's export; amounts are floats."""
    by_customer = {}
    for order in orders:
        customer_id = order["customer_id"]
        if customer_id not in customers:
            continue
        entry = by_customer.setdefault(customer_id, {
            "name": customers[customer_id]["name"],
            "orders": 0,
            "net": 0.0,
            "tax": 0.0,
            "gross": 0.0,
            "biggest": None,
        })
        net = 0.0
        for line in order["lines"]:
            quantity = line["quantity"]
            price = line["price"]
            discount = line.get("discount", 0.0)
            if quantity <= 0:
                continue
            net += quantity * price * (1.0 - discount)
        tax = net * tax_rate
        gross = net + tax
        entry["orders"] += 1
        entry["net"] += net
        entry["tax"] += tax
        entry["gross"] += gross
        if entry["biggest"] is None or gross > entry["biggest"]["gross"]:
            entry["biggest"] = {"id": order["id"], "gross": gross}
    report = []
    for customer_id, entry in sorted(by_customer.items()):
        average = entry["gross"] / entry["orders"] if entry["orders"] else 0.0
        report.append({
            "customer_id": customer_id,
            "name": entry["name"],
            "orders": entry["orders"],
            "net": round(entry["net"], 2),
            "tax": round(entry["tax"], 2),
            "gross": round(entry["gross"], 2),
            "average": round(average, 2),
            "biggest_order": entry["biggest"]["id"] if entry["biggest"] else None,
            "currency": currency,
        })
    totals = {
        "net": round(sum(item["net"] for item in report), 2),
        "tax": round(sum(item["tax"] for item in report), 2),
        "gross": round(sum(item["gross"] for item in report), 2),
        "customers": len(report),
        "currency": currency,
    }
    for item in report:
        share = item["gross"] / totals["gross"] if totals["gross"] else 0.0
        item["share"] = round(share, 4)
    report.sort(key=lambda item: item["gross"], reverse=True)
    if not report:
        return {"customers": [], "totals": totals}
    return {"customers": report, "totals": totals}
'''
INSTRUCTION = "rename the variable `entry` to `summary`"


def refactor_prompt(backend: LlamaCppBackend) -> tuple[list[int], object]:
    inp = AssistInput(task="refactor", code=FUNCTION, path="orders.py", language="python", instruction=INSTRUCTION)
    tokens, stops = backend.chat_tokens(messages_for(inp))
    stop = stop_on_repetition(stop_at_strings((*stops, "```")))
    return tokens + backend.tokenize_text("```python\n"), stop


def run(backend: LlamaCppBackend, tokens: int, speculate: bool) -> tuple[Generation, float, float]:
    prompt, stop = refactor_prompt(backend)
    backend.forget_cache()  # every run reads the prompt from scratch: the same numbers each time
    wall, cpu = time.perf_counter(), time.process_time()
    answer = backend.generate_blocking(
        GenerationRequest(prompt_tokens=prompt, max_tokens=tokens, stop=stop, speculate=speculate)
    )  # type: ignore[arg-type]
    return answer, time.perf_counter() - wall, time.process_time() - cpu


def rate(answer: Generation, seconds: float | None = None) -> float:
    """Generated tokens per second of generation: wall clock from the backend's own timing, or
    CPU time (`seconds` of the whole call) in proportion to the generation's share of it."""
    usage = answer.usage
    generation_s = usage.generation_ms / 1000.0
    if seconds is not None:
        generation_s = seconds * usage.generation_ms / max(usage.prompt_ms + usage.generation_ms, 1e-9)
    return usage.completion_tokens / max(generation_s, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a .gguf (default: the embedded Gemma 3 270M)")
    parser.add_argument("--tokens", type=int, default=640, help="most tokens per answer")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--force", action="store_true", help="where the check refuses drafts, also run the drafting loop without it"
    )
    args = parser.parse_args()
    model = args.model or embedded_model_path(progress=True)
    print(
        f"model: {model.name}; the refactor of a {FUNCTION.count(chr(10))}-line function, "
        f"at most {args.tokens} tokens, greedy"
    )

    plain = LlamaCppBackend(LlamaSettings(model=model, n_ctx=4096))
    lookup = LlamaCppBackend(LlamaSettings(model=model, n_ctx=4096, prompt_lookup=True))
    started = time.perf_counter()
    plain.load()
    plain_load = time.perf_counter() - started
    started = time.perf_counter()
    lookup.load()
    lookup_load = time.perf_counter() - started
    print(f"load: {plain_load:.1f} s plain, {lookup_load:.1f} s with prompt lookup (includes the exactness check)")
    if lookup.speculates:
        print(
            f"exactness check: batches of up to {lookup.exact_rows} rows decode exactly as one token at a time: "
            "prompt lookup is on"
        )
    else:
        print(f"exactness check: prompt lookup is {lookup.speculation_note}")
    if args.force and not lookup.speculates:
        lookup.exact_rows = lookup.settings.max_draft + 1  # skip the check: drafts as llama.cpp's own modes use them

    rows: dict[str, list[tuple[float, float]]] = {"plain": [], "lookup": []}
    answers: dict[str, Generation] = {}
    for round_ in range(args.rounds):
        for label, backend, speculate in (("plain", plain, False), ("lookup", lookup, True)):
            answer, wall, cpu = run(backend, args.tokens, speculate)
            answers[label] = answer
            rows[label].append((rate(answer), rate(answer, cpu)))
            print(
                f"  round {round_ + 1} {label:<6} {answer.usage.completion_tokens} tokens "
                f"({answer.stop_reason}), {rate(answer):.1f} tok/s wall, {rate(answer, cpu):.1f} tok/s CPU"
                + (
                    f", {answer.usage.accepted_tokens} of {answer.usage.draft_tokens} drafted tokens kept"
                    if speculate
                    else ""
                )
            )
    same = answers["plain"].text == answers["lookup"].text
    wall_ratio = statistics.median(r[0] for r in rows["lookup"]) / statistics.median(r[0] for r in rows["plain"])
    cpu_ratio = statistics.median(r[1] for r in rows["lookup"]) / statistics.median(r[1] for r in rows["plain"])
    print(
        f"prompt lookup / plain: {wall_ratio:.2f}x tokens/s (wall), {cpu_ratio:.2f}x (CPU); "
        f"same output: {'yes' if same else 'NO'}"
    )
    if not same:
        a, b = answers["plain"].text, answers["lookup"].text
        at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        print(f"  first difference at character {at}: plain {a[at : at + 40]!r}, lookup {b[at : at + 40]!r}")
    print(f"answer (plain), first lines: {answers['plain'].text[:240]!r}")
    plain.close()
    lookup.close()


if __name__ == "__main__":
    main()
