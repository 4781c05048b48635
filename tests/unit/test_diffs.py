"""Diff parsing, classification and chunking: handcrafted diffs in tests/data/diffs, generated
structures (hypothesis), garbage, and a 100,000-line diff through the streaming path with a
memory bound."""

from __future__ import annotations

import contextlib
import io
import random
import re
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server.explain.diff import (
    DiffChunk,
    DiffError,
    DiffTally,
    FileChange,
    SummaryRules,
    chunk_diff,
    diff_stats,
    file_header,
    iter_parse_diff,
    parse_diff,
    read_stdin_diff,
    summarize_skipped,
    with_totals,
)
from lsp_server.token_estimate import estimate_tokens as estimate

DATA = Path(__file__).resolve().parent.parent / "data" / "diffs"


def parse_file(name: str, **kwargs) -> list[FileChange]:
    return parse_diff((DATA / name).read_bytes(), **kwargs)


def by_path(changes: list[FileChange]) -> dict[str, FileChange]:
    return {c.path: c for c in changes}


def body(change: FileChange) -> list[str]:
    return [line for h in change.hunks for line in h.lines()]


# --------------------------------------------------------------------------- parsing


def test_modifications_with_sections_and_header_lookalike_lines() -> None:
    orders, schema = parse_file("modify.diff")
    assert (orders.path, orders.status, orders.old_mode, orders.new_mode) == (
        "src/orders.py",
        "modified",
        "100644",
        "100644",
    )
    assert [(h.old_start, h.old_len, h.new_start, h.new_len) for h in orders.hunks] == [(10, 7, 10, 8), (40, 6, 41, 6)]
    assert orders.hunks[0].section == " import logging"
    assert (orders.added, orders.removed) == (3, 2)
    assert orders.hunks[1].lines()[-1] == " \n", "a blank context line is kept"
    # In a hunk, `--- x` is a removed line and `+++ x` an added one, never a new file header.
    assert schema.path == "db/schema.sql" and (schema.added, schema.removed) == (1, 1)
    assert "--- old comment about ids\n" in schema.hunks[0].text
    assert "+++ new comment about ids\n" in schema.hunks[0].text


def test_added_deleted_and_empty_files() -> None:
    new, empty, gone = parse_file("add_delete.diff")
    assert (new.old_path, new.new_path, new.status, new.new_mode) == (None, "docs/new.md", "added", "100644")
    assert new.old_mode is None and new.added == 3 and new.hunks[0].old_start == 0
    assert (empty.old_path, empty.new_path, empty.status, empty.hunks) == (None, "empty.txt", "added", ())
    assert not empty.summarized_only
    assert (gone.old_path, gone.new_path, gone.status, gone.old_mode) == ("old/legacy.py", None, "deleted", "100755")
    assert gone.path == "old/legacy.py" and gone.removed == 2


def test_renames_copies_and_similarity() -> None:
    pure, edited, copy, moved_exec = parse_file("renames.diff")
    assert (pure.old_path, pure.new_path, pure.status, pure.similarity, pure.hunks) == (
        "keep.txt",
        "moved.txt",
        "renamed",
        100,
        (),
    )
    assert not pure.summarized_only
    assert (edited.old_path, edited.new_path, edited.status, edited.similarity) == (
        "edit.txt",
        "edited.txt",
        "renamed",
        95,
    )
    assert (edited.added, edited.removed) == (1, 1) and edited.hunks[0].section == " line 1"
    assert (copy.old_path, copy.new_path, copy.status, copy.similarity) == ("src.txt", "copy.txt", "copied", 88)
    assert (moved_exec.status, moved_exec.old_mode, moved_exec.new_mode) == ("renamed", "100644", "100755")


def test_mode_changes_only() -> None:
    run, spaced = parse_file("mode_only.diff")
    assert (run.path, run.status, run.old_mode, run.new_mode, run.hunks) == (
        "run.sh",
        "mode_changed",
        "100644",
        "100755",
        (),
    )
    assert (spaced.path, spaced.status, spaced.new_mode) == ("scripts/sp ace.sh", "mode_changed", "100644")
    assert diff_stats([run, spaced]).by_status == {"mode_changed": 2}


