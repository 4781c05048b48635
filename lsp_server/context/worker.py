"""The indexer's parsing, in a separate low-priority process.

tree-sitter holds the GIL while it parses (tens of milliseconds for a large file on a slow
machine), so parsing in a thread of the language server would stall every keystroke behind
it. A child process at idle CPU priority parses instead and sends back compact records; it
yields the CPU to llama.cpp and to the editor, and a native crash in a grammar costs a batch
(retried file by file), never the server.

Protocol on the child's stdin/stdout: frames of a 4-byte big-endian length and a pickle.
Request: (root, [(path, language), ...], max_bytes). Reply: [FileRecord | Skipped, ...].
Both ends are this module, so the pickles are our own data.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol, cast

from lsp_server.context.records import FileRecord, Skipped, read_record

Batch = Sequence[tuple[str, str]]  # (path relative to root, language)
Result = FileRecord | Skipped
_HEADER = struct.Struct(">I")


class Parser(Protocol):
    def index(self, root: str, items: Batch, max_bytes: int) -> list[Result]: ...

    def close(self) -> None: ...


class InlineParser:
    """Parses in the calling thread (tests, or where a child process cannot be started)."""

    def index(self, root: str, items: Batch, max_bytes: int) -> list[Result]:
        return [read_record(root, path, language, max_bytes) for path, language in items]

    def close(self) -> None:
        pass


def _write(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> object:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the indexing worker closed its output")
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the indexing worker stopped mid-reply")
    return pickle.loads(data)


class ProcessParser:
    """Parses in a child process at idle priority; restarts it if it dies."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        return subprocess.Popen(
            [sys.executable, "-m", "lsp_server.context.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def _call(self, root: str, items: Batch, max_bytes: int) -> list[Result]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        _write(self._proc.stdin, (root, list(items), max_bytes))
        reply = _read(self._proc.stdout)
        if not isinstance(reply, list) or len(reply) != len(items):
            raise EOFError("the indexing worker sent a malformed reply")
        return reply

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            self.restarts += 1

    def index(self, root: str, items: Batch, max_bytes: int) -> list[Result]:
        with self._lock:
            try:
                return self._call(root, items, max_bytes)
            except (EOFError, OSError, pickle.UnpicklingError):
                self._kill()
            # One file killed the batch: find it by going one file at a time.
            results: list[Result] = []
            for path, language in items:
                try:
                    results.extend(self._call(root, [(path, language)], max_bytes))
                except (EOFError, OSError, pickle.UnpicklingError):
                    self._kill()
                    results.append(Skipped(path, "crashed the parser"))
            return results

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # EOF: the worker exits
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


def lower_priority() -> None:
    """Run only when the CPU would otherwise idle (Linux SCHED_IDLE), else at the lowest nice."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError:
            pass
    if hasattr(os, "nice"):  # POSIX; elsewhere the worker runs at normal priority
        try:
            os.nice(19)
        except OSError:
            pass


def main() -> None:
    lower_priority()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by accident may corrupt the frames
    while True:
        try:
            request = _read(stdin)
        except EOFError:
            return
        root, items, max_bytes = cast(tuple[str, list[tuple[str, str]], int], request)
        _write(stdout, InlineParser().index(root, items, max_bytes))


if __name__ == "__main__":
    main()
