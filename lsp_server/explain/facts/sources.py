"""Whole old and new file texts for a diff, from git, so that symbols are compared on whole
files rather than on hunks.

    texts = GitTexts.staged(repo)          # what `git commit` would record: HEAD -> index
    texts = GitTexts.worktree(repo)        # HEAD -> files on disk
    texts = GitTexts.between(repo, a, b)   # commit a -> commit b

Blobs are read through one `git cat-file --batch` process per source (started on first use,
ended by `close()` or when the source is collected), not one process per file: a diff of
hundreds of files costs one process. git runs as an argument list with the repository's
fsmonitor hook turned off; a file over the size cap, binary, or absent on that side is None.
"""

from __future__ import annotations

import subprocess
import threading
import weakref
from pathlib import Path
from typing import IO, Protocol

MAX_TEXT_BYTES = 1 << 20
_GIT = ("git", "--no-pager", "--no-optional-locks", "-c", "core.fsmonitor=false")


class TextSource(Protocol):
    def old(self, path: str) -> str | None: ...

    def new(self, path: str) -> str | None: ...


def _decode(data: bytes | None) -> str | None:
    if data is None or len(data) > MAX_TEXT_BYTES or b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _BlobReader:
    """`git cat-file --batch`: one request line in, a header and the object out."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._proc: subprocess.Popen[bytes] | None = None
        self._broken = False
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    def _start(self) -> subprocess.Popen[bytes] | None:
        if self._proc is None and not self._broken:
            try:
                self._proc = subprocess.Popen(
                    [*_GIT, "-C", str(self.repo), "cat-file", "--batch"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            except OSError:
                self._broken = True
                return None
            self._finalizer = weakref.finalize(self, _stop, self._proc)
        return self._proc

    def read(self, spec: str) -> bytes | None:
        if "\n" in spec:
            return None  # a path with a newline cannot be asked for on this protocol
        with self._lock:
            proc = self._start()
            if proc is None:
                return None
            stdin, stdout = proc.stdin, proc.stdout
            assert stdin is not None and stdout is not None
            try:
                stdin.write(spec.encode("utf-8", "surrogateescape") + b"\n")
                stdin.flush()
                header = stdout.readline()
                parts = header.split()
                if len(parts) != 3:  # "<spec> missing", "<spec> ambiguous", or git went away
                    if not header:
                        self._fail()
                    return None
                size = int(parts[2])
                data = _read_exactly(stdout, size, keep=size <= MAX_TEXT_BYTES)
                stdout.read(1)  # the newline after every object
            except (OSError, ValueError):
                self._fail()
                return None
            return data if parts[1] == b"blob" and size <= MAX_TEXT_BYTES else None

    def _fail(self) -> None:
        self._broken = True
        self.close()

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._proc = None


def _read_exactly(stream: IO[bytes], size: int, *, keep: bool) -> bytes:
    """`size` bytes of the stream; read past and dropped when not `keep` (an object over the cap)."""
    chunks = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, 1 << 16))
        if not chunk:
            raise OSError("git cat-file ended early")
        if keep:
            chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class GitTexts:
    """The old and new texts of the files of one diff, read from git."""

    def __init__(self, repo: Path, old_rev: str | None, new_rev: str | None) -> None:
        self.repo = Path(repo)
        self.old_rev = old_rev  # None: nothing before (an unborn branch)
        self.new_rev = new_rev  # "" for the index, None for the working tree
        self._reader = _BlobReader(self.repo)

    @staticmethod
    def _head(repo: Path) -> str | None:
        return "HEAD" if _commit_exists(repo, "HEAD") else None

    @classmethod
    def staged(cls, repo: Path) -> GitTexts:
        return cls(Path(repo), cls._head(Path(repo)), "")

    @classmethod
    def worktree(cls, repo: Path) -> GitTexts:
        return cls(Path(repo), cls._head(Path(repo)), None)

    @classmethod
    def between(cls, repo: Path, old: str, new: str) -> GitTexts:
        return cls(Path(repo), old, new)

    def old(self, path: str) -> str | None:
        return None if self.old_rev is None else _decode(self._reader.read(f"{self.old_rev}:{path}"))

    def new(self, path: str) -> str | None:
        if self.new_rev is None:
            try:
                with open(self.repo / path, "rb") as f:
                    return _decode(f.read(MAX_TEXT_BYTES + 1))
            except OSError:
                return None
        return _decode(self._reader.read(f"{self.new_rev}:{path}"))

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> GitTexts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _commit_exists(repo: Path, rev: str) -> bool:
    try:
        proc = subprocess.run(
            [*_GIT, "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0