def test_binary_files_are_recognised_and_their_payload_skipped() -> None:
    changes = by_path(parse_file("binary.diff"))
    assert list(changes) == ["logo.png", "new.bin", "gone.bin", "blob.dat", "after.txt"]
    for name in ("logo.png", "new.bin", "gone.bin", "blob.dat"):
        change = changes[name]
        assert change.binary and change.summarized_only and change.summary_reason == "binary", name
        assert change.hunks == () and (change.added, change.removed) == (0, 0)
    assert changes["new.bin"].status == "added" and changes["new.bin"].old_path is None
    assert changes["gone.bin"].status == "deleted" and changes["gone.bin"].new_path is None
    after = changes["after.txt"]
    assert not after.binary and body(after) == ["-before\n", "+after\n"], "parsing resumes after a binary patch"


def test_no_newline_at_end_of_file_markers_stay_with_their_lines() -> None:
    a, b = parse_file("no_newline.diff")
    assert body(a) == [" first\n", "-last\n", "\\ No newline at end of file\n", "+last\n"]
    assert (a.added, a.removed) == (1, 1)
    assert body(b)[-1] == "\\ No newline at end of file\n" and (b.added, b.removed) == (2, 1)
    assert (b.hunks[0].old_len, b.hunks[0].new_len) == (1, 2)


def test_quoted_paths_spaces_unicode_quotes_and_tabs() -> None:
    spaced, unicode, quoted, renamed, spaced_dir = parse_file("quoted_paths.diff")
    assert spaced.path == "sp ace.txt" and spaced.old_path == "sp ace.txt", "the tab after a spaced name is dropped"
    assert (unicode.path, unicode.status) == ("naïve/日本.txt", "added")
    assert (quoted.old_path, quoted.status) == ('tab\t"q".txt', "deleted")
    assert (renamed.old_path, renamed.new_path, renamed.status) == ("old name.md", "new é.md", "renamed")
    assert spaced_dir.path == "dir with space/a b.txt" and spaced_dir.status == "mode_changed"


def test_quotepath_false_raw_utf8_names() -> None:
    raw = (
        "diff --git a/naïve.txt b/naïve.txt\nindex 1..2 100644\n--- a/naïve.txt\n+++ b/naïve.txt\n@@ -1 +1 @@\n-a\n+b\n"
    ).encode()
    assert parse_diff(raw)[0].path == "naïve.txt"


def test_submodules_are_summarized() -> None:
    bumped, added = parse_file("submodule.diff")
    assert (bumped.path, bumped.status, bumped.summary_reason, bumped.new_mode) == (
        "libs/engine",
        "modified",
        "submodule",
        "160000",
    )
    assert (bumped.added, bumped.removed, bumped.hunks) == (1, 1, ())
    assert (added.path, added.status, added.summary_reason) == ("sub", "added", "submodule")
    assert summarize_skipped([bumped]) == ["libs/engine (submodule, +1 -1)"]


def test_combined_merge_diffs_are_summarized_not_parsed_as_hunks() -> None:
    merged, created = parse_file("combined.diff")
    assert (merged.path, merged.status, merged.summary_reason, merged.hunks) == (
        "new sp.txt",
        "modified",
        "merge diff",
        (),
    )
    assert (merged.added, merged.removed) == (2, 2)
    assert (created.path, created.status, created.added) == ("untracked.txt", "added", 1)


def test_plain_unified_diffs_without_git_headers() -> None:
    app, icon, util = parse_file("plain_unified.diff")
    assert (app.old_path, app.new_path, app.status) == ("app.py", "app.py", "modified"), "diff -ru old/ new/"
    assert body(app) == [" import os\n", '-print("hi")\n', '+print("hello")\n', " \n"]
    assert (icon.path, icon.binary, icon.summary_reason) == ("icon.ico", True, "binary")
    assert (util.path, util.hunks[0].section) == ("lib/util.py", " def util():")


def test_email_patch_preamble_and_signature_are_ignored() -> None:
    (change,) = parse_file("email.patch")
    assert change.path == "src/orders.py" and (change.added, change.removed) == (1, 1)
    assert body(change) == [" \n", "-MAX_ITEMS = 50\n", "+MAX_ITEMS = 100\n", " \n"]


def test_empty_context_lines_from_suppress_blank_empty() -> None:
    poem, following = parse_file("suppress_blank.diff")
    assert body(poem) == [" roses\n", " \n", "-violets\n", "+tulips\n", " \n", " sugar\n"]
    assert following.path == "next.txt" and (following.added, following.removed) == (1, 1)


