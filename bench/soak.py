"""Soak: thousands of inline completions with random edits and cancellations in one session.

Drives one `ninetyten serve` over stdio like a fast typist: a random edit, then an inline
completion request, and half of the requests are cancelled with `$/cancelRequest` a few
milliseconds later. Checks, and prints:

- no deadlock: every request that was not cancelled gets its answer within a bound;
- no leaks: the server's thread count and open file descriptors do not grow;
- memory: RSS after the run against RSS after warm-up (target: under 5 % growth);
- throughput and latency of the answered requests.

    python bench/soak.py [--requests N] [--model PATH|ID] [--json]

The default model is a tiny random-weight model built on the fly (the point is the
server, not the model); `--model` runs it against a real one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ANSWER_TIMEOUT_S = 30.0
WORDS = ["value", "total", "items", "count", "index", "result", "(", ")", ".", " ", "\n    ", "+", "1", "x"]


@dataclass
class ProcessSample:
    threads: int
    fds: int
    rss_mb: float


@dataclass
class SoakResult:
    requests: int
    cancelled: int
    answered: int
    unanswered: int
    errors: dict[str, int]
    warm: ProcessSample
    end: ProcessSample
    seconds: float
    latency_p50_ms: float
    latency_p99_ms: float
    tracked_requests: int = 0
    # Of the cancelled requests: answered with the LSP "request cancelled" error, or answered
    # normally because the answer won the race. Every cancelled request gets one or the other.
    cancel_acknowledged: int = 0
    cancel_too_late: int = 0
    samples: list[ProcessSample] = field(default_factory=list)

    @property
    def rss_growth(self) -> float:
        return self.end.rss_mb / self.warm.rss_mb - 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cancelled": self.cancelled,
            "answered": self.answered,
            "unanswered": self.unanswered,
            "errors": self.errors,
            "seconds": round(self.seconds, 1),
            "requests_per_s": round(self.requests / self.seconds, 1),
            "latency_p50_ms": round(self.latency_p50_ms, 1),
            "latency_p99_ms": round(self.latency_p99_ms, 1),
            "threads": [self.warm.threads, self.end.threads],
            "fds": [self.warm.fds, self.end.fds],
            "rss_mb": [round(self.warm.rss_mb, 1), round(self.end.rss_mb, 1)],
            "rss_growth_pct": round(100 * self.rss_growth, 2),
            "tracked_requests": self.tracked_requests,
            "cancel_acknowledged": self.cancel_acknowledged,
            "cancel_too_late": self.cancel_too_late,
        }


def sample(pid: int) -> ProcessSample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcessSample(
        threads=int(fields["Threads"]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
    )


class Document:
    """The text the client believes the server has, edited at random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines = [f"def function_{n}(a, b):\n    total = a + b\n    return total" for n in range(12)]
        self.lines = "\n\n".join(self.lines).split("\n")

    def edit(self) -> types.TextDocumentContentChangePartial:
        line = self.rng.randrange(len(self.lines))
        text = self.lines[line]
        column = self.rng.randint(0, len(text))
        if self.rng.random() < 0.2 and column > 0:  # a backspace
            self.lines[line] = text[: column - 1] + text[column:]
            start, end, new = types.Position(line, column - 1), types.Position(line, column), ""
        else:
            word = self.rng.choice(WORDS)
            pieces = (text[:column] + word + text[column:]).split("\n")
            self.lines[line : line + 1] = pieces
            start = end = types.Position(line, column)
            new = word
        return types.TextDocumentContentChangePartial(range=types.Range(start, end), text=new)

    def cursor(self) -> types.Position:
        line = self.rng.randrange(len(self.lines))
        return types.Position(line, self.rng.randint(0, len(self.lines[line])))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def run_soak(
    model: Path,
    requests: int,
    *,
    home: Path,
    seed: int = 7,
    cancel_share: float = 0.5,
    warmup: int | None = None,
    progress: bool = False,
    server_command: list[str] | None = None,
) -> SoakResult:
    rng = random.Random(seed)
    # Caches (tokenized lines, SQLite pages, suggestions) fill during the first part of the run.
    warmup = max(200, requests // 5) if warmup is None else warmup
    client = LanguageClient("soak", "1")
    ready = asyncio.Event()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:
        if "ready" in params.message:
            ready.set()

    @client.feature("ninetyten/served")
    def on_served(params: Any) -> None:
        pass

    env = {**os.environ, "NINETYTEN_HOME": str(home)}
    env.pop("NINETYTEN_MODEL", None)
    command = server_command or [sys.executable, "-m", "lsp_server", "serve"]
    await client.start_io(*command, "--model", str(model), env=env)
    server = client._server
    assert server is not None
    try:
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    text_document=types.TextDocumentClientCapabilities(
                        inline_completion=types.InlineCompletionClientCapabilities()
                    )
                ),
                initialization_options={"completion": {"max_tokens": 8}},
            )
        )
        client.initialized(types.InitializedParams())
        await asyncio.wait_for(ready.wait(), 120)
        document = Document(rng)
        uri = "file:///soak/main.py"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=document.text)
            )
        )
        version = 1
        pending: dict[int, tuple[asyncio.Future[Any], float]] = {}
        cancelled_ids: set[int] = set()
        latencies: list[float] = []
        errors: dict[str, int] = {}
        answered = unanswered = acknowledged = too_late = 0
        warm: ProcessSample | None = None
        samples: list[ProcessSample] = []
        started = time.perf_counter()

        done_at: dict[int, float] = {}

        def settle(msg_id: int, future: asyncio.Future[Any], sent: float) -> None:
            nonlocal answered
            if future.cancelled():
                return
            error = future.exception()
            if error is None:
                answered += 1
                latencies.append((done_at[msg_id] - sent) * 1000.0)
            else:
                name = type(error).__name__
                errors[name] = errors.get(name, 0) + 1

        for n in range(requests):
            if n == warmup:
                await asyncio.sleep(0.5)
                warm = sample(server.pid)
            version += 1
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[document.edit()],
                )
            )
            msg_id = 1_000_000 + n
            kind = rng.choice([types.InlineCompletionTriggerKind.Automatic, types.InlineCompletionTriggerKind.Invoked])
            params = types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=document.cursor(),
                context=types.InlineCompletionContext(trigger_kind=kind),
            )
            future = client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
            wrapped = asyncio.ensure_future(future)
            wrapped.add_done_callback(lambda _f, i=msg_id: done_at.__setitem__(i, time.perf_counter()))
            pending[msg_id] = (wrapped, time.perf_counter())
            if rng.random() < cancel_share:
                await asyncio.sleep(rng.uniform(0.0, 0.01))
                client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
                cancelled_ids.add(msg_id)
            else:
                await asyncio.sleep(rng.uniform(0.0, 0.004))
            if n % 500 == 499:
                samples.append(sample(server.pid))
                if progress:
                    print(f"  {n + 1}/{requests} requests", file=sys.stderr)
        # Every request that was not cancelled must be answered.
        for msg_id, (future, sent) in pending.items():
            if msg_id in cancelled_ids:
                try:
                    await asyncio.wait_for(asyncio.shield(future), 5)
                except Exception:
                    pass
                if future.done() and not future.cancelled():
                    error = future.exception()  # a cancelled request's error is expected: mark it seen
                    if isinstance(error, JsonRpcRequestCancelled):
                        acknowledged += 1
                    elif error is None:
                        too_late += 1
                continue
            try:
                await asyncio.wait_for(asyncio.shield(future), ANSWER_TIMEOUT_S)
            except asyncio.TimeoutError:
                unanswered += 1
                continue
            except Exception:
                pass
            settle(msg_id, future, sent)
        seconds = time.perf_counter() - started
        await asyncio.sleep(0.5)
        end = sample(server.pid)
        stats = await client.protocol.send_request_async("ninetyten/stats", {})
        tracked = int((stats if isinstance(stats, dict) else stats._asdict())["tracked_requests"])
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
        latencies.sort()
        return SoakResult(
            requests=requests,
            cancelled=len(cancelled_ids),
            answered=answered,
            unanswered=unanswered,
            errors=errors,
            warm=warm or end,
            end=end,
            seconds=seconds,
            tracked_requests=tracked,
            cancel_acknowledged=acknowledged,
            cancel_too_late=too_late,
            latency_p50_ms=statistics.median(latencies) if latencies else float("nan"),
            latency_p99_ms=latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
            samples=samples,
        )
    finally:
        if server.returncode is None:
            server.kill()
        await client.stop()


