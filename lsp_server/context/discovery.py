"""Which files of a workspace folder to index.

In a git repository git itself says (`git ls-files -co --exclude-standard`: tracked files and
untracked ones that no ignore rule covers, with every ignore source git knows: nested
`.gitignore`s, `.git/info/exclude`, the user's global excludes). Elsewhere a walker applies the
folder's `.gitignore` files itself. Either way a few directories that are never source
(dependencies, caches, virtual environments) are skipped, symbolic links are not followed
(a repository must not make us read files outside it), and only files of a language we
parse, under the size cap, are kept; past the file-count cap the shallowest paths win.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lsp_server.context import gitignore
from lsp_server.context.languages import language_for_path

# Never source a user writes, whatever the ignore files say (a tracked node_modules exists).
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".cache",
        ".gradle",
        ".idea",
        ".next",
        ".nuxt",
        "bower_components",
        "site-packages",
        ".eggs",
    }
)

# Options that keep a repository's own git configuration from running programs or changing
# the output format while we list its files.
_GIT = ("git", "--no-pager", "--no-optional-locks", "-c", "core.fsmonitor=false", "-c", "core.quotePath=off")


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 512 * 1024
    max_files: int = 10_000


@dataclass(frozen=True, order=True)
class Candidate:
    depth: int  # sort key: shallow files first when the count cap bites
    path: str  # relative to the folder, '/'-separated
    language: str = field(compare=False)
    size: int = field(compare=False)
    mtime_ns: int = field(compare=False)


@dataclass
class Discovery:
    method: Literal["git", "walk"]
    files: list[Candidate]
    skipped: Counter[str]
    truncated: bool = False


def _skipped_dir(path: str) -> bool:
    return any(part in SKIP_DIRS for part in path.split("/")[:-1])


def git_files(root: Path) -> list[str] | None:
    """The files git would consider part of the folder, or None if it is not a git work tree
    (or git is missing or refuses, e.g. for a folder owned by someone else)."""
    try:
        proc = subprocess.run(
            [*_GIT, "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    return list(dict.fromkeys(name for name in names if name))


def git_ignored(root: Path, paths: Iterable[str]) -> set[str] | None:
    """Which of `paths` (relative to `root`) git ignores; None if git cannot tell."""
    items = list(paths)
    if not items:
        return set()
    try:
        proc = subprocess.run(
            [*_GIT, "-C", str(root), "check-ignore", "--stdin", "-z"],
            input="\0".join(items).encode("utf-8", "surrogateescape") + b"\0",
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode not in (0, 1):  # 1: none ignored
        return None
    return {name for name in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if name}


def _read_ignore(directory: str) -> tuple[gitignore.Rule, ...]:
    try:
        with open(os.path.join(directory, ".gitignore"), encoding="utf-8", errors="replace") as f:
            return gitignore.parse(f.read(1 << 20))
    except OSError:
        return ()


def walk_files(root: Path) -> Iterator[str]:
    """Every file under `root` that its `.gitignore` files do not exclude (no git needed)."""
    base = str(root)
    stack: list[tuple[str, gitignore.IgnoreStack]] = [("", gitignore.IgnoreStack().push("", _read_ignore(base)))]
    while stack:
        rel_dir, rules = stack.pop()
        full_dir = os.path.join(base, rel_dir) if rel_dir else base
        try:
            entries = sorted(os.scandir(full_dir), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if entry.name in SKIP_DIRS or rules.ignored(rel, True):
                    continue
                subdirs.append((rel, rules.push(rel, _read_ignore(entry.path))))
            elif not rules.ignored(rel, False):
                yield rel
        stack.extend(reversed(subdirs))


def walk_ignored(root: Path, path: str) -> bool:
    parts = path.split("/")
    rules = gitignore.IgnoreStack().push("", _read_ignore(str(root)))
    for i in range(len(parts) - 1):
        rel = "/".join(parts[: i + 1])
        if rules.ignored(rel, True):
            return True
        rules = rules.push(rel, _read_ignore(os.path.join(root, rel)))
    return rules.ignored(path, False)


def candidate(root: Path, path: str, limits: Limits, skipped: Counter[str] | None = None) -> Candidate | None:
    """A file worth indexing (a parsed language, a regular file, not a link, under the size cap)."""
    language = language_for_path(path)
    if language is None or _skipped_dir(path):
        return None
    try:
        info = os.lstat(os.path.join(root, path))
    except OSError:
        return None  # deleted since it was listed
    if not stat.S_ISREG(info.st_mode):
        return None
    if info.st_size > limits.max_file_bytes:
        if skipped is not None:
            skipped["too large"] += 1
        return None
    return Candidate(path.count("/"), path, language, info.st_size, info.st_mtime_ns)


def discover(root: Path, limits: Limits) -> Discovery:
    method: Literal["git", "walk"] = "git"
    listed: Iterable[str] | None = git_files(root)
    if listed is None:
        method = "walk"
        listed = walk_files(root)
    skipped: Counter[str] = Counter()
    files = [c for path in listed if (c := candidate(root, path, limits, skipped)) is not None]
    truncated = len(files) > limits.max_files
    if truncated:
        files.sort()
        skipped["over the file cap"] += len(files) - limits.max_files
        files = files[: limits.max_files]
    files.sort(key=lambda c: c.path)
    return Discovery(method, files, skipped, truncated)