def test_truncated_hunk_keeps_what_is_there_with_a_matching_header() -> None:
    cut, following = parse_file("truncated.diff")
    hunk = cut.hunks[0]
    assert hunk.header == "@@ -1,2 +1,3 @@ def cut():" and (hunk.old_len, hunk.new_len) == (2, 3)
    assert (cut.added, cut.removed) == (2, 1)
    assert body(cut) == [" a = 1\n", "-b = 2\n", "+b = 3\n", "+c = 4\n"]
    assert (following.path, following.old_mode) == ("next.py", "100644"), "a cut hunk ends at the next file header"
    assert following.hunks[0].header == "@@ -3,1 +3,0 @@ def nxt():" and body(following) == ["-gone\n"]


def test_crlf_inside_hunks_is_kept_visible() -> None:
    bat, eol = parse_file("crlf.diff")
    assert body(bat) == [" @echo off\r\n", "-echo old\r\n", "+echo new\r\n", "+echo added\r\n", " exit /b 0\r\n"]
    assert (bat.added, bat.removed) == (2, 1)
    assert body(eol) == ["-same\n", "-text\n", "+same\r\n", "+text\r\n"], "an EOL-only change stays visible"


def test_a_diff_saved_with_crlf_line_endings() -> None:
    a, b = parse_file("crlf_everywhere.diff")
    assert (a.path, a.added, a.removed) == ("a.py", 1, 1) and a.hunks[0].section == " def f():"
    assert (b.path, b.status, b.new_mode) == ("b.py", "mode_changed", "100755")


def test_bytes_that_are_not_utf8_are_replaced_never_fatal() -> None:
    cafe, resume = parse_file("latin1.diff")
    assert cafe.path == "caf\ufffd.txt" and resume.path == "r\ufffdsum\ufffd.txt"
    assert body(cafe)[2] == "+caf\ufffd cr\ufffdme br\ufffdl\ufffde\n"
    assert (cafe.added, cafe.removed) == (2, 1)


def test_surrogateescape_round_trips_the_original_bytes() -> None:
    (cafe, _) = parse_file("latin1.diff", encoding_errors="surrogateescape")
    assert cafe.path.encode("utf-8", "surrogateescape") == b"caf\xe9.txt"
    assert body(cafe)[3].encode("utf-8", "surrogateescape") == b"+\xff\xfe\x80\x00 raw bytes\n"


@pytest.mark.parametrize("name", ["empty.diff", "blank.diff"])
def test_an_empty_diff_is_an_empty_list(name: str) -> None:
    assert parse_file(name) == []


def test_garbage_is_a_clear_error() -> None:
    with pytest.raises(DiffError, match="not a unified diff"):
        parse_file("garbage.txt")
    with pytest.raises(DiffError):
        parse_diff(bytes(range(256)) * 10)


def test_an_overlong_line_is_cut_without_being_read_whole() -> None:
    huge = b"x" * 300_000
    raw = (
        b"diff --git a/data.json b/data.json\nindex 1..2 100644\n--- a/data.json\n+++ b/data.json\n"
        b"@@ -1 +1,2 @@\n-" + huge + b"\n+{}\n+" + huge + b"\n"
    )
    (change,) = parse_diff(raw, max_line_bytes=1000)
    lines = body(change)
    assert (change.added, change.removed) == (2, 1)
    assert lines[0].startswith("-xxx") and lines[0].endswith(" [299001 bytes cut]\n") and len(lines[0]) < 1100
    assert lines[1] == "+{}\n"


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        line = super().readline(size)
        self.consumed += len(line)
        return line


def test_iter_parse_diff_is_lazy_file_by_file() -> None:
    one = "".join(
        f"diff --git a/f{i}.py b/f{i}.py\n--- a/f{i}.py\n+++ b/f{i}.py\n@@ -1 +1 @@\n-a\n+b\n" for i in range(1000)
    ).encode()
    stream = CountingStream(one)
    changes = iter_parse_diff(stream)
    first = next(changes)
    assert first.path == "f0.py"
    assert stream.consumed < 200, "one file (plus one line of lookahead) read, not the whole diff"
    assert sum(1 for _ in changes) == 999


def test_iter_parse_diff_reads_a_text_stream_through_its_buffer() -> None:
    text = io.TextIOWrapper(io.BytesIO((DATA / "modify.diff").read_bytes()), encoding="ascii")
    assert [c.path for c in iter_parse_diff(text)] == ["src/orders.py", "db/schema.sql"]