def tiny_model(directory: Path) -> Path:
    from local_models.tiny import build_tiny_model

    path = directory / "tiny-qwen2.gguf"
    build_tiny_model(path, seed=0)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--model", help="a .gguf path (default: a tiny random-weight model)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ninetyten-soak-") as scratch:
        model = Path(args.model) if args.model else tiny_model(Path(scratch))
        result = asyncio.run(run_soak(model, args.requests, home=Path(scratch) / "home", progress=not args.json))
    data = result.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(
            f"requests {data['requests']} in {data['seconds']} s ({data['requests_per_s']}/s); "
            f"cancelled {data['cancelled']}; answered {data['answered']}; unanswered {data['unanswered']}"
        )
        print(f"errors: {data['errors'] or 'none'}")
        print(f"latency of answered requests: p50 {data['latency_p50_ms']} ms, p99 {data['latency_p99_ms']} ms")
        print(
            f"threads {data['threads'][0]} -> {data['threads'][1]}; open files {data['fds'][0]} -> {data['fds'][1]}; "
            f"requests still tracked by the protocol: {data['tracked_requests']}"
        )
        print(
            f"RSS after warm-up {data['rss_mb'][0]} MB -> end {data['rss_mb'][1]} MB "
            f"({data['rss_growth_pct']:+.2f} %; target < 5 %)"
        )
    ok = (
        result.unanswered == 0
        and result.tracked_requests <= 1
        and result.end.threads <= result.warm.threads
        and result.end.fds <= result.warm.fds
        and result.rss_growth < 0.05
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
