"""The shared engine process: what it costs and what it saves, measured in one run.

(1) First suggestion after opening a file of about 1,500 tokens: with warm-up (the server
    reads the prompt at the cursor when the editor focuses the file, as VS Code and Neovim
    tell it) against cold (warm-up off), default settings otherwise; every round on a fresh
    engine. Target: warm <= 0.3 x cold, and the warm suggestion is not empty.
(2) Memory: three language servers and a git hook at once against one server, as total PSS
    of every process involved (servers, hook, the engine and its supervisor). Target <= 1.3.
    The other clients' saved prompt states wait in files (page cache): their size is printed.
    The same three servers with llama.cpp in each process (`engine: in-process`, what every
    window did before) are measured too.
(3) `git commit` with the prepare-commit-msg hook while an editor's server runs (the engine
    is warm) against no engine running (the hook starts it). Target <= 0.5.
(4) The engine killed (SIGKILL) under a running server: time until the next completion is
    served, p50 and max.
(0) First, the process hop alone: the same cold prompts generated through the engine and
    through llama.cpp in this process, paired.

The keystroke overhead of the process hop (LSP against llama.cpp called directly on the
same prompt) is bench/completion_latency.py's first measurement.

    python bench/engine_process.py [--model PATH|ID] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from completion_latency import LspClient, percentile  # noqa: E402

from lsp_server.engine_host.runtime import (  # noqa: E402
    RUNTIME_ENV,
    EnginePaths,
    EngineStatus,
    running_engines,
    stop_engines,
)
from lsp_server.engine_host.status import query  # noqa: E402


def engine(directory: Path) -> EngineStatus:
    [status] = running_engines(directory)
    return status


async def engine_idle(directory: Path, timeout_s: float = 600.0) -> None:
    """Until the engine has nothing running or queued (a server's speculation, a warm-up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        details = query(engine(directory))
        if details is not None and details.get("running") is None and not details.get("queued"):
            return
        await asyncio.sleep(0.1)


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Runtime:
    """A fresh runtime directory (so a fresh engine) for one scenario."""

    def __init__(self, root: Path, name: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))

    def __enter__(self) -> Path:
        self._saved = os.environ.get(RUNTIME_ENV)
        os.environ[RUNTIME_ENV] = str(self.directory)
        return self.directory

    def __exit__(self, *exc: object) -> None:
        stop_engines(self.directory, timeout_s=20.0)
        if self._saved is None:
            os.environ.pop(RUNTIME_ENV, None)
        else:
            os.environ[RUNTIME_ENV] = self._saved


# -- (0) the process hop ------------------------------------------------------------------


async def hop_bench(model: str | None, rounds: int, root: Path) -> dict[str, Any]:
    """The same cold prompts through the engine process and through llama.cpp in this process,
    taking turns (which goes first alternates): wall time, and the part of it outside llama.cpp."""
    from local_models import resolve_model
    from lsp_server.backends.base import GenerationRequest
    from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings
    from lsp_server.engine_host.client import EngineBackend

    path = resolve_model(model, None).path
    direct = LlamaCppBackend(LlamaSettings(model=path, n_ctx=4096))
    direct.load()
    with Runtime(root, "hop"):
        hosted = EngineBackend(LlamaSettings(model=path, n_ctx=4096))
        hosted.load()
        lines = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text().split("\n")
        ratios, outside = [], {"direct": [], "engine": []}
        for number in range(rounds * 3):
            prompt = [direct.bos or 0] + direct.tokenize_text("\n".join(lines[number * 7 : number * 7 + 40]))
            timed = {}
            order = ("direct", "engine") if number % 2 else ("engine", "direct")
            for name in order:
                started = time.perf_counter()
                request = GenerationRequest(prompt_tokens=prompt, max_tokens=16)
                generation = direct.generate_blocking(request) if name == "direct" else await hosted.generate(request)
                wall = (time.perf_counter() - started) * 1000.0
                timed[name] = wall
                outside[name].append(wall - generation.usage.prompt_ms - generation.usage.generation_ms)
            ratios.append(timed["engine"] / timed["direct"])
        hosted.close()
    direct.close()
    return {
        "paired_ratio_p50": statistics.median(ratios),
        "outside_llama_ms_p50": {name: statistics.median(values) for name, values in outside.items()},
        "n": len(ratios),
    }


