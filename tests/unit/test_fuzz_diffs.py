"""Property tests (hypothesis) for the diff parser and chunker on generated diffs with
everything git prints: quoted and non-UTF-8 paths, renames, copies, mode changes, binary
markers, added and deleted files, CRLF content, blank context lines (suppressBlankEmpty),
"\\ No newline" markers; also plain `diff -u` output and structured garbage.

The generator writes the diff from a model of files, so the expected paths, statuses and
counts are known independently of the parser. Runs derandomized so CI is stable;
NINETYTEN_FUZZ=deep explores new random inputs with ten times the examples.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from hypothesis import example, given
from hypothesis import strategies as st

from lsp_server.explain.diff import (
    DiffChunk,
    DiffError,
    FileChange,
    SummaryRules,
    chunk_diff,
    iter_parse_diff,
    parse_diff,
    with_totals,
)
from lsp_server.token_estimate import estimate_tokens as estimate
from tests.fuzzing import fuzz

# Nothing summarized by name or content, so every text file keeps its hunks for comparison.
KEEP_ALL = SummaryRules(
    lock_files=(),
    generated_files=(),
    generated_dirs=frozenset(),
    vendored_dirs=frozenset(),
    generated_marker=r"(?!)",
    max_changed_lines=None,
)
ESCAPE = "surrogateescape"  # every byte round-trips, so expected and parsed text compare exactly


# --------------------------------------------------------------------------- the model


@dataclass
class Hunk:
    old_start: int
    new_start: int
    lines: list[bytes]  # each prefixed ' ', '+', '-' or '\\', ending in b"\n"

    @property
    def old_len(self) -> int:
        return sum(1 for ln in self.lines if ln[:1] in b" -")

    @property
    def new_len(self) -> int:
        return sum(1 for ln in self.lines if ln[:1] in b" +")


@dataclass
class File:
    status: str  # added, deleted, modified, renamed, copied, mode_changed
    old: bytes
    new: bytes
    old_mode: str = "100644"
    new_mode: str = "100644"
    binary: bool = False
    similarity: int | None = None
    legacy_rename: bool = False  # `rename old/new`, which git apply still reads
    hunks: list[Hunk] = field(default_factory=list)

    def added(self) -> int:
        return sum(1 for h in self.hunks for ln in h.lines if ln[:1] == b"+")

    def removed(self) -> int:
        return sum(1 for h in self.hunks for ln in h.lines if ln[:1] == b"-")

    def body(self) -> list[str]:
        return [ln.decode("utf-8", ESCAPE) for h in self.hunks for ln in h.lines]


# Path segments: ASCII, spaces, UTF-8, invalid UTF-8, and characters git quotes.
segment = st.lists(
    st.sampled_from(
        [
            b"a",
            b"src",
            b"b",
            b"x y",
            b" b",
            b"caf\xc3\xa9",
            b"\xe6\x97\xa5",
            b"\xff",
            b"\xe9",
            b"e ",
            b"t\tab",
            b'q"t',
            b"back\\slash",
            b"n\nl",
            b"-",
            b"_",
            b".",
            b"1",
        ]
    ),
    min_size=1,
    max_size=3,
).map(b"".join)
paths = st.lists(segment, min_size=1, max_size=3).map(b"/".join)
plain_paths = (
    st.lists(st.sampled_from([b"a", b"src", b"x y", b"caf\xc3\xa9", b"\xff", b"-", b"1"]), min_size=1, max_size=3)
    .map(b"".join)
    .filter(lambda p: not p.startswith(b'"'))
)
content = st.lists(
    st.sampled_from(
        [
            b"x",
            b"def f():",
            b"    ",
            b"\t",
            b"\xc3\xa9",
            b"\xf0\x9f\x98\x80",
            b"\xff\xfe",
            b"-- x",
            b"+++ y",
            b"--- z",
            b"@@ -1 +1 @@",
            b"diff --git a/q b/q",
            b"\\",
            b"\r",
            b"\x00",
            b'"',
        ]
    ),
    max_size=5,
).map(b"".join)


@st.composite
def hunks(draw: st.DrawFn, kinds: str, crlf: bool) -> list[Hunk]:
    out = []
    old_at = new_at = draw(st.integers(1, 20))
    for _ in range(draw(st.integers(1, 3))):
        lines = []
        for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=12)):
            text = draw(content)
            end = b"\r\n" if crlf and draw(st.booleans()) else b"\n"
            lines.append(kind.encode() + text.rstrip(b"\r") + end)
        if not any(ln[:1] in b"+-" for ln in lines):
            lines.append((kinds[-1] if kinds != " " else "+").encode() + b"changed\n")
        out.append(Hunk(old_at, new_at, lines))
        old_at += out[-1].old_len + draw(st.integers(1, 9))
        new_at += out[-1].new_len + draw(st.integers(1, 9))
    if draw(st.booleans()) and out[-1].lines[-1][:1] != b" ":
        out[-1].lines.append(b"\\ No newline at end of file\n")
    return out


@st.composite
def files(draw: st.DrawFn, plain: bool) -> File:
    statuses = ["modified", "added", "deleted"] + ([] if plain else ["renamed", "copied", "mode_changed"])
    status = draw(st.sampled_from(statuses))
    old = draw(plain_paths if plain else paths)
    new = draw(plain_paths if plain else paths) if status in ("renamed", "copied") else old
    f = File(status, old, new, binary=draw(st.integers(0, 5)) == 0 and status != "mode_changed")
    if status in ("renamed", "copied"):
        if new == old:
            f.new = new + b"2"
        f.similarity = draw(st.integers(0, 100))
        f.legacy_rename = status == "renamed" and draw(st.booleans())
    if status == "mode_changed" or (status == "modified" and not plain and draw(st.booleans())):
        f.new_mode = "100755"
    crlf = draw(st.booleans())
    if f.binary:
        return f
    if status == "added":
        f.hunks = draw(hunks("+", crlf)) if plain or draw(st.integers(0, 4)) else []  # git: an empty new file
        f.hunks = f.hunks[:1]
    elif status == "deleted":
        f.hunks = draw(hunks("-", crlf))[:1] if plain or draw(st.integers(0, 4)) else []
    elif status == "modified" or (status in ("renamed", "copied") and draw(st.booleans())):
        f.hunks = draw(hunks(" +-", crlf))
    if status == "modified" and not f.hunks and f.old_mode == f.new_mode:
        f.hunks = draw(hunks(" +-", crlf))
    if status == "added" or status == "deleted":
        for h in f.hunks:  # one hunk covering the whole file, as git writes it
            h.old_start, h.new_start = (0, 1) if status == "added" else (1, 0)
    return f


# --------------------------------------------------------------------------- rendering

C_ESCAPES = {7: b"\\a", 8: b"\\b", 9: b"\\t", 10: b"\\n", 11: b"\\v", 12: b"\\f", 13: b"\\r", 34: b'\\"', 92: b"\\\\"}


def git_quote(name: bytes) -> bytes:
    """git's quote_c_style with core.quotePath on (the default)."""
    if not any(b < 0x20 or b >= 0x7F or b in b'"\\' for b in name):
        return name
    return (
        b'"'
        + b"".join(C_ESCAPES.get(b) or (b"\\%03o" % b if b < 0x20 or b >= 0x7F else bytes([b])) for b in name)
        + b'"'
    )