def test_read_stdin_diff_reads_bytes_and_refuses_a_terminal() -> None:
    assert read_stdin_diff(io.BytesIO(b"diff --git a/x b/x\n")) == b"diff --git a/x b/x\n"

    class Tty(io.BytesIO):
        def isatty(self) -> bool:
            return True

    with pytest.raises(DiffError, match="terminal"):
        read_stdin_diff(Tty(b""))


REAL_DIFFS = [p.read_bytes() for p in sorted(DATA.glob("*")) if p.suffix in (".diff", ".patch")]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mangled_diffs_never_crash_the_parser(data: st.DataObject) -> None:
    """Truncated, spliced and bit-flipped real diffs parse or raise DiffError; nothing else."""
    raw = bytearray(data.draw(st.sampled_from(REAL_DIFFS)))
    for _ in range(data.draw(st.integers(0, 6))):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at : at + data.draw(st.integers(1, 40))]
        elif action == "insert":
            raw[at:at] = data.draw(
                st.sampled_from(
                    [
                        b"\n",
                        b"@@ -1 +1 @@\n",
                        b"diff --git a/q b/q\n",
                        b"\\",
                        b"--- a\n+++ b\n",
                        b"\r",
                        b"\xff",
                        b"@@@ -1 -1 +1 @@@\n",
                        b"GIT binary patch\n",
                        b'"',
                    ]
                )
            )
        else:
            del raw[at:]
    try:
        changes = parse_diff(bytes(raw))
    except DiffError:
        return
    for change in changes:
        assert change.path is not None
        assert change.added >= sum(h.added for h in change.hunks)
        for hunk in change.hunks:
            assert hunk.text == "" or hunk.text.endswith("\n")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_the_parser(raw: bytes) -> None:
    with contextlib.suppress(DiffError):
        parse_diff(raw)


# --------------------------------------------------------------------------- classification

EXPECTED_SUMMARY = {
    "package-lock.json": "lock file",
    "web/yarn.lock": "lock file",
    "Cargo.lock": "lock file",
    "go.sum": "lock file",
    "poetry.lock": "lock file",
    "pylock.dev.toml": "lock file",
    "vendor/github.com/pkg/errors/errors.go": "vendored",
    "frontend/node_modules/left-pad/index.js": "vendored",
    "third_party/zlib/zlib.h": "vendored",
    "static/app.min.js": "generated",
    "static/app.js.map": "generated",
    "proto/user_pb2.py": "generated",
    "api/user.pb.go": "generated",
    "dist/bundle.js": "generated",
    "packages/ui/build/index.js": "generated",
    "gen/models.go": "generated",  # "Code generated ... DO NOT EDIT." on line 1
    "schema/types.ts": "generated",  # "automatically generated" on line 2
    "requirements.txt": "generated",  # pip-compile's "autogenerated"
    # hand-written: a marker too far down, a Django migration, lower-case advice, "rebuild/"
    "src/late_marker.py": None,
    "app/migrations/0002_auto.py": None,
    "src/settings.py": None,
    "src/rebuild/build_tools.py": None,
    "src/handwritten.go": None,
}


def test_lock_generated_and_vendored_files_are_summarized_by_name() -> None:
    changes = by_path(parse_file("summarized.diff"))
    assert {p: c.summary_reason for p, c in changes.items()} == EXPECTED_SUMMARY
    for change in changes.values():
        assert change.summarized_only == (change.summary_reason is not None)
        assert change.summarized_only == (change.hunks == ()), "summarized files carry no text"
        assert change.added > 0, "counts survive even when the text is dropped"


def test_summarize_skipped_lines() -> None:
    changes = parse_file("summarized.diff") + parse_file("binary.diff")[:2] + parse_file("renames.diff")
    lines = summarize_skipped(changes)
    assert lines[0] == "package-lock.json (lock file, +1 -1)"
    assert "web/yarn.lock (lock file, added, +2 -0)" in lines
    assert "logo.png (binary)" in lines and "new.bin (binary, added)" in lines
    assert len(lines) == sum(1 for v in EXPECTED_SUMMARY.values() if v) + 2
    vendored_rename = FileChange(
        "vendor/a.c", "third_party/a.c", "renamed", similarity=100, summarized_only=True, summary_reason="vendored"
    )
    assert summarize_skipped([vendored_rename]) == ["vendor/a.c -> third_party/a.c (vendored, renamed, +0 -0)"]


