"""What no well-behaved client sends, over a raw stdio connection: the server answers
every request (with a JSON-RPC error where it must) and keeps serving."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.raw_lsp import RawServer

FAST = {"completion": {"max_tokens": 4}}
URI = "file:///ws/a.py"


@pytest.fixture
def server(endless_model_path: Path, tmp_path: Path):
    raw = RawServer(endless_model_path, tmp_path / "home")
    yield raw
    stderr = raw.close()
    # Whatever was thrown at it, nothing escaped as an unhandled exception.
    assert "Traceback" not in stderr, stderr[-4000:]


def still_serving(server: RawServer) -> None:
    answer = server.inline(URI, 0, 4)
    assert answer["result"]["items"][0]["insertText"].startswith("x"), answer


def test_requests_before_initialize_get_server_not_initialized(server):
    msg_id = server.request(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}},
    )
    assert server.response(msg_id)["error"]["code"] == -32002
    server.initialize(options=FAST)
    server.open(URI, "v = \n")
    still_serving(server)


def test_malformed_json_and_non_messages(server):
    server.initialize(options=FAST)
    server.open(URI, "v = \n")
    server.frame(b'{"jsonrpc": "2.0", "id": 5, "method": ')
    error = server.wait_for(lambda m: m.get("error", {}).get("code") == -32700)
    assert error["id"] is None and "parse error" in error["error"]["message"]
    server.frame(b'[1, 2, 3]')
    assert server.wait_for(lambda m: m.get("error", {}).get("code") == -32600)["id"] is None
    server.frame(json.dumps({"id": 77, "method": "x"}).encode())  # no "jsonrpc"
    assert server.response(77)["error"]["code"] == -32600
    server.frame(b"\xff\xfe not utf-8 \x00")
    server.write(b"garbage between frames\r\n\r\n")
    still_serving(server)


def test_wrong_content_length_does_not_lose_the_stream(server):
    server.initialize(options=FAST)
    server.open(URI, "v = \n")
    # Too short: the body is cut; the rest is junk until the next header.
    body = json.dumps({"jsonrpc": "2.0", "id": 10, "method": "ninetyten/stats", "params": {}}).encode()
    server.frame(body, length=len(body) - 5)
    still_serving(server)
    # Too long: the frame swallows the start of the next one; both are still answered.
    first = json.dumps({"jsonrpc": "2.0", "id": 11, "method": "ninetyten/stats", "params": {}}).encode()
    second = json.dumps({"jsonrpc": "2.0", "id": 12, "method": "ninetyten/stats", "params": {}}).encode()
    server.write(
        b"Content-Length: %d\r\n\r\n" % (len(first) + 30) + first + b"Content-Length: %d\r\n\r\n" % len(second) + second
    )
    assert "result" in server.response(11)
    assert "result" in server.response(12)
    still_serving(server)


def test_unknown_methods(server):
    server.initialize(options=FAST)
    server.open(URI, "v = \n")
    msg_id = server.request("ninetyten/doesNotExist", {})
    assert server.response(msg_id)["error"]["code"] == -32601
    server.notify("ninetyten/noSuchNotification", {"a": 1})
    server.notify("$/someClientThing", {})
    still_serving(server)


@pytest.mark.parametrize(
    "params, where",
    [
        (
            {"textDocument": {"uri": URI}, "position": {"line": -1, "character": 0}, "context": {"triggerKind": 1}},
            "position",
        ),
        ({"textDocument": {"uri": URI}, "context": {"triggerKind": 1}}, "position"),
        (
            {"textDocument": {"uri": URI}, "position": {"line": 0, "character": "four"}, "context": {"triggerKind": 1}},
            "position",
        ),
        ({"position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}}, "text_document"),
        (None, ""),
    ],
)
def test_params_that_fail_validation_get_invalid_params(server, params, where):
    server.initialize(options=FAST)
    server.open(URI, "v = \n")
    msg_id = server.request("textDocument/inlineCompletion", params)
    error = server.response(msg_id, timeout=10)["error"]
    assert error["code"] == -32602 and "textDocument/inlineCompletion" in error["message"]
    assert where in error["message"]
    # A malformed notification is dropped without taking anything down.
    server.notify("textDocument/didChange", {"textDocument": {"uri": URI}, "contentChanges": "nope"})
    still_serving(server)


def test_positions_out_of_range_and_inside_surrogate_pairs(server):
    server.initialize(options=FAST)  # no encodings offered: UTF-16
    server.open(URI, "v = \n")
    for line, character in [(0, 999), (999, 0), (999, 999)]:
        answer = server.inline(URI, line, character)
        assert "result" in answer, answer
    emoji = "file:///ws/e.py"
    server.open(emoji, 's = "😀😀"\n')
    for character in range(0, 11):  # 5 and 7 are inside a surrogate pair
        answer = server.inline(emoji, 0, character)
        assert "result" in answer, (character, answer)
    still_serving(server)


def test_documents_with_nul_bytes_and_unopened_uris(server):
    server.initialize(options=FAST)
    server.open(URI, "v = \n")
    nul = "file:///ws/nul.py"
    server.open(nul, "a = '\x00\x00'\nb = \x00")
    assert "result" in server.inline(nul, 1, 5)
    assert server.inline("file:///ws/never-opened.py", 0, 0)["result"]["items"] == []
    msg_id = server.request("ninetyten/explain", {"textDocument": {"uri": "file:///ws/never-opened.py"}})
    assert "is not open" in server.response(msg_id)["result"]["error"]
    still_serving(server)


def test_a_10_mb_document_and_a_4_mb_line(server):
    server.initialize(options=FAST)
    server.open(URI, "v = \n")
    big = "file:///ws/big.py"
    lines = [f"value_{n} = {n} * 2" for n in range(500_000)]
    text = "\n".join(lines) + "\n"
    assert len(text) > 10_000_000
    server.open(big, text)
    started = time.monotonic()
    answer = server.inline(big, 250_000, 4, timeout=60)
    assert "result" in answer
    assert time.monotonic() - started < 20
    minified = "file:///ws/min.js"
    server.open(minified, "var a=1;" * 500_000, language="javascript")
    answer = server.inline(minified, 0, 2_000_000, timeout=60)
    assert "result" in answer
    still_serving(server)


def test_thousands_of_open_documents(server):
    server.initialize(options=FAST)
    for n in range(3000):
        server.open(f"file:///ws/many/{n}.py", f"x_{n} = {n}\n")
    server.open(URI, "v = \n")
    still_serving(server)
    msg_id = server.request("ninetyten/stats", {})
    stats = server.response(msg_id)["result"]
    assert stats["context_chunks"] <= 8  # the prompt context stays bounded whatever is open
