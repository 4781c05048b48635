"""Who may talk to the language server over TCP.

Any process of any user on the machine can connect to a loopback port, so a TCP server
wants proof that the client is its user's: a token read from a file only that user can
read. The client sends it in the first message, `initialize`, as
`initializationOptions.authToken` — every LSP client can set initialization options, so
no editor needs a custom transport. Until that message has arrived and matched, nothing
is served: anything else gets one error and the connection is closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.lsp.transport import CONTENT_LENGTH

TOKEN_OPTION = "authToken"
MIN_TOKEN_CHARS = 32
MAX_TOKEN_CHARS = 4096
# A client must authenticate this quickly; a silent connection is closed.
HANDSHAKE_TIMEOUT_S = 10.0
# An editor's initialize message is some kilobytes; an unauthenticated peer gets no more.
MAX_HANDSHAKE_BYTES = 1 << 20
MAX_HEADER_LINES = 16
# LSP's RequestFailed: the request was well-formed, the server refuses it.
UNAUTHORIZED = -32803

NEW_TOKEN_HINT = "(umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {path})"


class TokenFileError(Exception):
    """The token file is missing, unsafe or unusable; the message says how to fix it."""


def read_token_file(path: Path) -> str:
    """The token, from a regular file owned by this user that nobody else may read or write."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise TokenFileError(
            f"the token file {path} does not exist; create one with\n  " + NEW_TOKEN_HINT.format(path=path)
        ) from None
    except OSError as error:
        raise TokenFileError(f"cannot open the token file {path}: {error.strerror}") from None
    try:
        info = os.fstat(fd)  # of what was opened, not of what the name points at a moment later
        if not stat.S_ISREG(info.st_mode):
            raise TokenFileError(f"the token file {path} is not a regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise TokenFileError(f"the token file {path} belongs to another user; use a file of your own")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise TokenFileError(
                f"the token file {path} can be read or written by other users (mode {mode:04o}); run: chmod 600 {path}"
            )
        raw = os.read(fd, MAX_TOKEN_CHARS + 2)
    finally:
        os.close(fd)
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenFileError(f"the token in {path} must be plain ASCII") from None
    if len(token) < MIN_TOKEN_CHARS or len(token) > MAX_TOKEN_CHARS or any(c.isspace() for c in token):
        raise TokenFileError(
            f"the token in {path} must be one word of {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} "
            "characters; create a new one with\n  " + NEW_TOKEN_HINT.format(path=path)
        )
    return token


def tokens_match(given: str, expected: str) -> bool:
    """Constant time in the tokens' contents and lengths (both are hashed first)."""

    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    return hmac.compare_digest(digest(given), digest(expected))


@dataclass(frozen=True)
class Handshake:
    """The outcome of a connection's first message."""

    body: bytes | None  # the initialize message without its token, to be served
    msg_id: Any = None  # for the error response
    error: str | None = None


def _refused(msg_id: Any, why: str) -> Handshake:
    return Handshake(
        None,
        msg_id,
        f"unauthorized: {why}; this server answers only a first `initialize` "
        f"request that carries its token as initializationOptions.{TOKEN_OPTION}",
    )


def check_first_message(body: bytes, token: str) -> Handshake:
    """Accept only `initialize` with the right token; strip the token from what is served."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _refused(None, "the first message is not JSON")
    if not isinstance(message, dict):
        return _refused(None, "the first message is not a JSON-RPC request")
    msg_id = message.get("id")
    if not isinstance(msg_id, (int, str)) or isinstance(msg_id, bool):
        msg_id = None
    if message.get("method") != "initialize" or msg_id is None:
        return _refused(msg_id, "the first message must be the initialize request")
    params = message.get("params")
    options = params.get("initializationOptions") if isinstance(params, dict) else None
    given = options.get(TOKEN_OPTION) if isinstance(options, dict) else None
    if not isinstance(given, str) or not given:
        return _refused(msg_id, "no token")
    if not tokens_match(given, token):
        return _refused(msg_id, "wrong token")
    assert isinstance(options, dict)
    del options[TOKEN_OPTION]  # the token goes no further: not into settings, not into any log
    return Handshake(json.dumps(message).encode("utf-8"), msg_id)


async def read_first_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The body of the first LSP frame, or None if it is malformed, too large or cut off."""
    length: int | None = None
    try:
        for _ in range(MAX_HEADER_LINES):
            line = await reader.readline()
            if not line:
                return None
            found = CONTENT_LENGTH.search(line)
            if found:
                length = int(found.group(1))
            elif not line.strip():
                break
        else:
            return None
        if length is None or length > MAX_HANDSHAKE_BYTES:
            return None
        return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return None


async def handshake(reader: asyncio.StreamReader, token: str, timeout_s: float = HANDSHAKE_TIMEOUT_S) -> Handshake:
    try:
        async with asyncio.timeout(timeout_s):
            body = await read_first_frame(reader)
    except TimeoutError:
        return _refused(None, f"no initialize request within {timeout_s:g}s")
    if body is None:
        return _refused(None, f"the first frame is malformed or larger than {MAX_HANDSHAKE_BYTES // 1024} KiB")
    return check_first_message(body, token)


def error_frame(msg_id: Any, message: str) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": UNAUTHORIZED, "message": message}}).encode(
        "utf-8"
    )
    return b"Content-Length: %d\r\n\r\n" % len(body) + body