def file_line(prefix: bytes, name: bytes) -> bytes:
    quoted = git_quote(prefix + name)
    return quoted + (b"\t" if quoted == prefix + name and b" " in name else b"")


def hunk_text(h: Hunk, blank_empty: bool) -> bytes:
    old_start = h.old_start if h.old_len or h.old_start == 0 else h.old_start - 1
    new_start = h.new_start if h.new_len or h.new_start == 0 else h.new_start - 1
    out = [b"@@ -%d,%d +%d,%d @@ def f():\n" % (old_start, h.old_len, new_start, h.new_len)]
    for ln in h.lines:
        out.append(ln[1:] if blank_empty and ln[:1] == b" " and ln[1:] in (b"\n", b"\r\n") else ln)
    return b"".join(out)


def render_git(f: File, blank_empty: bool) -> bytes:
    out = [b"diff --git " + git_quote(b"a/" + f.old) + b" " + git_quote(b"b/" + f.new) + b"\n"]
    if f.status == "added":
        out.append(b"new file mode %s\n" % f.new_mode.encode())
    elif f.status == "deleted":
        out.append(b"deleted file mode %s\n" % f.old_mode.encode())
    elif f.old_mode != f.new_mode:
        out.append(b"old mode %s\nnew mode %s\n" % (f.old_mode.encode(), f.new_mode.encode()))
    if f.status in ("renamed", "copied"):
        verb = b"rename" if f.status == "renamed" else b"copy"
        words = (b"old", b"new") if f.legacy_rename else (b"from", b"to")
        out.append(b"similarity index %d%%\n" % (f.similarity or 0))
        out.append(verb + b" " + words[0] + b" " + git_quote(f.old) + b"\n")
        out.append(verb + b" " + words[1] + b" " + git_quote(f.new) + b"\n")
    if f.hunks or f.binary or f.status in ("added", "deleted", "modified"):
        mode = b" " + f.old_mode.encode() if f.status in ("modified", "renamed", "copied") and not f.binary else b""
        out.append(b"index 1234567..89abcde%s\n" % (mode if f.old_mode == f.new_mode else b""))
    old = b"/dev/null" if f.status == "added" else file_line(b"a/", f.old)
    new = b"/dev/null" if f.status == "deleted" else file_line(b"b/", f.new)
    if f.binary:
        out.append(b"Binary files " + old.rstrip(b"\t") + b" and " + new.rstrip(b"\t") + b" differ\n")
    elif f.hunks:
        out.append(b"--- " + old + b"\n+++ " + new + b"\n")
        out += [hunk_text(h, blank_empty) for h in f.hunks]
    return b"".join(out)