# -- (1) warm-up ----------------------------------------------------------------------


def files_of_about(tokens_chars: int = 5200) -> list[tuple[str, str, int, int]]:
    """Standard-library files cut to ~1,500 tokens (about 5,200 characters of Python), the
    cursor at the end of the last statement line, ready for its right-hand side."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    picked = []
    for name in [
        "textwrap.py",
        "shlex.py",
        "calendar.py",
        "difflib.py",
        "csv.py",
        "string.py",
        "fnmatch.py",
        "heapq.py",
        "bisect.py",
        "glob.py",
        "colorsys.py",
        "json/decoder.py",
    ]:
        path = stdlib / name
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8").split("\n")
        used = 0
        for index, line in enumerate(lines):
            used += len(line) + 1
            if (
                used >= tokens_chars
                and line.startswith("        ")
                and "=" in line
                and not line.strip().startswith("#")
            ):
                cut = line.index("=") + 2
                text = "\n".join(lines[:index] + [line[:cut]])
                picked.append((name, text, index, cut))
                break
    return picked


async def first_suggestion(
    model: str | None, text: str, line: int, column: int, *, warm: bool
) -> tuple[float, dict[str, Any], str]:
    options: dict[str, Any] = {} if warm else {"completion": {"warm": False}}
    server = LspClient(model, options)
    await server.start()
    try:
        uri = "file:///bench/opened.py"
        server.open(uri, text)
        server.client.protocol.notify(
            "ninetyten/warm", {"textDocument": {"uri": uri}, "position": {"line": line, "character": column}}
        )
        if warm:  # the user reads the file before typing; the engine reads it meanwhile
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                stats = (await server.client.protocol.send_request_async("ninetyten/stats", {}))._asdict()
                if stats["warmed"] >= stats["warmups"] >= 1:
                    break
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(1.0)
        return await server.complete(uri, line, column)
    finally:
        await server.stop()


async def warmup_bench(model: str | None, rounds: int, root: Path) -> dict[str, Any]:
    cold_ms, warm_ms, nonempty, prompt_tokens = [], [], [], []
    for name, text, line, column in files_of_about()[:rounds]:
        for warm in (False, True):
            with Runtime(root, "warm" if warm else "cold"):
                elapsed, served, suggestion = await first_suggestion(model, text, line, column, warm=warm)
            (warm_ms if warm else cold_ms).append(elapsed)
            if warm:
                nonempty.append(bool(suggestion.strip()))
                prompt_tokens.append(int(served["prompt_tokens"]))
            print(
                f"  {name}: {'warm' if warm else 'cold'} {elapsed:.0f} ms, {served['prompt_tokens']} prompt tokens "
                f"({served['cached_prompt_tokens']} cached), {served['completion_tokens']} generated "
                f"({served['stop_reason']}), {len(suggestion)} characters shown",
                file=sys.stderr,
            )
    return {
        "cold_p50_ms": percentile(cold_ms, 50),
        "warm_p50_ms": percentile(warm_ms, 50),
        "ratio_p50": percentile(warm_ms, 50) / percentile(cold_ms, 50),
        "target": 0.3,
        "warm_nonempty": f"{sum(nonempty)}/{len(nonempty)}",
        "prompt_tokens_p50": statistics.median(prompt_tokens),
        "cold_ms": cold_ms,
        "warm_ms": warm_ms,
    }


# -- (2) memory ---------------------------------------------------------------------------


def _git_repo(directory: Path, env: dict[str, str]) -> Path:
    repo = directory / "repo"
    repo.mkdir(parents=True)
    for args in (
        ["init", "-q"],
        ["config", "user.email", "bench@example.com"],
        ["config", "user.name", "bench"],
        ["config", "commit.gpgsign", "false"],
    ):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shutil.copy(stdlib / "textwrap.py", repo / "wrapping.py")
    subprocess.run(["git", "add", "."], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "initial"], cwd=repo, env=env, check=True)
    subprocess.run(
        [sys.executable, "-m", "lsp_server", "hook", "install"], cwd=repo, env=env, check=True, capture_output=True
    )
    return repo


def _stage_change(repo: Path, env: dict[str, str], number: int) -> None:
    """A different small change for every commit: a new helper function."""
    target = repo / "wrapping.py"
    target.write_text(
        target.read_text() + f"\n\ndef indent_by_{number}(text):\n    return indent(text, ' ' * {number})\n"
    )
    subprocess.run(["git", "add", "."], cwd=repo, env=env, check=True)


def _hook_env(model: str | None) -> dict[str, str]:
    """The environment the hook runs in: this process's, so take it inside the scenario's Runtime."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_EDITOR": "true",
        "NINETYTEN_HOOK_TIMEOUT": "600",
    }
    if model:
        env["NINETYTEN_MODEL"] = model
    return env


