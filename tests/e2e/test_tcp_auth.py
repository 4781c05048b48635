"""`ninetyten serve --tcp`: loopback only, and nothing is served before the client shows the token.

Real server processes, real TCP connections: raw sockets for what a hostile local process
would send, pygls's client for the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from tests.addresses import non_loopback_ipv4

TOKEN = "k9Vq2xR7mT4wZp8sL1nB6cY3hJ5dF0gA"  # 32 characters
UNAUTHORIZED = -32803


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def token_file(directory: Path, mode: int = 0o600, token: str = TOKEN) -> Path:
    path = directory / "tcp-token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def serve_command(model: Path, address: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lsp_server",
        "serve",
        "--tcp",
        address,
        "--model",
        str(model),
        "--config",
        '{"completion": {"max_tokens": 3}}',
        *extra,
    ]


def environment(home: Path) -> dict[str, str]:
    env = {**os.environ, "NINETYTEN_HOME": str(home)}
    env.pop("NINETYTEN_MODEL", None)
    return env


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def initialize(msg_id: int = 1, options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": msg_id,
        "method": "initialize",
        "params": {
            "capabilities": {},
            "processId": None,
            "rootUri": None,
            "initializationOptions": options if options is not None else {},
        },
    }


def exchange(port: int, *messages: dict[str, Any] | bytes, timeout: float = 20.0) -> tuple[list[dict[str, Any]], bool]:
    """Send the messages on a fresh connection; return what came back and whether the server closed it."""
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for message in messages:
            try:
                sock.sendall(message if isinstance(message, bytes) else frame(message))
            except OSError:  # the server may already have closed after the first one
                break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return parse_frames(received), closed


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    messages = []
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        length = int(head.split(b":")[1])
        messages.append(json.loads(rest[:length]))
        data = rest[length:]
    return messages


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Probe connections are harmless now: they fail the handshake and the server keeps listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not listen")


@contextlib.contextmanager
def running_server(model: Path, directory: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    with (directory / "server-stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            serve_command(model, f"127.0.0.1:{port}", "--token-file", str(token_file(directory))),
            env=environment(directory / "home"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_listening(port, process)
            yield port, process
        finally:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def shared_server(endless_model_path: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One server for the refusal tests: a refused connection leaves it as it was."""
    with running_server(endless_model_path, tmp_path_factory.mktemp("tcp")) as server:
        yield server


