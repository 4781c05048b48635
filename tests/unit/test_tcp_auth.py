"""The TCP handshake's parts: the token file, the first message, the time a client is given."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from lsp_server.loopback import is_loopback_host
from lsp_server.lsp.tcp_auth import (
    TOKEN_OPTION,
    TokenFileError,
    check_first_message,
    error_frame,
    handshake,
    read_token_file,
    tokens_match,
)

TOKEN = "A" * 20 + "b" * 20


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_token_file_is_read(tmp_path: Path, mode: int):
    assert read_token_file(write(tmp_path / "t", f"  {TOKEN}\n", mode)) == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o610])
def test_a_token_file_others_can_touch_is_refused(tmp_path: Path, mode: int):
    with pytest.raises(TokenFileError, match="chmod 600"):
        read_token_file(write(tmp_path / "t", TOKEN, mode))


@pytest.mark.parametrize(
    "content, message",
    [
        ("short", "must be one word"),
        ("two " + TOKEN, "must be one word"),
        ("", "must be one word"),
        ("é" * 40, "ASCII"),
    ],
)
def test_a_weak_or_odd_token_is_refused(tmp_path: Path, content: str, message: str):
    with pytest.raises(TokenFileError, match=message):
        read_token_file(write(tmp_path / "t", content, 0o600))


def test_a_missing_file_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(TokenFileError, match="umask 077") as caught:
        read_token_file(tmp_path / "nope")
    assert "does not exist" in str(caught.value)


def test_a_symlink_is_judged_by_the_file_it_points_at(tmp_path: Path):
    shared = write(tmp_path / "shared", TOKEN, 0o644)
    (tmp_path / "link").symlink_to(shared)
    with pytest.raises(TokenFileError, match="chmod"):
        read_token_file(tmp_path / "link")


def initialize(options: object) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "initialize",
            "params": {"capabilities": {}, "initializationOptions": options},
        }
    ).encode()


def test_the_right_token_is_accepted_and_removed_from_what_is_served():
    result = check_first_message(initialize({TOKEN_OPTION: TOKEN, "completion": {"max_tokens": 3}}), TOKEN)
    assert result.error is None and result.body is not None
    served = json.loads(result.body)
    assert served["params"]["initializationOptions"] == {"completion": {"max_tokens": 3}}
    assert TOKEN.encode() not in result.body


@pytest.mark.parametrize(
    "body, msg_id",
    [
        (initialize({TOKEN_OPTION: TOKEN[:-1]}), 3),
        (initialize({TOKEN_OPTION: TOKEN + "x"}), 3),
        (initialize({TOKEN_OPTION: ""}), 3),
        (initialize({TOKEN_OPTION: [TOKEN]}), 3),
        (initialize({"ninetyten": {TOKEN_OPTION: TOKEN}}), 3),  # only the documented place counts
        (initialize(None), 3),
        (
            json.dumps(
                {"jsonrpc": "2.0", "method": "initialize", "params": {"initializationOptions": {TOKEN_OPTION: TOKEN}}}
            ).encode(),
            None,
        ),  # a notification, not a request
        (json.dumps({"jsonrpc": "2.0", "id": 9, "method": "shutdown"}).encode(), 9),
        (b"[1, 2]", None),
        (b"\xff\xfe", None),
    ],
)
def test_anything_else_is_refused(body: bytes, msg_id: object):
    result = check_first_message(body, TOKEN)
    assert result.body is None and result.error is not None and result.error.startswith("unauthorized")
    assert result.msg_id == msg_id
    assert TOKEN not in result.error


def test_tokens_are_compared_whole():
    assert tokens_match(TOKEN, TOKEN)
    assert not tokens_match(TOKEN, TOKEN[:-1])
    assert not tokens_match("", TOKEN)


async def _pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.AbstractServer]:
    """A real loopback TCP connection: the server side's reader and the client side's writer."""
    accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(reader)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await accepted.get(), writer, server


async def test_a_silent_client_is_refused_when_its_time_is_up():
    reader, writer, server = await _pair()
    try:
        result = await handshake(reader, TOKEN, timeout_s=0.05)
        assert result.error is not None and "within" in result.error
    finally:
        writer.close()
        server.close()


async def test_the_handshake_reads_one_frame_off_a_real_connection():
    reader, writer, server = await _pair()
    try:
        body = initialize({TOKEN_OPTION: TOKEN})
        writer.write(
            b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" % len(body)
            + body
            + b"Content-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        result = await handshake(reader, TOKEN)
        assert result.error is None
        rest = b"Content-Length: 2\r\n\r\n{}"
        assert await reader.readexactly(len(rest)) == rest  # the next frame is left alone
    finally:
        writer.close()
        server.close()


def test_error_frames_are_framed_json():
    head, body = error_frame(None, "unauthorized: x").split(b"\r\n\r\n")
    assert int(head.split(b":")[1]) == len(body)
    assert json.loads(body) == {"jsonrpc": "2.0", "id": None, "error": {"code": -32803, "message": "unauthorized: x"}}


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.2", False),
        ("10.0.0.1", False),
        ("fd00::2", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("vm", False),
        ("", False),
        ("::ffff:192.0.2.2", False),
        ("2130706433", False),
    ],
)
def test_loopback_is_decided_by_the_text(host: str, loopback: bool):
    assert is_loopback_host(host) is loopback


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_a_file_of_another_user_is_refused(tmp_path: Path):
    path = write(tmp_path / "t", TOKEN, 0o600)
    os.chown(path, 12345, 12345)
    with pytest.raises(TokenFileError, match="another user"):
        read_token_file(path)
