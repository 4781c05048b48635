"""Completion latency: the full LSP path against llama.cpp alone, measured in one run.

(a) llama.cpp directly: llama-cpp-python's `create_completion` on the same prompt
    tokens, greedy, generating exactly as many tokens as the server did;
(b) the full LSP path: `ninetyten serve` over stdio, `textDocument/inlineCompletion`
    with triggerKind Invoked, timed by the client from request to response.

Both with repository context on (the default: the spots' modules are copied into a
workspace folder that the server indexes, and the direct baseline's prompt carries the
same context, built by the same code) and off, so the ratio covers gathering context
on every request.

Also: a "one more keystroke" request after a completion at the same spot (KV cache
reuse) against a cold one, at ~1,500 tokens of context.

Prints p50/p95 and ratios; the absolute numbers depend on the machine, the ratios
are what the targets are about (overhead p50 <= 1.05, keystroke <= 0.3 of cold).

    python bench/completion_latency.py [--model PATH|ID] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_models import resolve_model  # noqa: E402
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings  # noqa: E402
from lsp_server.completion.prompt import (  # noqa: E402
    CompletionInput,
    ContextFile,  # noqa: E402
    PromptBudget,
    PromptBuilder,
)
from lsp_server.completion.session_context import prompt_files  # noqa: E402
from lsp_server.config import CompletionConfig  # noqa: E402
from lsp_server.context.entries import IndexLimits  # noqa: E402
from lsp_server.context.prompt_context import PromptContext  # noqa: E402

MAX_TOKENS = 24
N_CTX = 4096
NO_CACHE = {"cache_size": 0, "speculative": False}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Spot:
    """A cursor in a real source file: the end of a line inside a function body."""

    path: str
    text: str
    line: int
    character: int


def pick_spots(count: int, min_line: int = 30) -> list[Spot]:
    """Cursor positions at the end of statement lines in standard-library modules."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    spots: list[Spot] = []
    for name in [
        "json/decoder.py",
        "textwrap.py",
        "string.py",
        "shlex.py",
        "fnmatch.py",
        "calendar.py",
        "csv.py",
        "difflib.py",
        "heapq.py",
        "bisect.py",
        "colorsys.py",
        "glob.py",
    ]:
        path = stdlib / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        for index in range(min_line, len(lines) - 5):
            line = lines[index]
            if (
                line.startswith("        ")
                and line.strip()
                and not line.strip().startswith(("#", '"', "'"))
                and line.rstrip().endswith((")", "]"))
                and "=" in line
            ):
                # Complete the right-hand side: cut the line after "= ".
                cut = line.index("=") + 2
                lines_copy = list(lines)
                lines_copy[index] = line[:cut]
                spots.append(Spot(name, "\n".join(lines_copy), index, cut))
                break
        if len(spots) >= count:
            break
    return spots


