"""A raw stdio connection to `ninetyten serve`: bytes in, framed JSON out, no client library.

Used to send what a well-behaved client never would (broken frames, bad JSON, bad params).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class RawServer:
    def __init__(self, model: Path, home: Path, *extra_args: str) -> None:
        env = {**os.environ, "NINETYTEN_HOME": str(home)}
        env.pop("NINETYTEN_MODEL", None)
        # stderr to a file: a pipe nobody reads would stall a chatty server
        self.stderr_path = home / f"server-stderr-{os.getpid()}-{id(self)}.log"
        home.mkdir(parents=True, exist_ok=True)
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", "serve", "--model", str(model), *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._buffer = b""
        self.received: list[dict[str, Any]] = []  # every message read, in order
        self._next_id = 1000

    # -- writing -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def frame(self, body: bytes, length: int | None = None) -> None:
        self.write(b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body)

    def send(self, message: dict[str, Any]) -> None:
        self.frame(json.dumps({"jsonrpc": "2.0", **message}).encode())

    def request(self, method: str, params: Any = None, *, msg_id: Any = None) -> Any:
        if msg_id is None:
            self._next_id += 1
            msg_id = self._next_id
        message: dict[str, Any] = {"id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"method": method, **({"params": params} if params is not None else {})})

    # -- reading -------------------------------------------------------------------

    def _read_one(self, deadline: float) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        while True:
            if b"\r\n\r\n" in self._buffer:
                head, rest = self._buffer.split(b"\r\n\r\n", 1)
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                if len(rest) >= length:
                    self._buffer = rest[length:]
                    message = json.loads(rest[:length])
                    self.received.append(message)
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.process.stdout], [], [], min(remaining, 0.2))
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 1 << 20)
                if not chunk:
                    return None
                self._buffer += chunk

    def response(self, msg_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The response to `msg_id` (skipping notifications and other responses)."""
        for message in self.received:
            if message.get("id", "-") == msg_id and "method" not in message:
                return message
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_one(deadline)
            if message is None:
                raise AssertionError(
                    f"no response to {msg_id!r} within {timeout}s (alive: {self.process.poll() is None})"
                )
            if message.get("id", "-") == msg_id and "method" not in message:
                return message

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        for message in self.received:
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_one(deadline)
            if message is None:
                raise AssertionError("timed out waiting for a message")
            if predicate(message):
                return message

    def drain(self, seconds: float = 0.2) -> None:
        deadline = time.monotonic() + seconds
        while self._read_one(deadline) is not None:
            pass

    # -- session helpers -----------------------------------------------------------

    def initialize(
        self,
        capabilities: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        root: Path | None = None,
    ) -> None:
        msg_id = self.request(
            "initialize",
            {
                "capabilities": capabilities or {},
                "initializationOptions": options or {},
                "rootUri": root.as_uri() if root else None,
            },
        )
        assert "result" in self.response(msg_id)
        self.notify("initialized", {})
        self.wait_for(lambda m: m.get("method") == "window/logMessage" and "ready" in m["params"]["message"])

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.notify(
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}
        )

    def inline(self, uri: str, line: int, character: int, **kwargs: Any) -> dict[str, Any]:
        msg_id = self.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 1},
            },
        )
        return self.response(msg_id, **kwargs)

    def close(self) -> str:
        """Shut down politely if possible; returns everything the server wrote to stderr."""
        try:
            if self.process.poll() is None:
                msg_id = self.request("shutdown")
                self.response(msg_id, timeout=10)
                self.notify("exit")
                self.process.wait(timeout=10)
        except Exception:
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._stderr.close()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")