def render_plain(f: File, blank_empty: bool) -> bytes:
    stamp = b"\t2026-01-01 00:00:00.000000000 +0000"
    old = b"/dev/null" if f.status == "added" else b"a/" + f.old
    new = b"/dev/null" if f.status == "deleted" else b"b/" + f.new
    if f.binary:
        return b"Binary files " + old + b" and " + new + b" differ\n"
    return (
        b"diff -u "
        + old
        + b" "
        + new
        + b"\n--- "
        + old
        + stamp
        + b"\n+++ "
        + new
        + stamp
        + b"\n"
        + b"".join(hunk_text(h, blank_empty) for h in f.hunks)
    )


@st.composite
def diffs(draw: st.DrawFn) -> tuple[list[File], bytes]:
    plain = draw(st.booleans())
    model: list[File] = []
    seen: set[bytes] = set()
    for f in draw(st.lists(files(plain), min_size=1, max_size=5)):
        if not {f.old, f.new} & seen:  # a path is in a diff once (merge diffs aside)
            model.append(f)
            seen |= {f.old, f.new}
    blank_empty = draw(st.booleans())
    render = render_plain if plain else render_git
    # Text before the first file (an e-mail's headers) and after the last (a signature) is ignored.
    head = draw(st.sampled_from([b"", b"From 123 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n---\n"]))
    tail = draw(st.sampled_from([b"", b"-- \n2.43.0\n\n"]))
    return model, head + b"".join(render(f, blank_empty) for f in model) + tail


def decoded(name: bytes) -> str:
    return name.decode("utf-8", ESCAPE)


def check_invariants(changes: list[FileChange], max_line_bytes: int | None = None) -> None:
    """What holds for anything the parser returns, garbage in or not."""
    for change in changes:
        assert change.status in ("added", "deleted", "modified", "renamed", "copied", "mode_changed")
        assert (change.old_path is None) == (change.status == "added")
        assert (change.new_path is None) == (change.status == "deleted")
        assert change.added >= 0 and change.removed >= 0
        if change.summarized_only:
            assert change.hunks == () and change.summary_reason
        else:
            # A file that is sent keeps every hunk it counted.
            assert change.added == sum(h.added for h in change.hunks)
            assert change.removed == sum(h.removed for h in change.hunks)
        for hunk in change.hunks:
            lines = hunk.lines()
            assert "".join(lines) == hunk.text and all(ln.endswith("\n") for ln in lines)
            assert all(ln[:1] in (" ", "+", "-", "\\") for ln in lines), lines
            assert hunk.added == sum(ln[:1] == "+" for ln in lines)
            assert hunk.removed == sum(ln[:1] == "-" for ln in lines)
            # The header says what the body holds (a truncated hunk gets a corrected header).
            assert hunk.old_len == sum(ln[:1] in " -" for ln in lines)
            assert hunk.new_len == sum(ln[:1] in " +" for ln in lines)
            m = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", hunk.header)
            assert m is not None, hunk.header
            assert (int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1)) == (
                hunk.old_start,
                hunk.old_len,
                hunk.new_start,
                hunk.new_len,
            )
            if max_line_bytes is not None:
                # A cut line keeps its first max_line_bytes bytes plus a short marker.
                assert all(len(ln.encode("utf-8", "surrogatepass")) <= max_line_bytes + 40 for ln in lines)