async def _servers_with_completions(model: str | None, count: int, options: dict[str, Any]) -> list[LspClient]:
    servers = []
    for number, (_, text, line, column) in enumerate(files_of_about()[:count]):
        server = LspClient(model, options)
        await server.start()
        uri = f"file:///bench/window-{number}.py"
        server.open(uri, text)
        await server.complete(uri, line, column)
        servers.append(server)
    return servers


def _total_pss(pids: list[int]) -> int:
    return sum(pss_kb(pid) for pid in pids)


async def memory_bench(model: str | None, root: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Runtime(root, "mem-one") as runtime:
        [one] = await _servers_with_completions(model, 1, {})
        await engine_idle(runtime)
        status = engine(runtime)
        pids = [one.client._server.pid, status.supervisor_pid, status.worker_pid]  # type: ignore[union-attr]
        results["one_server_kb"] = _total_pss(pids)
        await one.stop()
    with Runtime(root, "mem-three") as runtime:
        servers = await _servers_with_completions(model, 3, {})
        await engine_idle(runtime)
        status = engine(runtime)
        base = [s.client._server.pid for s in servers] + [status.supervisor_pid, status.worker_pid]  # type: ignore
        env = _hook_env(model)
        repo = _git_repo(root / "mem-git", env)
        _stage_change(repo, env, 1)
        message = repo / "MSG"
        message.write_text("")
        # -P, as the installed hook runs it: the repository's own modules are never imported.
        hook = subprocess.Popen(
            [sys.executable, "-P", "-m", "lsp_server", "hook", "run", "prepare-commit-msg", str(message)],
            cwd=repo,
            env=env,
        )
        peak = 0
        while hook.poll() is None:
            peak = max(peak, _total_pss(base + [hook.pid, *children(hook.pid)]))
            time.sleep(0.05)
        results["three_servers_and_hook_kb"] = peak
        results["hook_wrote_message"] = bool(message.read_text().strip())
        # The other clients' prompt states wait in files (page cache, in no process's PSS): say how much.
        details = query(status) or {}
        results["saved_states_on_disk_kb"] = int(details.get("slots", {}).get("saved_bytes", 0)) // 1024
        for server in servers:
            await server.stop()
    with Runtime(root, "mem-inproc"):
        servers = await _servers_with_completions(model, 3, {"engine": "in-process"})
        results["three_in_process_servers_kb"] = _total_pss([s.client._server.pid for s in servers])
        servers_one = servers[:1]
        results["one_in_process_server_kb"] = _total_pss([s.client._server.pid for s in servers_one])
        for server in servers:
            await server.stop()
    results["ratio"] = results["three_servers_and_hook_kb"] / results["one_server_kb"]
    results["target"] = 1.3
    return results


# -- (3) the hook -------------------------------------------------------------------------


def _timed_commit(repo: Path, env: dict[str, str], number: int) -> tuple[float, str]:
    _stage_change(repo, env, number)
    started = time.perf_counter()
    subprocess.run(["git", "commit", "-q"], cwd=repo, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    subject = subprocess.run(
        ["git", "log", "-1", "--format=%s"], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    return elapsed * 1000.0, subject


def _served(runtime: Path) -> int:
    return int((query(engine(runtime)) or {}).get("served", 0))


async def hook_bench(model: str | None, rounds: int, root: Path) -> dict[str, Any]:
    repo = _git_repo(root / "hook-git", _hook_env(model))
    cold_ms, warm_ms, subjects = [], [], []
    number = 0
    for _ in range(rounds):
        # The hook's environment is taken inside each Runtime: it must look for engines in that
        # scenario's runtime directory (none running, or the editor's), not in one shared by all.
        with Runtime(root, "hook-none"):
            env = _hook_env(model)
            number += 1
            elapsed, subject = _timed_commit(repo, env, number)  # the hook starts the engine itself
            cold_ms.append(elapsed)
            subjects.append(subject)
            print(f"  no engine: {elapsed:.0f} ms ({subject!r})", file=sys.stderr)
        with Runtime(root, "hook-editor") as runtime:
            env = _hook_env(model)
            [server] = await _servers_with_completions(model, 1, {})
            await engine_idle(runtime)  # the user stopped typing; now commits
            served = _served(runtime)
            number += 1
            elapsed, subject = _timed_commit(repo, env, number)
            if _served(runtime) == served:
                raise RuntimeError("the hook did not use the editor's engine")
            warm_ms.append(elapsed)
            subjects.append(subject)
            print(f"  editor running: {elapsed:.0f} ms ({subject!r})", file=sys.stderr)
            await server.stop()
    return {
        "no_engine_p50_ms": percentile(cold_ms, 50),
        "editor_running_p50_ms": percentile(warm_ms, 50),
        "ratio_p50": percentile(warm_ms, 50) / percentile(cold_ms, 50),
        "target": 0.5,
        "no_engine_ms": cold_ms,
        "editor_running_ms": warm_ms,
        "subjects": subjects,
    }


# -- (4) recovery --------------------------------------------------------------------------


async def complete_once(server: LspClient, uri: str, line: int, column: int) -> tuple[dict[str, Any] | None, str]:
    """One request; its served notification, or None when it failed (a dead engine sends none)."""
    before = len(server.served)
    result = await server.client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=column),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    text = result.items[0].insert_text if result and result.items else ""
    deadline = time.monotonic() + 0.2
    while len(server.served) == before and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return (server.served[-1] if len(server.served) > before else None), str(text)


async def recovery_bench(model: str | None, rounds: int, root: Path) -> dict[str, Any]:
    options = {"completion": {"cache_size": 0, "speculative": False}}
    times: list[float] = []
    back: list[float] = []  # until the restarted engine has loaded the model again
    with Runtime(root, "recovery") as runtime:
        server = LspClient(model, options)
        await server.start()
        _, text, line, column = files_of_about()[0]
        uri = "file:///bench/recovery.py"
        server.open(uri, text)
        await server.complete(uri, line, column)
        for _ in range(rounds):
            status = engine(runtime)
            killed = time.perf_counter()
            os.kill(status.worker_pid, signal.SIGKILL)  # type: ignore[arg-type]
            ready_at: list[float] = []

            status_file = EnginePaths(status.key, runtime).status

            async def watch_ready() -> None:
                while True:
                    now = EngineStatus.read(status_file)
                    if now is not None and now.state == "ready" and now.worker_pid != status.worker_pid:
                        ready_at.append(time.perf_counter())
                        return
                    await asyncio.sleep(0.01)

            watcher = asyncio.ensure_future(watch_ready())
            while True:
                served, _ = await complete_once(server, uri, line, column)
                if served is not None and served.get("prompt_tokens"):
                    break
            times.append((time.perf_counter() - killed) * 1000.0)
            await asyncio.wait_for(watcher, 60)
            back.append((ready_at[0] - killed) * 1000.0)
            print(
                f"  engine back after {back[-1]:.0f} ms, next completion after {times[-1]:.0f} ms "
                f"({served['prompt_tokens']} prompt tokens read again)",
                file=sys.stderr,
            )
        await server.stop()
    return {
        "p50_ms": percentile(times, 50),
        "max_ms": max(times),
        "ms": times,
        "engine_back_p50_ms": percentile(back, 50),
        "engine_back_max_ms": max(back),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ninetyten-engine-bench-"))
    try:
        results: dict[str, Any] = {"model": args.model or "embedded"}
        print("(0) the process hop", file=sys.stderr)
        results["hop"] = await hop_bench(args.model, args.rounds, root)
        print("(1) warm-up against cold", file=sys.stderr)
        results["warmup"] = await warmup_bench(args.model, args.rounds, root)
        print("(2) memory", file=sys.stderr)
        results["memory"] = await memory_bench(args.model, root)
        print("(3) git commit with the hook", file=sys.stderr)
        results["hook"] = await hook_bench(args.model, args.rounds, root)
        print("(4) recovery after SIGKILL", file=sys.stderr)
        results["recovery"] = await recovery_bench(args.model, args.rounds, root)
        return results
    finally:
        for directory in root.iterdir():
            if directory.is_dir():
                stop_engines(directory, timeout_s=20.0)
        shutil.rmtree(root, ignore_errors=True)


def print_table(results: dict[str, Any]) -> None:
    warm, memory, hook, recovery = results["warmup"], results["memory"], results["hook"], results["recovery"]
    print(f"model: {results['model']}")
    hop = results["hop"]
    print(
        f"(0) process hop: engine / in-process on the same cold prompts, paired median {hop['paired_ratio_p50']:.3f} "
        f"(n={hop['n']}); time outside llama.cpp p50: engine {hop['outside_llama_ms_p50']['engine']:.2f} ms, "
        f"in-process {hop['outside_llama_ms_p50']['direct']:.2f} ms"
    )
    print(
        f"(1) first suggestion, ~1,500-token file: cold {warm['cold_p50_ms']:.0f} ms, warmed "
        f"{warm['warm_p50_ms']:.0f} ms (p50): ratio {warm['ratio_p50']:.3f} (target <= {warm['target']}); "
        f"warm suggestion non-empty {warm['warm_nonempty']}; prompt {warm['prompt_tokens_p50']:.0f} tokens"
    )
    print(
        f"(2) PSS: one server {memory['one_server_kb'] / 1024:.0f} MB; three servers + hook "
        f"{memory['three_servers_and_hook_kb'] / 1024:.0f} MB: ratio {memory['ratio']:.2f} (target <= "
        f"{memory['target']}); three in-process servers {memory['three_in_process_servers_kb'] / 1024:.0f} MB "
        f"(one: {memory['one_in_process_server_kb'] / 1024:.0f} MB); the other clients' saved prompt states on "
        f"disk: {memory['saved_states_on_disk_kb'] / 1024:.0f} MB"
    )
    print(
        f"(3) git commit with the hook: no engine {hook['no_engine_p50_ms']:.0f} ms, editor running "
        f"{hook['editor_running_p50_ms']:.0f} ms (p50): ratio {hook['ratio_p50']:.3f} (target <= {hook['target']})"
    )
    print(
        f"(4) engine killed: next completion after {recovery['p50_ms']:.0f} ms p50, {recovery['max_ms']:.0f} ms max "
        f"(the engine itself back after {recovery['engine_back_p50_ms']:.0f} ms p50, "
        f"{recovery['engine_back_max_ms']:.0f} ms max; the rest is reading the prompt again)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .gguf path or catalog id (default: the embedded model)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
