"""Diffs read from real git repositories: every kind of staged change, ranges, the working
tree, hostile user config, a pre-commit hook, and chunks that `git apply` accepts."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.explain.diff import (
    DiffError,
    FileChange,
    chunk_diff,
    git_diff_stream,
    iter_parse_diff,
    parse_diff,
    range_diff,
    read_stdin_diff,
    staged_diff,
    working_tree_diff,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No global or system git config, and no GIT_DIR/GIT_INDEX_FILE leaking in from a hook."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True, env=env)
    return proc.stdout.decode("utf-8", "replace")


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    git(path, "symbolic-ref", "HEAD", "refs/heads/main")  # `init -b` needs git >= 2.28
    for key, value in (
        ("user.name", "Test Author"),
        ("user.email", "test@example.com"),
        ("commit.gpgsign", "false"),
        ("core.autocrlf", "false"),
    ):
        git(path, "config", key, value)
    return path


def write(repo: Path, rel: str, data: str | bytes) -> None:
    target = repo / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    target.write_bytes(data)


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def by_path(changes: list[FileChange]) -> dict[str, FileChange]:
    return {c.path: c for c in changes}


def numbered(prefix: str, n: int) -> str:
    return "".join(f"{prefix} line {i}: some text to make renames recognisable\n" for i in range(1, n + 1))


SPACED = "docs/release notes.md"
UNICODE = "src/naïve_日本.py"


@pytest.fixture
def staged_repo(tmp_path: Path) -> Path:
    """A commit, then one staged change of every kind."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "src/app.py", numbered("app", 20))
    write(repo, "src/remove_me.py", numbered("old", 5))
    write(repo, "docs/guide.md", numbered("guide", 30))
    write(repo, "src/config.py", numbered("config", 30))
    write(repo, "run.sh", "#!/bin/sh\necho run\n")
    write(repo, "package-lock.json", '{\n  "name": "x",\n  "version": "1.0.0"\n}\n')
    write(repo, SPACED, "# Notes\n")
    commit_all(repo, "base")

    write(repo, "src/app.py", numbered("app", 20).replace("app line 7:", "app line SEVEN:"))
    write(repo, "src/new_module.py", "def new():\n    return 1\n")
    (repo / "src/remove_me.py").unlink()
    git(repo, "mv", "docs/guide.md", "docs/manual.md")
    git(repo, "mv", "src/config.py", "src/settings.py")
    write(repo, "src/settings.py", numbered("config", 30).replace("config line 3:", "config line three:"))
    write(repo, "assets/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    write(repo, "win/setup.bat", b"@echo off\r\necho setup\r\nexit /b 0\r\n")
    write(repo, "legacy/menu.txt", "café crème brûlée\n".encode("latin-1"))
    write(repo, "package-lock.json", '{\n  "name": "x",\n  "version": "1.0.1"\n}\n')
    write(repo, "vendor/lib/util.js", "module.exports = 1;\n")
    write(repo, SPACED, "# Notes\n\n- faster\n")
    write(repo, UNICODE, "x = 1\n")
    git(repo, "add", "-A")
    git(repo, "update-index", "--chmod=+x", "run.sh")  # chmod +x, the same on every platform
    return repo


def test_staged_changes_of_every_kind_are_classified(staged_repo: Path) -> None:
    raw = staged_diff(staged_repo)
    assert b'"b/src/na\\303\\257ve_\\346\\227\\245\\346\\234\\254.py"' in raw, "core.quotepath=true (default) quoting"
    changes = by_path(parse_diff(raw))
    assert set(changes) == {
        "src/app.py",
        "src/new_module.py",
        "src/remove_me.py",
        "docs/manual.md",
        "src/settings.py",
        "run.sh",
        "assets/logo.png",
        "win/setup.bat",
        "legacy/menu.txt",
        "package-lock.json",
        "vendor/lib/util.js",
        SPACED,
        UNICODE,
    }

    app = changes["src/app.py"]
    assert (app.status, app.added, app.removed, app.summarized_only) == ("modified", 1, 1, False)
    assert "+app line SEVEN:" in app.hunks[0].text

    added = changes["src/new_module.py"]
    assert (added.status, added.old_path, added.new_mode, added.added) == ("added", None, "100644", 2)

    gone = changes["src/remove_me.py"]
    assert (gone.status, gone.new_path, gone.removed) == ("deleted", None, 5)

    pure = changes["docs/manual.md"]
    assert (pure.status, pure.old_path, pure.similarity, pure.hunks) == ("renamed", "docs/guide.md", 100, ())

    edited = changes["src/settings.py"]
    assert (edited.status, edited.old_path, edited.added, edited.removed) == ("renamed", "src/config.py", 1, 1)
    assert edited.similarity is not None and 50 < edited.similarity < 100

    mode = changes["run.sh"]
    assert (mode.status, mode.old_mode, mode.new_mode, mode.hunks) == ("mode_changed", "100644", "100755", ())

    logo = changes["assets/logo.png"]
    assert (logo.status, logo.binary, logo.summary_reason) == ("added", True, "binary")

    bat = changes["win/setup.bat"]
    assert bat.hunks[0].text == "+@echo off\r\n+echo setup\r\n+exit /b 0\r\n" and not bat.summarized_only

    menu = changes["legacy/menu.txt"]
    assert menu.hunks[0].text == "+caf\ufffd cr\ufffdme br\ufffdl\ufffde\n" and not menu.binary

    assert changes["package-lock.json"].summary_reason == "lock file"
    assert (changes["package-lock.json"].added, changes["package-lock.json"].removed) == (1, 1)
    assert changes["vendor/lib/util.js"].summary_reason == "vendored"

    spaced = changes[SPACED]
    assert (spaced.status, spaced.old_path, spaced.added) == ("modified", SPACED, 2)
    assert changes[UNICODE].status == "added"


def test_the_staged_diff_streams_to_the_same_result(staged_repo: Path) -> None:
    whole = parse_diff(staged_diff(staged_repo))
    with git_diff_stream(staged_repo, staged=True) as stream:
        streamed = list(iter_parse_diff(stream))
    assert streamed == whole
    # Leaving early stops git and is not an error.
    with git_diff_stream(staged_repo, staged=True) as stream:
        first = next(iter_parse_diff(stream))
    assert first == whole[0]


def test_hostile_user_config_does_not_change_the_result(staged_repo: Path) -> None:
    expected = parse_diff(staged_diff(staged_repo))
    for key, value in (
        ("diff.noprefix", "true"),
        ("diff.mnemonicPrefix", "true"),
        ("color.ui", "always"),
        ("color.diff", "always"),
        ("diff.external", "false"),
        ("core.quotepath", "false"),
        ("diff.suppressBlankEmpty", "true"),
        ("diff.renames", "false"),
        ("diff.submodule", "log"),
        ("diff.relative", "true"),
        ("diff.context", "1"),
    ):
        git(staged_repo, "config", key, value)
    got = parse_diff(staged_diff(staged_repo))
    assert [(c.path, c.old_path, c.status, c.added, c.removed, c.summary_reason) for c in got] == [
        (c.path, c.old_path, c.status, c.added, c.removed, c.summary_reason) for c in expected
    ]


def test_an_empty_staged_diff_is_no_files(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "clean")
    write(repo, "a.txt", "a\n")
    commit_all(repo, "one")
    assert staged_diff(repo) == b""
    assert parse_diff(staged_diff(repo)) == []
    write(repo, "a.txt", "changed but not staged\n")
    assert parse_diff(staged_diff(repo)) == []


def test_before_the_first_commit_everything_staged_is_added(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "unborn")
    write(repo, "a.txt", "a\n")
    git(repo, "add", "a.txt")
    (change,) = parse_diff(staged_diff(repo))
    assert (change.path, change.status) == ("a.txt", "added")
    (worktree,) = parse_diff(working_tree_diff(repo))
    assert (worktree.path, worktree.status) == ("a.txt", "added")


def test_not_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for call in (
        lambda: staged_diff(plain),
        lambda: range_diff(plain, "HEAD~1"),
        lambda: working_tree_diff(plain, "x.txt"),
    ):
        with pytest.raises(DiffError, match="not inside a git repository"):
            call()
    with pytest.raises(DiffError, match="not a directory"):
        staged_diff(tmp_path / "missing")
    with pytest.raises(DiffError, match="not inside a git repository"), git_diff_stream(plain, staged=True):
        pass


def test_git_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo(tmp_path / "repo")
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    with pytest.raises(DiffError, match="git is not installed"):
        staged_diff(repo)


@pytest.fixture
def branched_repo(tmp_path: Path) -> Path:
    """main: base, then main-only; feature (checked out) from base: two commits."""
    repo = new_repo(tmp_path / "branched")
    write(repo, "core.py", numbered("core", 10))
    commit_all(repo, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, "feature.py", "def feature():\n    pass\n")
    commit_all(repo, "add feature")
    write(repo, "core.py", numbered("core", 10).replace("core line 2:", "core line two:"))
    commit_all(repo, "tweak core")
    git(repo, "checkout", "-q", "main")
    write(repo, "main_only.py", "x = 1\n")
    commit_all(repo, "main moves on")
    git(repo, "checkout", "-q", "feature")
    return repo


def test_range_diffs(branched_repo: Path) -> None:
    two_dots = by_path(parse_diff(range_diff(branched_repo, "main..HEAD")))
    # A..B compares the two tips: main's own new file shows as deleted from feature's point of view.
    assert {p: c.status for p, c in two_dots.items()} == {
        "core.py": "modified",
        "feature.py": "added",
        "main_only.py": "deleted",
    }
    three_dots = by_path(parse_diff(range_diff(branched_repo, "main...feature")))
    assert {p: c.status for p, c in three_dots.items()} == {"core.py": "modified", "feature.py": "added"}
    assert set(by_path(parse_diff(range_diff(branched_repo, "main...")))) == {"core.py", "feature.py"}

    (last,) = parse_diff(range_diff(branched_repo, "HEAD"))  # a single rev: that commit's own change
    assert (last.path, last.added, last.removed) == ("core.py", 1, 1)
    (previous,) = parse_diff(range_diff(branched_repo, "HEAD~1"))
    assert (previous.path, previous.status) == ("feature.py", "added")
    root = git(branched_repo, "rev-list", "--max-parents=0", "HEAD").strip()
    (first,) = parse_diff(range_diff(branched_repo, root))
    assert (first.path, first.status, first.added) == ("core.py", "added", 10)


@pytest.mark.parametrize("bad", ["nope", "main..nope", "nope...main", "HEAD~99"])
def test_an_unknown_revision_is_a_clear_error(branched_repo: Path, bad: str) -> None:
    with pytest.raises(DiffError, match=r"unknown revision '(nope|HEAD~99)'.*git log --oneline"):
        range_diff(branched_repo, bad)


@pytest.mark.parametrize("bad", ["--output=x.txt", "-p", "main..--cached", "HEAD\n--stat", ""])
def test_option_like_or_control_character_ranges_are_refused(branched_repo: Path, bad: str) -> None:
    with pytest.raises(DiffError, match=r"invalid revision|empty revision range"):
        range_diff(branched_repo, bad)


def test_unrelated_histories_have_no_merge_base(branched_repo: Path) -> None:
    git(branched_repo, "checkout", "-q", "--orphan", "lonely")
    commit_all(branched_repo, "unrelated")
    with pytest.raises(DiffError, match="no common ancestor"):
        range_diff(branched_repo, "main...lonely")


def test_working_tree_diff_for_one_file_or_all(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "wt")
    write(repo, "a.py", "a = 1\nb = 2\n")
    write(repo, "[ab].txt", "literal\n")
    write(repo, "dir with space/c.py", "c = 1\n")
    commit_all(repo, "base")
    write(repo, "a.py", "a = 10\nb = 2\n")
    git(repo, "add", "a.py")  # staged ...
    write(repo, "a.py", "a = 10\nb = 20\n")  # ... and unstaged on top
    write(repo, "[ab].txt", "still literal\n")
    write(repo, "dir with space/c.py", "c = 2\n")
    write(repo, "untracked new.py", "fresh = True\n")

    (a,) = parse_diff(working_tree_diff(repo, "a.py"))
    assert (a.path, a.added, a.removed) == ("a.py", 2, 2), "staged and unstaged, both against HEAD"
    (literal,) = parse_diff(working_tree_diff(repo, "[ab].txt"))
    assert literal.path == "[ab].txt", "a path is a literal name, not a glob"
    (spaced,) = parse_diff(working_tree_diff(repo, str(repo / "dir with space" / "c.py")))
    assert spaced.path == "dir with space/c.py", "absolute paths are made relative to the repository"
    (fresh,) = parse_diff(working_tree_diff(repo, "untracked new.py"))
    assert (fresh.path, fresh.status, fresh.added) == ("untracked new.py", "added", 1)
    everything = by_path(parse_diff(working_tree_diff(repo)))
    assert set(everything) == {"a.py", "[ab].txt", "dir with space/c.py"}, "untracked files only when named"
    assert parse_diff(working_tree_diff(repo, "missing.py")) == []
    with pytest.raises(DiffError, match="outside the repository"):
        working_tree_diff(repo, str(tmp_path / "elsewhere.py"))


def test_read_stdin_diff_from_a_real_pipe(staged_repo: Path) -> None:
    proc = subprocess.Popen(["git", "diff", "--cached", "--no-color"], cwd=staged_repo, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with proc.stdout:
        data = read_stdin_diff(proc.stdout)
    assert proc.wait() == 0
    assert {c.path for c in parse_diff(data)} >= {"src/app.py", "run.sh", SPACED}


def test_chunks_of_a_real_diff_apply_to_the_original(tmp_path: Path) -> None:
    """Every chunk, alone, is a patch git accepts against the original tree, and the split
    hunks' line numbers point at the right lines of the real old and new files."""
    repo = new_repo(tmp_path / "apply")
    original = [f"line {i} of the original file\n" for i in range(1, 601)]
    write(repo, "big.txt", "".join(original))
    write(repo, "small.txt", "one\ntwo\n")
    commit_all(repo, "base")
    changed = list(original)
    for i in range(5, 600, 37):
        changed[i] = f"edited {i}\n"
    changed[200:400] = [f"rewritten block line {i}\n" for i in range(150)]
    write(repo, "big.txt", "".join(changed))
    write(repo, "small.txt", "one\n2\n")

    chunks = list(chunk_diff(parse_diff(working_tree_diff(repo)), 300))
    assert len(chunks) > 8
    files = {"big.txt": (original, changed), "small.txt": (["one\n", "two\n"], ["one\n", "2\n"])}
    for chunk in chunks:
        # Each piece's numbers point at its lines in the real old and new files.
        for change in parse_diff(chunk.text.encode()):
            old_file, new_file = files[change.path]
            for hunk in change.hunks:
                o = hunk.old_start if hunk.old_len else hunk.old_start + 1
                n = hunk.new_start if hunk.new_len else hunk.new_start + 1
                for line in hunk.lines():
                    if line[0] in " -":
                        assert old_file[o - 1] == line[1:], (chunk.index, hunk.header, line)
                        o += 1
                    if line[0] in " +":
                        assert new_file[n - 1] == line[1:], (chunk.index, hunk.header, line)
                        n += 1
        patch = tmp_path / f"chunk{chunk.index}.patch"
        patch.write_text(chunk.text, encoding="utf-8")
        # --cached: check against the index, which still holds the original.
        result = subprocess.run(
            ["git", "apply", "--check", "--cached", "--unidiff-zero", str(patch)],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"chunk {chunk.index}: {result.stderr}\n{chunk.text}"


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell hook")
def test_a_pre_commit_hook_sees_what_is_being_committed(tmp_path: Path) -> None:
    """`git commit -a` runs hooks with a temporary index (GIT_INDEX_FILE): the hook must see it."""
    repo = new_repo(tmp_path / "hooked")
    write(repo, "a.txt", "a\n")
    write(repo, "b.txt", "b\n")
    commit_all(repo, "base")
    out = tmp_path / "hook-output.txt"
    script = tmp_path / "hook.py"
    script.write_text(
        "from pathlib import Path\n"
        "from lsp_server.explain.diff import parse_diff, staged_diff\n"
        "paths = [c.path for c in parse_diff(staged_diff(Path('.')))]\n"
        f"Path({str(out)!r}).write_text(' '.join(paths))\n",
        encoding="utf-8",
    )
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}"\n', encoding="utf-8")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    write(repo, "a.txt", "a changed\n")
    write(repo, "b.txt", "b changed\n")
    git(repo, "add", "b.txt")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    git(repo, "commit", "-q", "-a", "-m", "both", env=env)
    assert out.read_text() == "a.txt b.txt"