def big_file(path: str, changed: int, context_every: int = 0) -> bytes:
    lines = []
    for i in range(changed):
        lines.append(f"+line {i}\n")
        if context_every and i % context_every == 0:
            lines.append(f" ctx {i}\n")
    ctx = changed // context_every + 1 if context_every else 0
    head = f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1,{ctx} +1,{changed + ctx} @@\n"
    return (head + "".join(lines)).encode()


def test_huge_files_are_summarized_and_the_limit_is_configurable() -> None:
    (huge,) = parse_diff(big_file("src/data.py", 5001))
    assert (huge.summarized_only, huge.summary_reason, huge.added, huge.hunks) == (True, "too large", 5001, ())
    (fine,) = parse_diff(big_file("src/data.py", 5000))
    assert not fine.summarized_only and fine.added == 5000
    (small_limit,) = parse_diff(big_file("src/data.py", 11), rules=SummaryRules(max_changed_lines=10))
    assert small_limit.summary_reason == "too large"
    (no_limit,) = parse_diff(big_file("src/data.py", 20_000), rules=SummaryRules(max_changed_lines=None))
    assert not no_limit.summarized_only and len(body(no_limit)) == 20_000


def test_rules_are_configurable() -> None:
    rules = SummaryRules(lock_files=("deps.lock",), vendored_dirs=frozenset({"ext"}), generated_dirs=frozenset())
    assert rules.classify_path("a/deps.lock") == "lock file"
    assert rules.classify_path("package-lock.json") is None
    assert rules.classify_path("ext/lib.c") == "vendored"
    assert rules.classify_path("dist/x.js") is None and rules.classify_path("x.min.js") == "generated"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("uv.lock", "lock file"),
        ("deep/Pipfile.lock", "lock file"),
        ("composer.lock", "lock file"),
        ("Gemfile.lock", "lock file"),
        ("pnpm-lock.yaml", "lock file"),
        ("lock.json", None),
        ("my_vendor/x.go", None),
        ("src/vendor/x.go", "vendored"),
        ("x_pb2_grpc.py", "generated"),
        ("css/site.min.css", "generated"),
        ("distance.py", None),
        ("build.gradle", None),
        ("build/out.o", "generated"),
    ],
)
def test_classify_path(path: str, reason: str | None) -> None:
    assert SummaryRules().classify_path(path) == reason


def test_diff_stats_and_tally() -> None:
    changes = parse_file("add_delete.diff") + parse_file("binary.diff")
    stats = diff_stats(changes)
    assert (stats.files, stats.added, stats.removed, stats.summarized) == (8, 4, 3, 4)
    assert stats.by_status == {"added": 3, "deleted": 2, "modified": 3}
    assert str(stats) == "8 files changed, +4 -3 (3 added, 2 deleted, 3 modified); 4 summarized only"
    tally = DiffTally()
    assert list(tally.watch(changes)) == changes
    assert tally.stats == stats and tally.skipped == summarize_skipped(changes)


# --------------------------------------------------------------------------- chunking


def chunk_lines(chunks: list[DiffChunk]) -> list[str]:
    """Every hunk body line of the chunks, in order, parsed back from the chunk texts."""
    return [line for chunk in chunks for change in parse_diff(chunk.text.encode()) for line in body(change)]


def test_small_files_share_a_chunk_and_summarized_files_stay_out() -> None:
    changes = parse_file("modify.diff") + parse_file("summarized.diff") + parse_file("mode_only.diff")
    (chunk,) = with_totals(chunk_diff(changes, 4000))
    sent = [c for c in changes if not c.summarized_only]
    assert chunk.files == tuple(c.path for c in sent)
    assert (chunk.index, chunk.total) == (0, 1) and chunk.est_tokens == estimate(chunk.text) <= 4000
    assert "package-lock.json" not in chunk.text and "old mode 100755" in chunk.text
    assert [c.path for c in parse_diff(chunk.text.encode())] == [c.path for c in sent]
    assert chunk_lines([chunk]) == [line for c in sent for line in body(c)]


def test_header_only_changes_are_sent() -> None:
    changes = parse_file("renames.diff")
    (chunk,) = chunk_diff(changes, 4000)
    assert "rename from keep.txt\nrename to moved.txt\n" in chunk.text
    assert "similarity index 100%" in chunk.text
    reparsed = parse_diff(chunk.text.encode())
    assert [(c.old_path, c.new_path, c.status) for c in reparsed] == [
        (c.old_path, c.new_path, c.status) for c in changes
    ]