# --------------------------------------------------------------------------- parsing


@fuzz(300)
@given(generated=diffs())
@example(
    generated=(
        [File("renamed", b"old name", b"new", similarity=90, legacy_rename=True)],
        b"diff --git a/old name b/new\nsimilarity index 90%\nrename old old name\nrename new new\n",
    )
)
def test_generated_diffs_round_trip_paths_statuses_and_counts(generated) -> None:
    model, raw = generated
    changes = parse_diff(raw, encoding_errors=ESCAPE, rules=KEEP_ALL)
    check_invariants(changes)
    assert len(changes) == len(model), raw
    for f, change in zip(model, changes, strict=True):
        assert change.status == f.status, (change, raw)
        assert change.old_path == (None if f.status == "added" else decoded(f.old)), raw
        assert change.new_path == (None if f.status == "deleted" else decoded(f.new)), raw
        assert (change.added, change.removed) == (f.added(), f.removed())
        assert change.binary == f.binary and change.summarized_only == f.binary
        if f.status in ("renamed", "copied"):
            assert change.similarity == f.similarity
        if f.status == "mode_changed" or (f.status == "modified" and f.old_mode != f.new_mode):
            assert (change.old_mode, change.new_mode) == (f.old_mode, f.new_mode)
        if not f.binary:
            # Byte for byte, CRs included; an empty context line comes back as " \n".
            assert [ln for h in change.hunks for ln in h.lines()] == f.body()


@fuzz(100)
@given(generated=diffs())
def test_streaming_a_text_stream_gives_the_same_files(generated) -> None:
    _, raw = generated
    whole = parse_diff(raw, encoding_errors=ESCAPE, rules=KEEP_ALL)
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="ascii")  # stdin: read through its buffer
    assert list(iter_parse_diff(stream, encoding_errors=ESCAPE, rules=KEEP_ALL)) == whole


# Lines of real-looking diff syntax in random order: headers without bodies, bodies without
# headers, bad hunk numbers, broken quoting, binary patches, merge diffs.
GARBAGE_LINES = [
    b"diff --git a/x b/x",
    b"diff --git a/x",
    b"diff --git ",
    b'diff --git "a/\\',
    b'diff --git "a/q" "b',
    b"diff --cc m",
    b"diff --combined ",
    b"--- a/x",
    b"+++ b/x",
    b"--- /dev/null",
    b"+++ /dev/null",
    b"--- ",
    b"+++ ",
    b'--- "a/\\3',
    b"@@ -1 +1 @@",
    b"@@ -1,3 +1,3 @@ f",
    b"@@ -0,0 +0,0 @@",
    b"@@ -99999999999999999999,2 +1 @@",
    b"@@ -1,x +1 @@",
    b"@@@ -1 -1 +1 @@@",
    b"@@",
    b" ctx",
    b"+add",
    b"-del",
    b"",
    b"\r",
    b"\\ No newline at end of file",
    b"  -+",
    b"old mode 100644",
    b"new mode 1007",
    b"new file mode",
    b"deleted file mode 100644",
    b"rename from a",
    b"rename to b",
    b"rename old ",
    b"rename new",
    b"copy from ",
    b"copy to c",
    b"similarity index 101%",
    b"similarity index x%",
    b"index 0..1 160000",
    b"mode 100644,100644..100755",
    b"GIT binary patch",
    b"literal 0",
    b"Binary files a/x and b/x differ",
    b"Binary files /dev/null and b/y differ",
    b"Files  differ",
    b"Binary files  differ",
    b"\xff\xfe\x00",
    b"From: a@b",
    b"-- ",
    b"\xe9t\xe9",
    # Numbers past int()'s 4300-digit limit.
    b"@@ -" + b"1" * 5000 + b" +1 @@",
    b"@@ -1," + b"9" * 4400 + b" +1 @@",
    b"similarity index " + b"9" * 5000 + b"%",
]
garbage = st.lists(st.sampled_from(GARBAGE_LINES) | st.binary(max_size=12), max_size=40).map(
    lambda lines: b"\n".join(lines)
)


