"""Whole old and new file texts for a diff, from git, so that symbols are compared on whole
files rather than on hunks.

    texts = GitTexts.staged(repo)          # what `git commit` would record: HEAD -> index
    texts = GitTexts.worktree(repo)        # HEAD -> files on disk
    texts = GitTexts.between(repo, a, b)   # commit a -> commit b

git runs as an argument list with the repository's fsmonitor hook turned off; a file over
the size cap, binary, or absent on that side is None.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MAX_TEXT_BYTES = 1 << 20
_GIT = ("git", "--no-pager", "--no-optional-locks", "-c", "core.fsmonitor=false")


class TextSource(Protocol):
    def old(self, path: str) -> str | None: ...

    def new(self, path: str) -> str | None: ...


def _decode(data: bytes | None) -> str | None:
    if data is None or len(data) > MAX_TEXT_BYTES or b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def _blob(repo: Path, spec: str) -> bytes | None:
    try:
        proc = subprocess.run(
            [*_GIT, "-C", str(repo), "cat-file", "blob", spec],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


@dataclass(frozen=True)
class GitTexts:
    repo: Path
    old_rev: str | None  # None: nothing before (an unborn branch)
    new_rev: str | None  # "" for the index, None for the working tree

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
        return None if self.old_rev is None else _decode(_blob(self.repo, f"{self.old_rev}:{path}"))

    def new(self, path: str) -> str | None:
        if self.new_rev is None:
            try:
                with open(self.repo / path, "rb") as f:
                    return _decode(f.read(MAX_TEXT_BYTES + 1))
            except OSError:
                return None
        return _decode(_blob(self.repo, f"{self.new_rev}:{path}"))


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