def test_file_header_round_trips_awkward_paths() -> None:
    for change in parse_file("quoted_paths.diff"):
        (again,) = parse_diff((file_header(change) + "".join(h.header + "\n" + h.text for h in change.hunks)).encode())
        assert (again.old_path, again.new_path, again.status) == (change.old_path, change.new_path, change.status)


def many_hunks(path: str, hunks: int, lines_per_hunk: int) -> bytes:
    out = [f"diff --git a/{path} b/{path}\nindex 1..2 100644\n--- a/{path}\n+++ b/{path}\n"]
    for k in range(hunks):
        start = 1 + k * 100
        out.append(f"@@ -{start},{lines_per_hunk + 1} +{start},{lines_per_hunk + 1} @@ def f{k}():\n ctx\n")
        out += [f"-old {k}.{i}\n" if i % 2 else f"+new {k}.{i}\n" for i in range(lines_per_hunk)]
    return "".join(out).encode()


def test_a_big_file_is_split_at_hunk_boundaries_with_its_header_repeated() -> None:
    (change,) = parse_diff(many_hunks("src/big.py", hunks=12, lines_per_hunk=10))
    chunks = with_totals(chunk_diff([change], 150))
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text.startswith("diff --git a/src/big.py b/src/big.py\n--- a/src/big.py\n+++ b/src/big.py\n@@ ")
        assert chunk.files == ("src/big.py",) and chunk.est_tokens <= 150 and chunk.total == len(chunks)
        for hunk in parse_diff(chunk.text.encode())[0].hunks:
            assert hunk in change.hunks, "whole hunks, untouched"
    assert chunk_lines(chunks) == body(change)


def test_a_huge_hunk_is_split_at_lines_with_adjusted_headers() -> None:
    lines = (
        [" keep 0\n"]
        + [f"-old {i}\n+new {i}\n" for i in range(1, 200)]
        + [" keep 200\n", "-last\n", "\\ No newline at end of file\n"]
    )
    raw = (
        "diff --git a/t.txt b/t.txt\n--- a/t.txt\n+++ b/t.txt\n@@ -50,202 +60,201 @@ class T:\n" + "".join(lines)
    ).encode()
    (change,) = parse_diff(raw)
    chunks = list(chunk_diff([change], 200))
    assert len(chunks) > 5
    pieces = [h for chunk in chunks for h in parse_diff(chunk.text.encode())[0].hunks]
    for chunk in chunks:
        assert chunk.est_tokens <= 200
    # Consecutive pieces continue each other's line numbers and keep the section text.
    old_next, new_next = 50, 60
    for piece in pieces:
        assert piece.section == " class T:"
        assert piece.old_start == (old_next if piece.old_len else old_next - 1)
        assert piece.new_start == (new_next if piece.new_len else new_next - 1)
        old_next += piece.old_len
        new_next += piece.new_len
        assert not piece.text.startswith("\\"), "a no-newline marker never starts a piece"
    assert (old_next, new_next) == (50 + 202, 60 + 201)
    assert chunk_lines(chunks) == body(change)


def test_a_line_larger_than_the_budget_goes_alone() -> None:
    raw = ("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-" + "y" * 3000 + "\n+z\n b\n").encode()
    (change,) = parse_diff(raw)
    chunks = list(chunk_diff([change], 100))
    over = [c for c in chunks if c.est_tokens > 100]
    assert len(over) == 1 and "y" * 3000 in over[0].text
    assert len(body(parse_diff(over[0].text.encode())[0])) == 1
    assert chunk_lines(chunks) == body(change)


def test_chunk_diff_rejects_a_useless_budget() -> None:
    with pytest.raises(ValueError):
        list(chunk_diff([], 0))
    assert list(chunk_diff([], 10)) == []


# -- property test: random file/hunk structures rendered to diff text, parsed, chunked


@st.composite
def diff_structures(draw: st.DrawFn) -> list[tuple[str, list[tuple[int, int, list[str]]]]]:
    """Files of hunks of lines ('+', '-', ' ' lines with text that may be long or non-ASCII)."""
    text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=60) | st.sampled_from(
        ["", "x" * 500, "é" * 100]
    )
    files = []
    for f in range(draw(st.integers(1, 6))):
        hunks = []
        old_at = new_at = draw(st.integers(1, 5))
        for _ in range(draw(st.integers(0, 4))):
            kinds = draw(st.lists(st.sampled_from(" +-"), min_size=1, max_size=40))
            lines = [k + draw(text) + "\n" for k in kinds]
            if draw(st.booleans()) and lines[-1][0] != " ":
                lines.append("\\ No newline at end of file\n")
            hunks.append((old_at, new_at, lines))
            old_at += sum(1 for ln in lines if ln[0] in " -") + draw(st.integers(1, 50))
            new_at += sum(1 for ln in lines if ln[0] in " +") + draw(st.integers(1, 50))
        files.append((f"dir {f}/file_{f}.py", hunks))
    return files


