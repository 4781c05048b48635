"""Diffs from git (staged, a revision range, the working tree) or from stdin, as bytes.

git always runs as an argument list (never through a shell), output stays bytes until the
parser decodes it line by line, and the options below pin down the output format whatever the
user's git config says (colour, external diff drivers, prefixes, textconv, submodule logs).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, TextIO, cast

from lsp_server.explain.diff.model import DiffError

# --no-optional-locks: an editor asking for a diff must not take the index lock from the user.
# --literal-pathspecs: a file called `*.py` or `:(top)x` means that file.
_GIT_GLOBAL = ("--no-pager", "--no-optional-locks", "--literal-pathspecs")
# No --binary: binary files are recognised from "Binary files ... differ"; their bytes are useless.
_DIFF_OPTS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--find-renames",
    "--find-copies",
    "--submodule=short",
    "--no-relative",
)


def _env() -> dict[str, str]:
    # English messages so that errors can be recognised; the diff itself is unaffected.
    return {**os.environ, "LC_ALL": "C"}


def _command(repo: Path, args: Sequence[str]) -> list[str]:
    if not Path(repo).is_dir():
        raise DiffError(f"{repo} is not a directory: point at a git repository")
    return ["git", "-C", str(repo), *_GIT_GLOBAL, *args]


def _error(repo: Path, stderr: bytes, returncode: int) -> DiffError:
    msg = stderr.decode("utf-8", "replace").strip()
    low = msg.lower()
    if "not a git repository" in low:
        return DiffError(f"{repo} is not inside a git repository: run this in a repository (or `git init` one)")
    if "dubious ownership" in low:
        return DiffError(
            f"git refuses to work in {repo} (owned by another user): see `git config --global --add safe.directory`"
        )
    last = msg.splitlines()[-1] if msg else f"exit status {returncode}"
    return DiffError(f"git failed in {repo}: {last}")


def _git(repo: Path, args: Sequence[str], *, ok: tuple[int, ...] = (0,), stdin: bytes = b"") -> bytes:
    cmd = _command(repo, args)
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, env=_env(), check=False)
    except FileNotFoundError:
        raise DiffError("git is not installed or not on PATH: install git (https://git-scm.com) and retry") from None
    except OSError as exc:
        raise DiffError(f"could not run git: {exc}") from None
    if proc.returncode not in ok:
        raise _error(repo, proc.stderr, proc.returncode)
    return proc.stdout


# --------------------------------------------------------------------------- revisions


def _check_rev(rev: str) -> None:
    if rev.startswith("-") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in rev):
        raise DiffError(f"invalid revision {rev!r}: give a branch, tag or commit such as main, HEAD~1 or a1b2c3d")


def _commit(repo: Path, rev: str) -> str | None:
    """The commit id `rev` names, or None if it names none."""
    _check_rev(rev)
    out = _git(repo, ["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], ok=(0, 1))
    return out.decode("ascii", "replace").strip() or None


def _require(repo: Path, rev: str) -> str:
    commit = _commit(repo, rev)
    if commit is None:
        raise DiffError(
            f"unknown revision {rev!r} in {repo}: check the name with `git branch -a` or `git log --oneline`"
        )
    return commit


def _empty_tree(repo: Path) -> str:
    # Asked of git rather than hard-coded: SHA-256 repositories have a different empty tree.
    return _git(repo, ["hash-object", "-t", "tree", "--stdin"]).decode("ascii").strip()


def range_revisions(repo: Path, rev_range: str) -> tuple[str, str]:
    """The two commits (or the empty tree and a root commit) a `range_diff` compares:
    `A..B` -> A B; `A...B` -> merge-base(A, B) B; a single rev -> that commit's own change
    (against its first parent, like `git show`; a root commit against the empty tree)."""
    spec = rev_range.strip()
    if not spec:
        raise DiffError("empty revision range: give one such as main..HEAD or HEAD~1")
    for dots in ("...", ".."):
        if dots in spec:
            left, right = spec.split(dots, 1)
            base, tip = _require(repo, left or "HEAD"), _require(repo, right or "HEAD")
            if dots == "...":
                merge_base = _git(repo, ["merge-base", base, tip], ok=(0, 1)).decode("ascii").strip()
                if not merge_base:
                    raise DiffError(f"{left or 'HEAD'!r} and {right or 'HEAD'!r} have no common ancestor: use A..B")
                base = merge_base
            return base, tip
    commit = _require(repo, spec)
    parent = _commit(repo, f"{commit}^1")
    return parent or _empty_tree(repo), commit


def _repo_relative(repo: Path, path: str) -> str:
    if not os.path.isabs(path):
        return path
    top = Path(os.fsdecode(_git(repo, ["rev-parse", "--show-toplevel"]).rstrip(b"\r\n")))
    try:
        return Path(path).resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        raise DiffError(f"{path} is outside the repository {top}") from None


# --------------------------------------------------------------------------- the diffs


def _plan(
    repo: Path,
    *,
    staged: bool,
    rev_range: str | None,
    path: str | None,
    revs: tuple[str, str] | None = None,
) -> tuple[list[str], tuple[int, ...]]:
    """The git arguments for one kind of diff, and the exit codes that mean success."""
    # Outside a repository `git diff` silently turns into `diff --no-index`: ask first.
    _git(repo, ["rev-parse", "--git-dir"])
    if staged:
        return ["diff", "--cached", *_DIFF_OPTS, "--"], (0,)
    if revs is not None:
        return ["diff", *_DIFF_OPTS, *revs, "--"], (0,)
    if rev_range is not None:
        return ["diff", *_DIFF_OPTS, *range_revisions(repo, rev_range), "--"], (0,)
    base = _commit(repo, "HEAD") or _empty_tree(repo)  # an unborn branch diffs against nothing
    if path is None:
        return ["diff", *_DIFF_OPTS, base, "--"], (0,)
    rel = _repo_relative(repo, path)
    untracked = _git(repo, ["ls-files", "--others", "--exclude-standard", "-z", "--", rel]).strip(b"\0")
    if untracked == os.fsencode(rel):
        # A new file the user has not added yet: show it as added, without touching the index.
        return ["diff", "--no-index", *_DIFF_OPTS, "--", os.devnull, rel], (0, 1)
    return ["diff", *_DIFF_OPTS, base, "--", rel], (0,)


def staged_diff(repo: Path) -> bytes:
    """What `git commit` would record: the index against HEAD (against nothing before the first commit)."""
    args, ok = _plan(repo, staged=True, rev_range=None, path=None)
    return _git(repo, args, ok=ok)


def range_diff(repo: Path, rev_range: str) -> bytes:
    """`main..HEAD`, `main...feature`, or a single revision such as `HEAD~1` (that commit's change)."""
    args, ok = _plan(repo, staged=False, rev_range=rev_range, path=None)
    return _git(repo, args, ok=ok)


def working_tree_diff(repo: Path, path: str | None = None) -> bytes:
    """Staged and unstaged changes against HEAD, for one file (relative to `repo`, or absolute)
    or all tracked files. An untracked `path` comes back as an added file."""
    args, ok = _plan(repo, staged=False, rev_range=None, path=path)
    return _git(repo, args, ok=ok)


@contextmanager
def git_diff_stream(
    repo: Path,
    *,
    staged: bool = False,
    rev_range: str | None = None,
    path: str | None = None,
    revs: tuple[str, str] | None = None,
) -> Iterator[BinaryIO]:
    """The same diffs as a stream, for `iter_parse_diff` on diffs too big to hold:

        with git_diff_stream(repo, staged=True) as stream:
            for chunk in chunk_diff(iter_parse_diff(stream), budget): ...

    `revs`: a range already resolved by `range_revisions`, so git is not asked again.
    Leaving the block early stops git. A git failure after the output was read raises DiffError."""
    args, ok = _plan(repo, staged=staged, rev_range=rev_range, path=path, revs=revs)
    cmd = _command(repo, args)
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty stderr cannot block git
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=_env())
        except FileNotFoundError:
            raise DiffError(
                "git is not installed or not on PATH: install git (https://git-scm.com) and retry"
            ) from None
        stdout = cast(BinaryIO, proc.stdout)
        try:
            yield stdout
            drained = stdout.read(1) == b""
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            stdout.close()
        if not drained:
            proc.kill()  # the caller stopped reading: no need for the rest
        returncode = proc.wait()
        if drained and returncode not in ok:
            err.seek(0)
            raise _error(repo, err.read(), returncode)


def read_stdin_diff(stream: IO[bytes] | TextIO) -> bytes:
    """All of a diff piped in (`git diff | ninetyten explain`). A terminal is refused rather
    than waited on forever."""
    binary = getattr(stream, "buffer", stream)
    isatty = getattr(binary, "isatty", None)
    if isatty is not None and isatty():
        raise DiffError("no diff on standard input (it is a terminal): pipe one in, e.g. `git diff | ...`")
    data = binary.read()
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