@fuzz(400)
@given(
    raw=garbage,
    errors=st.sampled_from(["replace", ESCAPE]),
    max_line_bytes=st.sampled_from([4, 64, 8192]),
    rules=st.sampled_from([KEEP_ALL, SummaryRules()]),
)
@example(
    raw=b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -" + b"1" * 5000 + b" +1 @@\n-a\n",
    errors="replace",
    max_line_bytes=8192,
    rules=KEEP_ALL,
)
@example(
    raw=b"diff --git a/x b/y\nsimilarity index " + b"9" * 5000 + b"%\nrename from x\nrename to y\n",
    errors="replace",
    max_line_bytes=8192,
    rules=KEEP_ALL,
)
def test_diff_syntax_in_any_order_parses_or_raises_diff_error(
    raw: bytes, errors: str, max_line_bytes: int, rules: SummaryRules
) -> None:
    try:
        changes = parse_diff(raw, encoding_errors=errors, rules=rules, max_line_bytes=max_line_bytes)
    except DiffError as error:
        assert str(error), "the message says what to do"
        return
    check_invariants(changes, max_line_bytes)


@fuzz(200)
@given(raw=st.binary(max_size=600), max_line_bytes=st.sampled_from([1, 16, 8192]))
def test_arbitrary_bytes_parse_or_raise_diff_error(raw: bytes, max_line_bytes: int) -> None:
    try:
        changes = parse_diff(raw, max_line_bytes=max_line_bytes)
    except DiffError:
        assert raw.strip(), "empty or blank input is an empty diff, not an error"
        return
    check_invariants(changes, max_line_bytes)


# --------------------------------------------------------------------------- chunking


def chars(text: str) -> int:
    return len(text)


def words(text: str) -> int:
    return len(text.split())


def chunk_files(chunk: DiffChunk) -> list[FileChange]:
    return parse_diff(chunk.text.encode("utf-8", ESCAPE), encoding_errors=ESCAPE, rules=KEEP_ALL)


@fuzz(200)
@given(
    generated=diffs(),
    budget=st.integers(1, 400) | st.integers(1, 30),
    counter=st.sampled_from([estimate, chars, words]),
)
def test_chunking_never_loses_or_duplicates_a_line_and_keeps_the_budget(generated, budget: int, counter) -> None:
    _, raw = generated
    changes = parse_diff(raw, encoding_errors=ESCAPE, rules=KEEP_ALL)
    sent = [c for c in changes if not c.summarized_only]
    chunks = with_totals(chunk_diff(changes, budget, count_tokens=counter))
    assert [c.index for c in chunks] == list(range(len(chunks)))

    parsed = [chunk_files(chunk) for chunk in chunks]
    # Every hunk line of every sent file, exactly once and in order (a chunk's text parses back).
    got = [ln for files_ in parsed for f in files_ for h in f.hunks for ln in h.lines()]
    assert got == [ln for c in sent for h in c.hunks for ln in h.lines()]

    # Every sent file appears, in order, split files in consecutive chunks; nothing else does.
    def runs(names: list[str]) -> list[str]:
        return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]

    assert runs([f.path for files_ in parsed for f in files_]) == runs([c.path for c in sent])
    for chunk, files_ in zip(chunks, parsed, strict=True):
        assert chunk.est_tokens == counter(chunk.text)
        assert list(chunk.files) == [f.path for f in files_]
        if chunk.est_tokens > budget:
            # Over budget only when one line (with the headers it needs) alone is.
            assert sum(1 for f in files_ for ln in (line for h in f.hunks for line in h.lines()) if ln[:1] != "\\") <= 1
    # Split hunks still add up to the original line ranges.
    for change in sent:
        parts = [h for files_ in parsed for f in files_ if f.path == change.path for h in f.hunks]
        assert sum(h.old_len for h in parts) == sum(h.old_len for h in change.hunks)
        assert sum(h.new_len for h in parts) == sum(h.new_len for h in change.hunks)