def render(files: list[tuple[str, list[tuple[int, int, list[str]]]]]) -> bytes:
    out = []
    for path, hunks in files:
        out.append(f"diff --git a/{path} b/{path}\nindex 1..2 100644\n--- a/{path}\n+++ b/{path}\n")
        for old_at, new_at, lines in hunks:
            old = sum(1 for ln in lines if ln[0] in " -")
            new = sum(1 for ln in lines if ln[0] in " +")
            out.append(f"@@ -{old_at if old else old_at - 1},{old} +{new_at if new else new_at - 1},{new} @@ f()\n")
            out += lines
    return "".join(out).encode()


def numbered(change: FileChange) -> tuple[dict[int, str], dict[int, str]]:
    """Old and new line number -> line, as the hunk headers place them."""
    old_lines: dict[int, str] = {}
    new_lines: dict[int, str] = {}
    for hunk in change.hunks:
        o = hunk.old_start if hunk.old_len else hunk.old_start + 1
        n = hunk.new_start if hunk.new_len else hunk.new_start + 1
        for line in hunk.lines():
            if line[0] in " -":
                old_lines[o] = line[1:]
                o += 1
            if line[0] in " +":
                new_lines[n] = line[1:]
                n += 1
    return old_lines, new_lines


def words(text: str) -> int:
    return len(text.split())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=diff_structures(), budget=st.integers(1, 600), counter=st.sampled_from([estimate, words]))
def test_chunking_invariants(files, budget: int, counter) -> None:
    changes = parse_diff(render(files), rules=SummaryRules(generated_marker=r"(?!)"))
    assert [c.path for c in changes] == [p for p, _ in files]
    assert [body(c) for c in changes] == [[ln for *_, lines in hunks for ln in lines] for _, hunks in files]

    chunks = with_totals(chunk_diff(changes, budget, count_tokens=counter))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.total == len(chunks) for c in chunks)

    # Every line lands in exactly one chunk, in order.
    assert chunk_lines(chunks) == [line for c in changes for line in body(c)]

    # Within budget unless a single line (with the headers it needs) alone is not.
    for chunk in chunks:
        assert chunk.est_tokens == counter(chunk.text)
        if chunk.est_tokens > budget:
            units = [ln for c in parse_diff(chunk.text.encode()) for ln in body(c) if not ln.startswith("\\")]
            assert len(units) <= 1, (budget, chunk.text)

    # Split hunks carry line numbers that place every line where the original put it.
    for change in changes:
        parts = [c for chunk in chunks for c in parse_diff(chunk.text.encode()) if c.path == change.path]
        merged = FileChange(
            change.old_path, change.new_path, "modified", hunks=tuple(h for part in parts for h in part.hunks)
        )
        assert numbered(merged) == numbered(change)
        assert all(chunk.text.count(f"diff --git a/{change.path} ") <= 1 for chunk in chunks)


# --------------------------------------------------------------------------- 100,000 lines, streamed

BUDGET = 4000
ID = re.compile(r"^[+-]L(\d+) ")


