"""The local engine process: real servers, a real engine, real signals.

The engine is raised to die by `NINETYTEN_ENGINE_INJECT=SIGNAL@PHASE[*N]`: the engine
process itself raises SIGNAL (SIGKILL, SIGSEGV, SIGILL) while loading the model (from
inside llama.cpp's loader) or after the second token of a generation. Every test runs
its engines in a runtime directory of its own (`private_runtime`), so no other test's
engine is attached to, and none is left behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.engine_host.runtime import EngineStatus
from lsp_server.engine_host.status import query
from lsp_server.engine_host.supervisor import INJECT_ENV
from lsp_server.lsp.ids import STATS_REQUEST, WARM_NOTIFICATION
from tests.conftest_engine import stop_engines
from tests.lsp_session import inline, lsp_session, open_document, served_notifications

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and raises POSIX signals")

# Only the token limit ends a generation; no result cache or speculation: every request runs the model.
EXACT = {"completion": {"max_tokens": 12, "time_limit_ms": 60_000, "cache_size": 0, "speculative": False}}
SIGNALS = ["SIGKILL", "SIGSEGV", "SIGILL"]


def engine_status(runtime: Path) -> EngineStatus:
    [path] = list(runtime.glob("engine-*.json"))
    status = EngineStatus.read(path)
    assert status is not None
    return status


def completion_rows(home: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        return db.execute("SELECT outcome, error_kind FROM attempts WHERE task = 'completion' ORDER BY id").fetchall()


def crash_messages(client: Any) -> list[str]:
    return [m.message for m in client.messages if "crashed" in m.message]


async def until(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def mapping_pids(path: Path) -> set[int]:
    """Every process that has `path` mapped into its memory."""
    target = str(path)
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if target in (entry / "maps").read_text():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("signal_name", SIGNALS)
async def test_engine_dies_during_a_generation(signal_name, endless_model_path, tmp_path, private_runtime, monkeypatch):
    monkeypatch.setenv(INJECT_ENV, f"{signal_name}@generation")
    home = tmp_path / "home"
    async with lsp_session(model=endless_model_path, home=home, options=EXACT) as client:
        uri = open_document(client, tmp_path / "a.py", "data = \n")
        result = await asyncio.wait_for(inline(client, uri, 0, 7), 60)
        answered = time.time()
        assert list(result.items) == []  # the request in flight got an (empty) answer
        crash = engine_status(private_runtime).crashes[-1]
        assert (crash.signal, crash.during) == (signal_name, "generation")
        assert answered - crash.at < 1.0  # within a second of the engine's death
        assert client._server.returncode is None  # the language server lives on

        # The next completion is served by the restarted engine.
        result = await asyncio.wait_for(inline(client, uri, 0, 7), 120)
        assert result.items[0].insert_text == "x" * 12
        status = engine_status(private_runtime)
        assert status.restarts == 1 and status.worker_pid != crash.worker_pid
        await until(lambda: crash_messages(client), what="the crash notice")
        [message] = crash_messages(client)  # told once, with the cause
        assert signal_name in message and "while generating" in message
    assert completion_rows(home) == [("failed", f"engine_crashed_{signal_name.lower()}"), ("ok", None)]


@pytest.mark.parametrize("signal_name", SIGNALS)
async def test_engine_dies_while_loading_the_model(
    signal_name, endless_model_path, tmp_path, private_runtime, monkeypatch
):
    monkeypatch.setenv(INJECT_ENV, f"{signal_name}@load")
    home = tmp_path / "home"
    async with lsp_session(model=endless_model_path, home=home, options=EXACT, wait_ready=False) as client:
        uri = open_document(client, tmp_path / "a.py", "data = \n")
        # Sent while the engine starts: it waits for the model, and gets its answer when the engine dies.
        first = await asyncio.wait_for(inline(client, uri, 0, 7), 120)
        assert list(first.items) == []
        crash = engine_status(private_runtime).crashes[-1]
        assert (crash.signal, crash.during) == (signal_name, "load")
        await until(lambda: any("ready" in m.message for m in client.log_messages), what="the model")
        result = await asyncio.wait_for(inline(client, uri, 0, 7), 120)
        assert result.items[0].insert_text == "x" * 12
        await until(lambda: crash_messages(client), what="the crash notice")
        [message] = crash_messages(client)
        assert signal_name in message and "while loading" in message
        assert not [m for m in client.messages if m.type == types.MessageType.Error]
        assert client._server.returncode is None
    assert completion_rows(home) == [("failed", f"engine_crashed_{signal_name.lower()}"), ("ok", None)]


async def test_a_model_that_crashes_the_engine_three_times_on_load_is_marked_bad(
    endless_model_path, tmp_path, private_runtime, monkeypatch
):
    model = tmp_path / "crashy.gguf"
    shutil.copy(endless_model_path, model)
    home = tmp_path / "home"
    monkeypatch.setenv(INJECT_ENV, "SIGILL@load*3")
    async with lsp_session(model=model, home=home, options=EXACT, wait_ready=False) as client:
        await until(
            lambda: [m for m in client.messages if m.type == types.MessageType.Error], 180, "the bad-model message"
        )
        [error] = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert str(model) in error and "marked bad" in error and "SIGILL" in error
        assert len(crash_messages(client)) == 2  # the first crash's notice, and the bad-model error
        uri = open_document(client, tmp_path / "a.py", "data = \n")
        assert list((await asyncio.wait_for(inline(client, uri, 0, 7), 30)).items) == []
        assert client._server.returncode is None
    assert engine_status(private_runtime).state == "bad"

    env = {**os.environ, "NINETYTEN_HOME": str(home), "NINETYTEN_MODEL": str(model)}
    env.pop(INJECT_ENV)
    doctor = subprocess.run(
        [sys.executable, "-m", "lsp_server", "doctor"], env=env, capture_output=True, text=True, timeout=600
    )
    assert doctor.returncode == 1
    assert f"model marked bad: {model}" in doctor.stdout and "problems found" in doctor.stdout

    # `engine reset` forgets it; the file loads again (nothing is injected any more).
    monkeypatch.delenv(INJECT_ENV)
    reset = subprocess.run(
        [sys.executable, "-m", "lsp_server", "engine", "reset"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "forgot 1" in reset.stdout
    async with lsp_session(model=model, home=home, options=EXACT) as client:
        uri = open_document(client, tmp_path / "a.py", "data = \n")
        assert (await inline(client, uri, 0, 7)).items[0].insert_text == "x" * 12


def _damage(source: Path, target: Path, how: str) -> Path:
    data = bytearray(source.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:  # the first metadata key claims to be a petabyte long: the header is damaged past the magic
        struct.pack_into("<Q", data, 24, 1 << 50)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("how", ["truncated", "damaged header"])
async def test_a_damaged_model_file_is_a_clear_error_naming_it(how, endless_model_path, tmp_path, private_runtime):
    model = _damage(endless_model_path, tmp_path / f"{how.replace(' ', '-')}.gguf", how)
    async with lsp_session(model=model, home=tmp_path / "home", wait_ready=False) as client:
        await until(lambda: client.messages, 120, "the error message")
        [message] = client.messages
        assert message.type == types.MessageType.Error
        assert str(model) in message.message and "could not load" in message.message
        uri = open_document(client, tmp_path / "a.py", "data = \n")
        assert list((await inline(client, uri, 0, 7)).items) == []
        assert client._server.returncode is None
    assert not engine_status(private_runtime).crashes  # an error, not a crash


def _long_document(name: str, lines: int = 150) -> tuple[str, int, int]:
    body = "".join(f"def {name}_{i}(value):\n    return value * {i} + {len(name)}\n\n" for i in range(lines // 3))
    text = body + "result = \n"
    line = text.count("\n") - 1
    return text, line, len("result = ")


def _type(client: Any, uri: str, version: int, line: int, character: int, text: str) -> None:
    here = types.Position(line=line, character=character)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=here, end=here), text=text)
            ],
        )
    )


async def test_two_servers_and_the_hook_share_one_engine_each_with_its_own_cache(
    endless_model_path, tmp_path, private_runtime, monkeypatch
):
    model = tmp_path / "shared.gguf"  # a file no other test's engine maps
    shutil.copy(endless_model_path, model)
    home = tmp_path / "home"
    options = {
        "completion": {
            "max_tokens": 4,
            "time_limit_ms": 60_000,
            "cache_size": 0,
            "speculative": False,
            "extra_files": 0,
            "warm": False,
        }
    }
    async with (
        lsp_session(model=model, home=home, options=options) as one,
        lsp_session(model=model, home=home, options=options) as two,
    ):
        servers = {one._server.pid, two._server.pid}
        texts = {"one": _long_document("alpha"), "two": _long_document("beta")}
        uris = {
            "one": open_document(one, tmp_path / "one.py", texts["one"][0]),
            "two": open_document(two, tmp_path / "two.py", texts["two"][0]),
        }
        clients = {"one": one, "two": two}
        served = {name: served_notifications(client) for name, client in clients.items()}
        columns = {name: texts[name][2] for name in clients}
        for name, client in clients.items():
            result = await inline(client, uris[name], texts[name][1], columns[name])
            assert result.items[0].insert_text == "xxxx"
        mapped = mapping_pids(model)
        [engine] = mapped  # the weights are mapped once, in one process ...
        assert engine not in servers and engine == engine_status(private_runtime).worker_pid  # ... the engine's
        # Take turns typing: each window's next keystroke finds its own prompt still in the cache.
        for version in range(2, 5):
            for name, client in clients.items():
                _type(client, uris[name], version, texts[name][1], columns[name], "y")
                columns[name] += 1
                result = await inline(client, uris[name], texts[name][1], columns[name])
                assert result.items[0].insert_text == "xxxx"
                last = served[name][-1]
                assert last["prompt_tokens"] > 500
                assert last["cached_prompt_tokens"] >= last["prompt_tokens"] - 4, (name, last)
        # The window not typing has its prompt waiting in a file, not in the engine's memory.
        [states] = (home / "cache" / "engine-states").glob(f"*/{engine}")
        assert len(list(states.glob("state-*.bin"))) == 1 and states.stat().st_mode & 0o777 == 0o700

        # Meanwhile, a commit's hook explains the change on the same engine.
        repo = tmp_path / "repo"
        repo.mkdir()
        env = {
            **os.environ,
            "NINETYTEN_HOME": str(home),
            "NINETYTEN_MODEL": str(model),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        for args in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "T"]):
            subprocess.run(["git", *args], cwd=repo, env=env, check=True)
        (repo / "app.py").write_text("def total(items):\n    return sum(items)\n")
        subprocess.run(["git", "add", "app.py"], cwd=repo, env=env, check=True)
        message_file = repo / "MSG"
        message_file.write_text("")
        before = query(engine_status(private_runtime))
        hook = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lsp_server",
            "hook",
            "run",
            "prepare-commit-msg",
            str(message_file),
            cwd=repo,
            env={**env, "NINETYTEN_HOOK_TIMEOUT": "120"},
        )
        seen: set[int] = set()
        while hook.returncode is None:
            seen |= mapping_pids(model)
            try:
                await asyncio.wait_for(hook.wait(), 0.05)
            except TimeoutError:
                pass
        assert hook.returncode == 0
        assert seen == {engine}  # the hook never loaded the model itself
        after = query(engine_status(private_runtime))
        assert before is not None and after is not None and after["served"] > before["served"]
        assert message_file.read_text().strip()
        assert mapping_pids(model) == {engine}
    stop_engines(private_runtime)  # `ninetyten engine stop`: the saved prompts go with the engine
    assert not states.exists()


async def test_opening_a_file_warms_the_cache_for_the_first_suggestion(endless_model_path, tmp_path, private_runtime):
    text, line, column = _long_document("gamma")
    options = {"completion": {"max_tokens": 4, "time_limit_ms": 60_000, "cache_size": 0, "speculative": False}}
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options) as client:
        served = served_notifications(client)
        uri = open_document(client, tmp_path / "g.py", text)
        # What VS Code and Neovim send when the document gets the focus: where the cursor is.
        client.protocol.notify(
            WARM_NOTIFICATION, {"textDocument": {"uri": uri}, "position": {"line": line, "character": column}}
        )

        async def stats() -> dict[str, Any]:
            return (await client.protocol.send_request_async(STATS_REQUEST, {}))._asdict()

        deadline = time.monotonic() + 60
        while True:
            current = await stats()
            if current["warmups"] == 2 and current["warmed"] == 2:  # the open, then the focus
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert current["warmed_tokens"] > 500
        result = await inline(client, uri, line, column)
        assert result.items[0].insert_text == "xxxx"
        first = served[-1]
        assert first["cached_prompt_tokens"] == first["prompt_tokens"] - 1  # all read before it was asked

    # Without warm-ups (and on a fresh engine: a new client may start from another's prompt) it is cold.
    stop_engines(private_runtime)
    options["completion"]["warm"] = False
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options) as client:
        served = served_notifications(client)
        uri = open_document(client, tmp_path / "g.py", text)
        client.protocol.notify(
            WARM_NOTIFICATION, {"textDocument": {"uri": uri}, "position": {"line": line, "character": column}}
        )
        await inline(client, uri, line, column)
        assert (await client.protocol.send_request_async(STATS_REQUEST, {}))._asdict()["warmups"] == 0
        assert served[-1]["cached_prompt_tokens"] < 10  # nothing was read ahead


def test_the_chat_model_runs_and_drafts_in_an_engine_of_its_own(
    base_endless_model_path, chat_endless_model_path, tmp_path, private_runtime, monkeypatch
):
    """Completions from the base model's engine, chat tasks from the chat model's, with prompt
    lookup running where the chat model runs: in its engine, not in this process."""
    from lsp_server.assist.prompts import AssistInput
    from lsp_server.assist.run import assist
    from lsp_server.completion.complete import Completer
    from lsp_server.completion.prompt import CompletionInput
    from lsp_server.config import ServerConfig
    from lsp_server.engine.core import Engine
    from lsp_server.engine_host.runtime import running_engines
    from lsp_server.ledger import Ledger
    from lsp_server.routing.policy import LoadedPolicy, parse_policy

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("NINETYTEN_MODEL", "NINETYTEN_CHAT_MODEL", "NINETYTEN_POLICY"):
        monkeypatch.delenv(name, raising=False)
    policy = (
        f'[tiers.local]\nbackend = "llama_cpp"\nmodel = "{base_endless_model_path}"\n'
        f'chat_model = "{chat_endless_model_path}"\n'
    )
    config = ServerConfig(
        completion={"max_tokens": 6, "time_limit_ms": 600_000}, assist={"max_tokens": 60, "prompt_lookup": True}
    )
    engine = Engine(config, policy=LoadedPolicy(parse_policy(policy), "flag", None), ledger=Ledger(tmp_path / "l.db"))
    try:
        completion = Completer(engine).complete_blocking(CompletionInput(path="a.py", text="v = ", line=0, character=4))
        assert completion.text == "x" * 6
        code = "name = 'yyyyyyyyyyyyyyyyyyyyyyyy'\n" * 4  # what the chat model writes is in its prompt
        answer = asyncio.run(assist(engine, AssistInput(task="ask", code=code, instruction="why?")))
        assert answer.text is not None and set(answer.text) == {"y"}
        chat = engine.chat_local
        assert chat is not engine.local and chat.ready
        engines = {Path(status.model_path): status.worker_pid for status in running_engines(private_runtime)}
        assert set(engines) == {base_endless_model_path, chat_endless_model_path}
        # Each model file is mapped by its engine alone: the drafts were checked there.
        assert mapping_pids(chat_endless_model_path) == {engines[chat_endless_model_path]}
        assert mapping_pids(base_endless_model_path) == {engines[base_endless_model_path]}
        usage = answer.final.usage
        if chat.exact_rows >= 2:  # type: ignore[attr-defined]
            assert usage.draft_tokens > 0 and usage.accepted_tokens > 0
        else:  # this build batches differently: the engine drafts nothing, and says why
            assert usage.draft_tokens == 0 and "differently in a batch" in (chat.speculation_note or "")  # type: ignore[attr-defined]
    finally:
        engine.close()


def test_alternatives_and_a_clean_cache_cross_to_the_engine(endless_model_path, private_runtime):
    """What repository-context completions ask of the local model works through the engine:
    forced tokens, a fork at an unsure step, a first-token check, token healing and forgetting
    the cache."""
    from lsp_server.backends.base import GenerationRequest
    from lsp_server.backends.llama_cpp.settings import LlamaSettings
    from lsp_server.completion.rules import NotALineBreak
    from lsp_server.engine_host.client import EngineBackend

    backend = EngineBackend(LlamaSettings(model=endless_model_path, n_ctx=1024))
    try:
        backend.load()
        prompt = backend.tokenize_text("value = " * 30)
        [x] = backend.tokenize_text("x")

        def generate(**options: Any):  # type: ignore[no-untyped-def]
            request = GenerationRequest(prompt_tokens=prompt, max_tokens=4, time_limit_s=60.0, **options)
            return backend.generate_blocking(request)

        # Every token is "below 0": the fork is recorded at the first step, with two runners-up.
        first = generate(fork_below=0.0, fork_width=2, first_text_ok=NotALineBreak())
        assert first.text == "xxxx" and first.tokens == [x] * 4
        assert first.fork is not None and first.fork.step == 0 and len(first.fork.alternatives) == 2
        assert x not in [token for token, _ in first.fork.alternatives]
        forced = generate(forced=[first.fork.alternatives[0][0]])
        assert forced.tokens[0] == first.fork.alternatives[0][0] and forced.tokens[1:] == [x] * 4
        assert generate().usage.cached_prompt_tokens == len(prompt) - 1
        healed = generate(heal=" (")  # the engine writes the healed text first, and answers after it
        assert backend.detokenize(healed.tokens).startswith(" (") and healed.text == "xxxx"[: len(healed.text)]
        assert backend.detokenize(healed.tokens) == " (" + healed.text
        backend.forget_cache()
        assert generate().usage.cached_prompt_tokens == 0  # read from its first token again
    finally:
        backend.close()