@pytest.fixture
def tcp_server(endless_model_path: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    with running_server(endless_model_path, tmp_path) as server:
        yield server


# -- starting -------------------------------------------------------------------------


def _refused_to_start(command: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    # A server that does start blocks forever: the timeout turns that into a failure.
    return subprocess.run(command, env=environment(home), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com", "own-address"])
def test_serve_refuses_to_listen_beyond_loopback(host: str, endless_model_path: Path, tmp_path: Path):
    if host == "own-address":
        found = non_loopback_ipv4()
        if found is None:
            pytest.skip("this machine has no non-loopback IPv4 address")
        host = found
    address = f"[{host}]:{free_port()}" if ":" in host else f"{host}:{free_port()}"
    result = _refused_to_start(
        serve_command(endless_model_path, address, "--token-file", str(token_file(tmp_path))), tmp_path
    )
    assert result.returncode == 2
    assert "listens only on this machine" in result.stderr and "ssh -L" in result.stderr


@pytest.mark.parametrize("problem", ["missing", "no-flag", "0644", "0640", "0604", "0620", "short", "directory"])
def test_serve_refuses_a_missing_or_shared_token_file(problem: str, endless_model_path: Path, tmp_path: Path):
    path = tmp_path / "tcp-token"
    if problem in ("0644", "0640", "0604", "0620"):
        token_file(tmp_path, mode=int(problem, 8))
    elif problem == "short":
        token_file(tmp_path, token="tooshort")
    elif problem == "directory":
        path.mkdir(mode=0o700)
    extra = [] if problem == "no-flag" else ["--token-file", str(path)]
    result = _refused_to_start(serve_command(endless_model_path, f"127.0.0.1:{free_port()}", *extra), tmp_path)
    assert result.returncode in (1, 2), result.stderr
    expected = {
        "missing": "does not exist",
        "no-flag": "needs --token-file",
        "short": "must be one word",
        "directory": "not a regular file",
    }.get(problem, "chmod 600")
    assert expected in result.stderr
    assert TOKEN not in result.stderr


def test_token_file_without_tcp_is_a_usage_error(endless_model_path: Path, tmp_path: Path):
    command = [sys.executable, "-m", "lsp_server", "serve", "--token-file", str(token_file(tmp_path))]
    result = subprocess.run(
        command, env=environment(tmp_path), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2 and "only with --tcp" in result.stderr


# -- connecting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "attempt",
    [
        "no-options",
        "no-token",
        "wrong-token",
        "token-prefix",
        "token-as-number",
        "notification-first",
        "other-request-first",
        "garbage",
        "huge-frame",
    ],
)
def test_a_client_without_the_token_gets_one_error_and_is_disconnected(attempt: str, shared_server: Any):
    port, process = shared_server
    opened = {
        "method": "textDocument/didOpen",
        "params": {"textDocument": {"uri": "file:///x.py", "languageId": "python", "version": 1, "text": "x = 1\n"}},
    }
    stats = {"id": 7, "method": "ninetyten/stats", "params": {}}
    messages: list[dict[str, Any] | bytes] = {
        "no-options": [{"id": 1, "method": "initialize", "params": {"capabilities": {}}}, stats],
        "no-token": [initialize(), stats],
        "wrong-token": [initialize(options={"authToken": TOKEN[:-1] + "X"}), stats],
        "token-prefix": [initialize(options={"authToken": TOKEN[:16]}), stats],
        "token-as-number": [initialize(options={"authToken": 12345}), stats],
        "notification-first": [opened, initialize(options={"authToken": TOKEN}), stats],
        "other-request-first": [stats, initialize(options={"authToken": TOKEN})],
        "garbage": [b"hello\r\n\r\n", initialize(options={"authToken": TOKEN})],
        "huge-frame": [b"Content-Length: 5000000\r\n\r\n" + b"{" * 100],
    }[attempt]
    answers, closed = exchange(port, *messages)
    assert closed, "the connection must be closed after the refusal"
    assert len(answers) == 1, answers  # one error, nothing served
    error = answers[0]["error"]
    assert error["code"] == UNAUTHORIZED and "unauthorized" in error["message"]
    assert "initializationOptions.authToken" in error["message"]
    assert "result" not in answers[0]
    expected_id = {"other-request-first": 7, "notification-first": None, "garbage": None, "huge-frame": None}.get(
        attempt, 1
    )
    assert answers[0]["id"] == expected_id
    assert process.poll() is None  # still listening for its real client


async def test_the_real_client_is_served_after_refused_attempts_and_a_second_client_is_refused(
    tcp_server: Any, tmp_path: Path
):
    port, process = tcp_server
    for _ in range(3):
        answers, closed = exchange(port, initialize(options={"authToken": "guess" * 8}))
        assert closed and answers[0]["error"]["code"] == UNAUTHORIZED
    client = LanguageClient("tcp-test", "1")
    shown: list[str] = []

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_message(params: types.ShowMessageParams) -> None:
        shown.append(params.message)

    await client.start_tcp("127.0.0.1", port)
    try:
        result = await asyncio.wait_for(
            client.initialize_async(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(),
                    initialization_options={"authToken": TOKEN, "completion": {"max_tokens": 3}},
                )
            ),
            60,
        )
        assert result.capabilities.inline_completion_provider is not None
        client.initialized(types.InitializedParams())
        # A second client, even with the token, is not let in while the first is connected.
        answers, closed = await asyncio.to_thread(exchange, port, initialize(options={"authToken": TOKEN}))
        assert closed and "another client" in answers[0]["error"]["message"]
        uri = (tmp_path / "t.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text="v = \n")
            )
        )
        stats = await asyncio.wait_for(client.protocol.send_request_async("ninetyten/stats", {}), 60)
        assert stats is not None
        completion = await asyncio.wait_for(
            client.text_document_completion_async(
                types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(0, 4))
            ),
            60,
        )
        assert completion is not None  # its text depends on the time box on a busy machine
        # The token settled the handshake; it is not a setting (no "invalid initializationOptions" pop-up).
        assert not any("initializationOptions" in message for message in shown)
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
        process.wait(timeout=30)  # its one client is gone: the server ends
    finally:
        if process.poll() is None:  # a failed assertion: the client would wait for the server forever
            process.kill()
        await asyncio.wait_for(client.stop(), 30)