def write_big_diff(path: Path) -> dict[str, int]:
    """~100k hunk lines: many small files, files of many hunks, single hunks of 4,000 lines, a lock
    file and a too-large file (the last two are summarized). Changed lines of files that are sent
    carry consecutive ids so the test can check exactly-once, in-order delivery in O(1) memory."""
    rng = random.Random(7)
    next_id = 0
    stats = {"lines": 0, "sent_changed": 0}

    def changed(sign: str, send: bool) -> str:
        nonlocal next_id
        stats["lines"] += 1
        if not send:
            return f"{sign}  \"resolved\": \"https://registry.example/pkg-{rng.randrange(10**6)}.tgz\",\n"
        next_id += 1
        stats["sent_changed"] += 1
        return f"{sign}L{next_id} value = compute(alpha, beta, gamma)  # {'x' * rng.randrange(40)}\n"

    def hunk(out, old_at: int, n_changed: int, send: bool) -> None:
        rows = [" context line before\n"]
        for _ in range(n_changed):
            rows.append(changed(rng.choice("+-"), send))
            if rng.random() < 0.1:
                rows.append("     unchanged_call(argument)\n")
        rows.append(" context line after\n")
        stats["lines"] += len(rows) - n_changed
        old = sum(1 for r in rows if r[0] in " -")
        new = sum(1 for r in rows if r[0] in " +")
        out.write(f"@@ -{old_at},{old} +{old_at},{new} @@ def section_{old_at}():\n")
        out.writelines(rows)

    def file(out, name: str, hunks: list[int], send: bool = True) -> None:
        out.write(f"diff --git a/{name} b/{name}\nindex 1111111..2222222 100644\n--- a/{name}\n+++ b/{name}\n")
        at = 1
        for n in hunks:
            hunk(out, at, n, send)
            at += n + 50

    with path.open("w", encoding="utf-8", newline="\n") as out:
        for i in range(300):
            file(out, f"src/small_{i}.py", [rng.randrange(1, 40) for _ in range(rng.randrange(1, 4))])
        for i in range(30):
            file(out, f"src/many_{i}.py", [rng.randrange(20, 150) for _ in range(12)])
        for i in range(10):
            file(out, f"src/huge_{i}.py", [4000])
        file(out, "package-lock.json", [3000], send=False)
        file(out, "src/too_large.py", [3000, 3000], send=False)
        for i in range(100):
            file(out, f"src/tail_{i}.py", [rng.randrange(1, 30)])
    return stats


@pytest.fixture(scope="module")
def big_diff(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("bigdiff") / "big.diff"
    stats = write_big_diff(path)
    assert stats["lines"] >= 100_000
    return path, stats


def check_stream(path: Path, tally: DiffTally) -> tuple[int, int, int]:
    """Stream the file through parse + chunk keeping O(1) state: ids must come 1, 2, 3... and
    chunks must fit the budget. Returns (lines delivered, chunks, chunks over budget)."""
    last_id = chunks = over = 0
    with path.open("rb") as stream:
        for chunk in chunk_diff(tally.watch(iter_parse_diff(stream)), BUDGET):
            chunks += 1
            over += chunk.est_tokens > BUDGET
            for line in chunk.text.split("\n"):
                if m := ID.match(line):
                    assert int(m[1]) == last_id + 1, "each changed line exactly once, in order"
                    last_id += 1
    return last_id, chunks, over


def test_a_100k_line_diff_streams_in_bounded_memory(big_diff: tuple[Path, dict[str, int]]) -> None:
    path, stats = big_diff
    size = path.stat().st_size

    tally = DiffTally()
    start = time.perf_counter()
    delivered, chunks, over = check_stream(path, tally)
    seconds = time.perf_counter() - start

    tracemalloc.start()
    try:
        check_stream(path, DiffTally())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(
        f"\n100k-line diff: {stats['lines']} hunk lines, {size / 1e6:.1f} MB, {chunks} chunks of <= {BUDGET} "
        f"tokens, {seconds:.2f} s, peak traced memory {peak / 1e6:.2f} MB"
    )
    assert delivered == stats["sent_changed"]
    assert over == 0
    lock, too_large = skipped_counts(path, "package-lock.json"), skipped_counts(path, "src/too_large.py")
    assert tally.skipped == [
        f"package-lock.json (lock file, +{lock[0]} -{lock[1]})",
        f"src/too_large.py (too large, +{too_large[0]} -{too_large[1]})",
    ]
    assert tally.stats.files == 300 + 30 + 10 + 2 + 100
    # The largest file sent holds ~4,400 lines (~0.3 MB of text); parsed, then split into lines for
    # chunking, that is ~1 MB of str objects (measured peak: ~1.5 MB). Holding the whole 6.5 MB diff
    # as parsed text would need several times its size.
    assert peak < 4_000_000 and peak < size / 2, f"peak {peak} bytes for a {size}-byte diff"


def skipped_counts(path: Path, name: str) -> tuple[int, int]:
    with path.open("rb") as stream:
        (change,) = [c for c in iter_parse_diff(stream) if c.path == name]
    return change.added, change.removed


def test_chunks_name_every_path_old_and_new() -> None:
    """Routing judges each path a chunk holds: the old names of renames and copies too."""
    changes = parse_file("renames.diff")
    chunks = list(chunk_diff(changes, 10_000))
    assert len(chunks) == 1
    expected = {path for change in changes for path in (change.old_path, change.new_path) if path}
    assert set(chunks[0].paths) == expected and set(chunks[0].files) < expected
