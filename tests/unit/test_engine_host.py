"""The engine process's parts, called directly: frames, stop rules as data, names and places,
bad models, the job queue, and per-client KV slots on real llama.cpp (a tiny GGUF)."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsp_server.backends.base import BackendError, CancelToken, GenerationRequest
from lsp_server.backends.llama_cpp.chat_template import StopAtBlankLine, stop_at_strings, stop_on_repetition
from lsp_server.backends.llama_cpp.settings import LlamaSettings
from lsp_server.backends.portable import NotPortable, from_data, portable, to_data
from lsp_server.completion.rules import CursorContext, NotALineBreak, StopRule
from lsp_server.engine_host.jobs import REAL, WARM, JobQueue, yield_to_requests
from lsp_server.engine_host.model import HostedModel
from lsp_server.engine_host.protocol import (
    MAX_FRAME,
    FrameReader,
    Generate,
    Hello,
    ProtocolError,
    Reply,
    Warm,
    encode,
    parse_incoming,
    parse_request,
    request_id,
)
from lsp_server.engine_host.runtime import (
    BadModels,
    CrashRecord,
    EnginePaths,
    EngineSpec,
    ModelIdentity,
    runtime_dir,
    state_dir,
)
from lsp_server.engine_host.session import Connection
from lsp_server.engine_host.slots import Slots, scratch_directory
from lsp_server.engine_host.supervisor import bind_private

# -- frames -------------------------------------------------------------------------------


def test_frames_arrive_whole_however_the_bytes_are_cut():
    left, right = socket.socketpair()
    try:
        messages = [Hello(id=1, client="x" * 100), Generate(id=2, tokens=list(range(5000)), max_tokens=8)]
        data = b"".join(encode(m) for m in messages)

        def send() -> None:
            for start in range(0, len(data), 7):  # seven bytes at a time
                left.sendall(data[start : start + 7])
            left.close()

        sender = threading.Thread(target=send)
        sender.start()
        reader = FrameReader(right)
        first, second = parse_request(reader.read()), parse_request(reader.read())
        assert first == messages[0] and second.tokens == list(range(5000))
        assert reader.read() is None  # the end of the stream, not an error
        sender.join()
    finally:
        right.close()


def test_a_frame_over_the_limit_is_refused_before_it_is_read():
    left, right = socket.socketpair()
    try:
        left.sendall(struct.pack(">I", MAX_FRAME + 1))
        with pytest.raises(ProtocolError, match="limit"):
            FrameReader(right).read()
    finally:
        left.close()
        right.close()


def test_junk_is_a_protocol_error_and_keeps_its_id_when_it_has_one():
    with pytest.raises(ProtocolError):
        parse_request(b'{"op": "generate", "id": 4, "tokens": [], "max_tokens": 3}')  # an empty prompt
    assert request_id(b'{"op": "generate", "id": 4, "tokens": []}') == 4
    assert request_id(b"not json") is None
    with pytest.raises(ProtocolError):
        parse_request(b'{"op": "format_disk", "id": 1}')
    reply = parse_incoming(encode(Reply(id=9, warmed=3))[4:])
    assert isinstance(reply, Reply) and reply.warmed == 3


# -- stop rules as data -------------------------------------------------------------------

SAMPLES = [
    "",
    "abc",
    "x = 1\n",
    "x = 1\n    y = 2\n",
    "a\n\nb",
    "a\n  \nb",
    "line\nline\nline\nline\n",
    "1. same\n2. same\n3. same\n",
    "stop HERE now",
    "    indented\nback\n",
    "\n\nlate",
]


@pytest.mark.parametrize(
    "check",
    [
        StopRule(CursorContext("    x = ", "", ("    return x",), "def f():"), max_lines=3),
        StopRule(CursorContext("call(", "  # c", ()), single_line=True),
        stop_at_strings(("HERE", "\n\n")),
        stop_on_repetition(stop_at_strings(("<|im_end|>",))),
        stop_on_repetition(StopAtBlankLine(("\n\n", "END"))),
        StopAtBlankLine(("END",)),
        NotALineBreak(),
    ],
    ids=["completion", "single-line", "strings", "repetition", "blank-line", "strings-only", "first-token"],
)
def test_a_stop_rule_cuts_the_same_after_crossing_to_the_engine(check):
    data = to_data(check)
    rebuilt = from_data(json.loads(json.dumps(data)))  # as the frame carries it
    assert type(rebuilt) is type(check) and rebuilt == check
    assert [rebuilt(text) for text in SAMPLES] == [check(text) for text in SAMPLES]


def test_a_stop_rule_the_engine_cannot_run_is_refused_not_dropped():
    with pytest.raises(BackendError, match="cannot run in the engine"):
        to_data(lambda text: None)
    assert to_data(None) is None


@dataclass(frozen=True)
class _Unmarked:
    times: int = 1


def test_the_engine_builds_only_classes_that_marked_themselves_portable():
    with pytest.raises(NotPortable):
        to_data(_Unmarked())
    # A message naming any other class, or a module outside this package, builds nothing.
    for name in (f"{__name__}:_Unmarked", "os:system", "lsp_server.config:ServerConfig"):
        with pytest.raises(NotPortable):
            from_data({"type": name, "fields": {}})
    marked = portable(dataclass(frozen=True)(type("Marked", (), {"__annotations__": {"n": int}})))
    assert from_data(to_data(marked(3))) == marked(3)


# -- names and places ---------------------------------------------------------------------


def _spec(model: Path, **changes: object) -> EngineSpec:
    return EngineSpec(model=ModelIdentity.of(model), **changes)  # type: ignore[arg-type]


def test_one_engine_per_model_file_and_the_settings_that_change_its_answers(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(100))
    key = _spec(model).key()
    assert _spec(model, threads=3, idle_s=5.0).key() == key  # speed and lifetime: the same engine
    assert _spec(model, n_ctx=8192).key() != key
    assert _spec(model, gpu_layers=0).key() != key
    os.utime(model, ns=(1, 1))  # the file changed: another model, another engine
    assert _spec(model).key() != key


def test_runtime_dir_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("NINETYTEN_RUNTIME_DIR", str(tmp_path / "run"))
    directory = runtime_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    os.chmod(directory, 0o755)  # ours but opened up: closed again
    assert stat.S_IMODE(runtime_dir().stat().st_mode) == 0o700


def test_a_socket_too_deep_for_sockaddr_un_moves_to_a_short_private_dir(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    paths = EnginePaths("0123456789abcdef", deep)
    assert len(str(paths.socket)) <= 100
    assert stat.S_IMODE(paths.socket.parent.stat().st_mode) == 0o700
    assert paths.status.parent == deep  # only the socket moves
    assert EnginePaths("0123456789abcdef", deep).socket == paths.socket  # and every client finds it there


def test_the_socket_is_only_for_its_user(tmp_path):
    path = tmp_path / "e.sock"
    path.write_text("stale")  # what an engine that died left behind
    listener = bind_private(path)
    try:
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        listener.close()


def test_a_model_marked_bad_stays_bad_until_the_file_changes(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(10))
    store = BadModels(tmp_path / "bad.json")
    crash = CrashRecord(worker_pid=1, signal="SIGSEGV", during="load", at=0.0, cause="memory")
    entry = store.mark(ModelIdentity.of(model), [crash] * 3)
    assert str(model) in entry.describe() and "3 times" in entry.describe() and "SIGSEGV" in entry.describe()
    assert store.find(ModelIdentity.of(model)) == entry
    model.write_bytes(b"GGUF" + bytes(20))  # pulled again
    assert store.find(ModelIdentity.of(model)) is None
    assert store.clear() == 1 and store.entries() == []


# -- cancel tokens and the job queue ------------------------------------------------------


def test_a_cancel_reaches_its_listeners_once_and_late_listeners_at_once():
    token = CancelToken()
    heard: list[str] = []
    remove = token.on_cancel(lambda: heard.append("first"))
    token.on_cancel(lambda: heard.append("second"))
    remove()
    token.cancel()
    token.on_cancel(lambda: heard.append("late"))
    assert heard == ["second", "late"]


def test_requests_run_before_warm_ups_oldest_first():
    queue = JobQueue()
    warm = queue.put(None, Warm(id=1, tokens=[1]))  # type: ignore[arg-type]
    first = queue.put(None, Generate(id=2, tokens=[1], max_tokens=1))  # type: ignore[arg-type]
    assert queue.real_waiting()
    speculation = queue.put(None, Generate(id=4, tokens=[1], max_tokens=1, background=True))  # type: ignore[arg-type]
    second = queue.put(None, Generate(id=3, tokens=[1], max_tokens=1))  # type: ignore[arg-type]
    assert [queue.take() for _ in range(4)] == [first, second, warm, speculation]
    assert (first.priority, warm.priority, speculation.priority) == (REAL, WARM, WARM)
    assert not queue.real_waiting()


def test_a_background_generation_stops_at_the_next_token_once_a_request_waits():
    queue = JobQueue()
    token = CancelToken()
    check = yield_to_requests(queue, token, lambda text: 2 if "!" in text else None)
    assert check("ab") is None and not token.cancelled
    queue.put(None, Warm(id=1, tokens=[1]))  # type: ignore[arg-type]
    assert check("abc") is None and not token.cancelled  # another warm-up is no reason to stop
    queue.put(None, Generate(id=2, tokens=[1], max_tokens=1))  # type: ignore[arg-type]
    assert check("a!") == 2 and token.cancelled  # the rule still cuts; the generation ends as cancelled


class _QueueOnly:
    """The part of the engine a connection hands its jobs to."""

    def __init__(self) -> None:
        self.queue = JobQueue()
        self.current = None


def test_a_request_makes_its_clients_warm_ups_stale_and_preempts_background_work():
    engine = _QueueOnly()
    connection = Connection(None, engine, 1)  # type: ignore[arg-type]
    connection.handle(Warm(id=1, tokens=[1, 2]))
    connection.handle(Warm(id=2, tokens=[1, 2, 3]))
    assert connection.jobs[1].cancel.cancelled and not connection.jobs[2].cancel.cancelled  # the newer one wins
    connection.handle(Generate(id=3, tokens=[4], max_tokens=1, background=True))
    assert not connection.jobs[2].cancel.cancelled  # speculation is no reason to drop a warm-up
    engine.current = connection.jobs[3]  # the speculation is running
    connection.handle(Generate(id=4, tokens=[4], max_tokens=1))
    assert connection.jobs[2].cancel.cancelled  # run after the request, it would push its prompt out
    assert connection.jobs[3].cancel.cancelled  # and the running speculation steps aside
    assert not connection.jobs[4].cancel.cancelled


# -- KV slots on real llama.cpp -----------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(endless_model_path):
    model = HostedModel(LlamaSettings(model=endless_model_path, n_ctx=1024))
    model.load()
    yield model
    model.close()


@pytest.fixture
def hosted(loaded):
    loaded.clear_state()  # every test starts with an empty context
    return loaded


def _generate(model: HostedModel, tokens: list[int]):
    return model.generate_here(GenerationRequest(prompt_tokens=tokens, max_tokens=3), CancelToken(), 0.0)


def test_each_client_finds_its_own_prompt_after_another_ran(hosted):
    slots = Slots(hosted, scratch_directory())
    one = hosted.tokenize_text("alpha = [1, 2, 3]\n" * 20)
    two = hosted.tokenize_text("beta: str = 'b'\n" * 20)
    for client, prompt in (("one", one), ("two", two)):
        slots.activate(client, prompt)
        assert _generate(hosted, prompt).usage.cached_prompt_tokens == 0
    for _ in range(2):  # take turns: each finds all but the last token of its prompt cached
        for client, prompt in (("one", one), ("two", two)):
            slots.activate(client, prompt)
            assert _generate(hosted, prompt).usage.cached_prompt_tokens == len(prompt) - 1
    assert slots.restored == 4 and set(slots.owned) == {"one"}


def test_saved_prompts_wait_in_private_files_that_go_when_they_are_used_or_dropped(hosted, tmp_path):
    directory = tmp_path / "states"
    directory.mkdir()
    (directory / "left-by-a-crashed-engine.bin").write_bytes(b"old")
    slots = Slots(hosted, directory)
    assert list(directory.iterdir()) == [] and directory.stat().st_mode & 0o777 == 0o700
    one = hosted.tokenize_text("alpha = [1, 2, 3]\n" * 20)
    two = hosted.tokenize_text("beta: str = 'b'\n" * 20)
    slots.activate("one", one)
    _generate(hosted, one)
    slots.activate("two", two)  # one's state goes to a file, whose size the slots count
    [saved] = list(directory.iterdir())
    assert slots.owned["one"].path == saved and saved.stat().st_size == slots.saved_bytes > 0
    _generate(hosted, two)
    slots.activate("one", one)  # read back into the context: one's file goes, two's is written
    assert [path.name for path in directory.iterdir()] == [slots.owned["two"].path.name]
    assert _generate(hosted, one).usage.cached_prompt_tokens == len(one) - 1
    slots.client_left("two")
    assert list(directory.iterdir()) == []
    slots.activate("three", two)
    slots.close()
    assert not directory.exists() and not slots.owned and not slots.orphans


def test_each_engine_process_has_its_own_state_directory_and_a_dead_ones_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("NINETYTEN_HOME", str(tmp_path))
    engines = tmp_path / "cache" / "engine-states" / "k"
    dead, alive = engines / "999999999", engines / str(os.getppid())
    for directory in (dead, alive):
        directory.mkdir(parents=True)
        (directory / "state-1.bin").write_bytes(b"kv")
    assert state_dir("k") == engines / str(os.getpid())
    assert not dead.exists() and (alive / "state-1.bin").exists()


def test_a_departed_clients_prompt_serves_the_next_client_that_shares_it(hosted):
    slots = Slots(hosted, scratch_directory())
    shared = hosted.tokenize_text("SYSTEM: explain the change.\n" * 8)
    slots.activate("hook-1", shared + hosted.tokenize_text("diff one"))
    _generate(hosted, shared + hosted.tokenize_text("diff one"))
    slots.client_left("hook-1")
    editor = hosted.tokenize_text("gamma = 3\n" * 30)
    slots.activate("editor", editor)  # the editor takes the context; the hook's prompt is kept aside
    _generate(hosted, editor)
    assert len(slots.orphans) == 1
    second = shared + hosted.tokenize_text("diff two")
    slots.activate("hook-2", second)
    assert _generate(hosted, second).usage.cached_prompt_tokens >= len(shared)


def test_saved_prompts_stay_within_their_memory_limit(hosted):
    slots = Slots(
        hosted, scratch_directory(), limit_bytes=1
    )  # nothing fits: states are dropped, never kept past the limit
    one = hosted.tokenize_text("delta = 4\n" * 20)
    slots.activate("one", one)
    _generate(hosted, one)
    two = hosted.tokenize_text("eps = 5\n" * 20)
    slots.activate("two", two)
    _generate(hosted, two)
    assert slots.saved_bytes == 0 and not slots.owned
    slots.activate("one", one)
    assert _generate(hosted, one).usage.cached_prompt_tokens < len(one) - 1  # read again, correctly


def test_a_warm_up_steps_aside_for_a_request_and_keeps_what_it_read(hosted):
    slots = Slots(hosted, scratch_directory())
    prompt = hosted.tokenize_text("zeta = 6\n" * 60)
    slots.activate("warm", prompt)
    asked = iter([False, False, True])  # a request arrives after two slices
    done = hosted.prefill(prompt, lambda: next(asked, True))
    assert 0 < done < len(prompt)
    generation = _generate(hosted, prompt)
    assert generation.usage.cached_prompt_tokens == done