def context_workspace(spots: list[Spot], root: Path) -> Path:
    """The spots' modules (and the packages they sit in) copied into a workspace folder."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for spot in spots:
        top = spot.path.split("/")[0]
        source = stdlib / top
        if source.is_dir():
            if not (root / top).exists():
                shutil.copytree(source, root / top, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy(stdlib / spot.path, root / spot.path)
    return root


async def wait_indexed(server: "LspClient") -> None:
    for _ in range(6000):
        stats = await server.client.protocol.send_request_async("ninetyten/stats", {})
        stats = stats if isinstance(stats, dict) else stats._asdict()
        if stats["context_indexed_files"] and not stats["context_indexing"]:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the workspace was not indexed")


class LspClient:
    """A minimal editor: one server process, documents, timed inline completions."""

    def __init__(self, model: str | None, options: dict[str, Any], root: Path | None = None) -> None:
        self.model = model
        self.options = options
        self.root = root
        self.client = LanguageClient("bench", "1")
        self.served: list[dict[str, Any]] = []
        self.ready = asyncio.Event()

        @self.client.feature("ninetyten/served")
        def on_served(params: Any) -> None:
            self.served.append(params if isinstance(params, dict) else params._asdict())

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams) -> None:
            if "ready" in params.message:
                self.ready.set()

    async def start(self) -> None:
        command = [sys.executable, "-m", "lsp_server", "serve"]
        if self.model:
            command += ["--model", self.model]
        await self.client.start_io(*command)
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    text_document=types.TextDocumentClientCapabilities(
                        inline_completion=types.InlineCompletionClientCapabilities()
                    )
                ),
                initialization_options=self.options,
                root_uri=self.root.as_uri() if self.root else None,
            )
        )
        self.client.initialized(types.InitializedParams())
        await asyncio.wait_for(self.ready.wait(), 300)

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
            )
        )

    def insert(self, uri: str, version: int, line: int, character: int, text: str) -> None:
        here = types.Position(line=line, character=character)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(here, here), text=text)],
            )
        )

    async def complete(self, uri: str, line: int, character: int) -> tuple[float, dict[str, Any], str]:
        before = len(self.served)
        started = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        elapsed = (time.perf_counter() - started) * 1000.0
        while len(self.served) == before:  # the notification precedes the response
            await asyncio.sleep(0.001)
        text = result.items[0].insert_text if result and result.items else ""
        return elapsed, self.served[-1], text

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def summarize(label: str, values: list[float]) -> dict[str, float]:
    return {"label": label, "n": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95)}


async def overhead_bench(
    model_arg: str | None, model_path: Path, rounds: int, spots_count: int, context: bool, threads: int | None
) -> dict[str, Any]:
    config = CompletionConfig(max_tokens=MAX_TOKENS)
    # The direct baseline: same model, context size and threads as the server.
    direct = LlamaCppBackend(LlamaSettings(model=model_path, n_ctx=N_CTX, n_threads=threads))
    direct.load()
    llm = direct.llm
    builder = PromptBuilder(
        tokenizer=direct,
        fim=direct.fim,
        budget=PromptBudget(config.prefix_tokens, config.suffix_tokens, config.extra_tokens),
        bos=direct.bos,
    )
    spots = pick_spots(spots_count)
    scratch = Path(tempfile.mkdtemp(prefix="ninetyten-bench-"))
    root = context_workspace(spots, scratch / "workspace") if context else None
    baseline_context = PromptContext(max_edits=0, limits=IndexLimits(worker="inline", watch=False))
    if root is not None:
        baseline_context.build([root])
    # No result cache or speculation here: every request must run the model, like the baseline.
    options = {"n_ctx": N_CTX, "completion": {"max_tokens": MAX_TOKENS, "repository_context": context, **NO_CACHE}}
    if threads:
        options["threads"] = threads
    server = LspClient(model_arg, options, root)
    await server.start()
    if root is not None:
        await wait_indexed(server)

    def uri_of(index: int, spot: Spot) -> str:
        return (root / spot.path).as_uri() if root is not None else f"file:///bench/{index}/{spot.path}"

    def baseline_extra(spot: Spot) -> list[ContextFile]:
        if root is None:
            return []
        return prompt_files(
            baseline_context,
            f"bench:{spot.path}",
            root / spot.path,
            spot.text,
            spot.line,
            spot.character,
            config.extra_tokens,
        )

    for index, spot in enumerate(spots):
        server.open(uri_of(index, spot), spot.text)

    lsp_ms: list[float] = []
    direct_ms: list[float] = []
    pairs: list[float] = []
    mismatched = 0
    for round_index in range(rounds + 1):
        for index, spot in enumerate(spots):
            uri = uri_of(index, spot)
            elapsed, served, _ = await server.complete(uri, spot.line, spot.character)
            n_tokens = max(1, int(served["completion_tokens"]))
            prompt = builder.build(
                CompletionInput(
                    path=spot.path,
                    text=spot.text,
                    line=spot.line,
                    character=spot.character,
                    extra=baseline_extra(spot),
                    repo_name=root.name if root is not None else "",
                )
            )
            mismatched += len(prompt.tokens) != int(served["prompt_tokens"])
            started = time.perf_counter()
            llm.create_completion(prompt=prompt.tokens, max_tokens=n_tokens, temperature=0.0, top_k=1)
            direct_elapsed = (time.perf_counter() - started) * 1000.0
            if round_index == 0:
                continue  # warm-up round: page in weights, fill caches, JIT nothing
            lsp_ms.append(elapsed)
            direct_ms.append(direct_elapsed)
            pairs.append(elapsed / direct_elapsed)
    await server.stop()
    direct.close()
    baseline_context.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    label = "with context" if context else "without context"
    return {
        "context": context,
        "direct": summarize(f"llama.cpp direct, {label}", direct_ms),
        "lsp": summarize(f"LSP end to end, {label}", lsp_ms),
        "ratio_p50": percentile(lsp_ms, 50) / percentile(direct_ms, 50),
        "paired_ratio_p50": statistics.median(pairs),
        "target_ratio_p50": 1.05,
        "prompt_mismatches": mismatched,  # requests whose prompt differed in length from the baseline's
    }


def long_document(min_lines: int = 260) -> tuple[str, int, int]:
    """~1,500 tokens of real code before the cursor, which sits at the end of a statement."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lines = (stdlib / "textwrap.py").read_text(encoding="utf-8").split("\n")
    # Find a spot with enough lines above it.
    for index in range(min_lines, len(lines)):
        line = lines[index]
        if line.startswith("        ") and "=" in line and line.rstrip().endswith(")"):
            cut = line.index("=") + 2
            doc = lines[:index] + [line[:cut]] + lines[index + 1 : index + 40]
            return "\n".join(doc), index, cut
    raise RuntimeError("no suitable spot found")


async def keystroke_bench(model_arg: str | None, rounds: int, threads: int | None = None) -> dict[str, Any]:
    # The cache would answer a typed-through keystroke without the model; this measures KV reuse.
    options: dict[str, Any] = {"n_ctx": N_CTX, "completion": {"max_tokens": 16, "prefix_tokens": 1536, **NO_CACHE}}
    if threads:
        options["threads"] = threads
    server = LspClient(model_arg, options)
    await server.start()
    text, line, character = long_document()
    other_text, other_line, other_char = long_document(min_lines=300)
    cold_ms: list[float] = []
    key_ms: list[float] = []
    prompt_tokens: list[int] = []
    reused: list[int] = []
    for round_index in range(rounds + 1):
        uri = f"file:///bench/keystroke-{round_index}.py"
        other = f"file:///bench/other-{round_index}.py"
        server.open(uri, text)
        server.open(other, other_text)
        # Fill the cache with a different file first, so the next request is cold.
        await server.complete(other, other_line, other_char)
        cold, served_cold, suggestion = await server.complete(uri, line, character)
        typed = (suggestion or "x")[0]
        server.insert(uri, 2, line, character, typed)
        warm, served_warm, _ = await server.complete(uri, line, character + 1)
        if round_index == 0:
            continue
        cold_ms.append(cold)
        key_ms.append(warm)
        prompt_tokens.append(int(served_cold["prompt_tokens"]))
        reused.append(int(served_warm["cached_prompt_tokens"]))
    await server.stop()
    return {
        "cold": summarize("cold request", cold_ms),
        "keystroke": summarize("one more keystroke", key_ms),
        "ratio_p50": percentile(key_ms, 50) / percentile(cold_ms, 50),
        "target_ratio_p50": 0.3,
        "context_tokens": statistics.median(prompt_tokens),
        "reused_tokens_p50": statistics.median(reused),
    }


def print_table(results: dict[str, Any]) -> None:
    overheads = results["overhead"]
    keys = results["keystroke"]
    print(f"model: {results['model']}   rounds: {results['rounds']}")
    print()
    print(f"{'':<40}{'p50 ms':>10}{'p95 ms':>10}{'n':>5}")
    rows = [row for over in overheads for row in (over["direct"], over["lsp"])] + [keys["cold"], keys["keystroke"]]
    for row in rows:
        print(f"{row['label']:<40}{row['p50_ms']:>10.1f}{row['p95_ms']:>10.1f}{row['n']:>5}")
    print()
    for over in overheads:
        label = "with context" if over["context"] else "without context"
        print(
            f"LSP overhead ratio (b)/(a) at p50, {label}: {over['ratio_p50']:.3f}  "
            f"(paired median {over['paired_ratio_p50']:.3f}; target <= {over['target_ratio_p50']}; "
            f"prompts differing from the baseline's: {over['prompt_mismatches']})"
        )
    print(
        f"keystroke / cold at p50:             {keys['ratio_p50']:.3f}  "
        f"(target <= {keys['target_ratio_p50']}; context {keys['context_tokens']:.0f} tokens, "
        f"{keys['reused_tokens_p50']:.0f} reused from the KV cache)"
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    resolved = resolve_model(args.model, None, progress=True)
    overhead = [
        await overhead_bench(args.model, resolved.path, args.rounds, args.spots, context, args.threads)
        for context in ((True, False) if not args.no_context else (False,))
    ]
    keystroke = await keystroke_bench(args.model, args.rounds, args.threads)
    return {"model": resolved.path.name, "rounds": args.rounds, "overhead": overhead, "keystroke": keystroke}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .gguf path or catalog id (default: the embedded model)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after one warm-up round)")
    parser.add_argument("--spots", type=int, default=8, help="cursor positions in the overhead benchmark")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads, both sides (default: the server's)"
    )
    parser.add_argument("--no-context", action="store_true", help="only the run without repository context")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
