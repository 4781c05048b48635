"""The context a completion prompt carries: recently edited ranges, forwarded definitions,
the repository index, their order (stable for the KV cache) and the sensitivity gate."""

from __future__ import annotations

from pathlib import Path

from lsp_server.completion.prompt import ContextFile
from lsp_server.context.edits import RecentEdits
from lsp_server.context.entries import IndexLimits
from lsp_server.context.forwarded import ForwardedDefinitions, Location, definition_snippet, display_path
from lsp_server.context.prompt_context import PromptContext, withhold
from lsp_server.context.retrieval import ContextOptions
from lsp_server.context.snippets import gate_from_scanner
from lsp_server.sensitivity.scanner import SensitivityScanner

from .test_context_index import write

# Split so that this file does not hold a credential-shaped string itself.
SECRET_LINE = 'aws_access_key_id = "AKIA' + 'Z7QRT2LXW4PN3KVD"\n'
LINES = "\n".join(f"line {n}" for n in range(40))


def no_open(_: object) -> None:
    return None


# --------------------------------------------------------------------------- recent edits


def test_an_edit_is_a_range_of_lines_shown_with_a_margin() -> None:
    edits = RecentEdits()
    edits.record("file:///a.py", "a.py", 10, 10, "x")
    (snippet,) = edits.snippets("file:///b.py", lambda uri: LINES)
    assert (snippet.path, snippet.start, snippet.end) == ("a.py", 8, 12)
    assert snippet.text.split("\n") == [f"line {n}" for n in range(8, 13)]


def test_the_current_file_and_closed_files_are_not_context() -> None:
    edits = RecentEdits()
    edits.record("file:///a.py", "a.py", 3, 3, "x")
    edits.record("file:///b.py", "b.py", 3, 3, "x")
    assert [s.path for s in edits.snippets("file:///a.py", lambda uri: LINES)] == ["b.py"]
    assert edits.snippets("file:///c.py", lambda uri: LINES if uri.endswith("b.py") else None)[0].path == "b.py"
    edits.forget("file:///b.py")
    assert [s.path for s in edits.snippets("file:///c.py", lambda uri: LINES)] == ["a.py"]


def test_ranges_follow_lines_inserted_and_deleted_above_them() -> None:
    edits = RecentEdits()
    edits.record("file:///a.py", "a.py", 20, 20, "x")
    edits.record("file:///a.py", "a.py", 2, 2, "one\ntwo\nthree\n")  # three lines inserted above
    (low, high) = sorted(edits.ranges(), key=lambda r: r.start)
    assert (low.start, low.end) == (2, 5) and (high.start, high.end) == (23, 23)
    edits.record("file:///a.py", "a.py", 10, 15, "")  # five lines deleted above the second (an edit too)
    assert sorted((r.start, r.end) for r in edits.ranges()) == [(2, 5), (10, 10), (18, 18)]


def test_nearby_edits_merge_and_the_order_of_first_edits_stays() -> None:
    edits = RecentEdits()
    edits.record("file:///a.py", "a.py", 10, 10, "x")
    edits.record("file:///b.py", "b.py", 1, 1, "x")
    edits.record("file:///a.py", "a.py", 12, 12, "y")  # close to the first range: the same range
    ranges = edits.ranges()
    assert [(r.path, r.start, r.end) for r in ranges] == [("a.py", 10, 12), ("b.py", 1, 1)]
    # Typing in b.py again changes nothing about where a.py's range sits in the prompt.
    edits.record("file:///b.py", "b.py", 1, 1, "z")
    assert [r.path for r in edits.ranges()] == ["a.py", "b.py"]


def test_only_the_newest_ranges_are_kept() -> None:
    edits = RecentEdits(max_ranges=2)
    for n, line in enumerate((0, 10, 20)):
        edits.record(f"file:///{n}.py", f"{n}.py", line, line, "x")
    assert [r.path for r in edits.ranges()] == ["1.py", "2.py"]


# --------------------------------------------------------------------------- forwarded definitions


LIB = '''import os


class Client:
    """A client."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url

    def get(self, path: str) -> bytes:
        return b""


def connect(url: str, retries: int = 3) -> Client:
    return Client(url)
'''


def test_a_forwarded_location_becomes_the_definition_header() -> None:
    assert definition_snippet(LIB, "python", 13) == "def connect(url: str, retries: int = 3) -> Client: ..."
    assert definition_snippet(LIB, "python", 3).split("\n") == [
        "class Client:",
        "    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None: ...",
        "    def get(self, path: str) -> bytes: ...",
    ]
    # A language without a grammar: the lines from the location on.
    assert definition_snippet("a\nb\nc", None, 1) == "b\nc"
    assert definition_snippet(LIB, "python", 999) is None


def test_library_paths_are_shown_from_the_package_on(tmp_path: Path) -> None:
    root = tmp_path / "work"
    assert display_path(root / "pkg/a.py", [root]) == "pkg/a.py"
    lib = tmp_path / "venv/lib/python3.11/site-packages/requests/api.py"
    assert display_path(lib, [root]) == "requests/api.py"
    assert display_path(tmp_path / "x/y/z.py", [root]) == "y/z.py"


def test_forwarded_definitions_read_open_text_first_then_the_disk(tmp_path: Path) -> None:
    lib = tmp_path / "lib.py"
    lib.write_text(LIB)
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\0\1\2def x(): pass\n")
    forwarded = ForwardedDefinitions([tmp_path])
    assert forwarded.set("file:///a.py", [Location(lib, 13), Location(binary, 0), Location(tmp_path / "gone.py", 1)])
    assert not forwarded.set(
        "file:///a.py", [Location(lib, 13), Location(binary, 0), Location(tmp_path / "gone.py", 1)]
    )
    (snippet,) = forwarded.snippets("file:///a.py", no_open)
    assert (snippet.path, snippet.text) == ("lib.py", "def connect(url: str, retries: int = 3) -> Client: ...")
    # The editor's unsaved text wins over the file on disk.
    edited = LIB.replace("retries: int = 3", "retries: int = 9")
    (snippet,) = forwarded.snippets("file:///a.py", lambda path: edited if path == lib else None)
    assert "retries: int = 9" in snippet.text
    assert forwarded.snippets("file:///other.py", no_open) == []
    forwarded.forget("file:///a.py")
    assert len(forwarded) == 0


# --------------------------------------------------------------------------- the prompt's context


APP = '''from .crypto import checksum_for_payload


def send(payload):
    digest = checksum_for_payload(
'''

CRYPTO = '''SECRET_SALT = "pepper"


def checksum_for_payload(payload_bytes: bytes, salt_value: str = SECRET_SALT) -> str:
    return ""
'''


def context_for(root: Path) -> PromptContext:
    context = PromptContext(limits=IndexLimits(worker="inline", watch=False), options=ContextOptions())
    context.start([root])
    assert context.repository is not None
    context.repository.index.wait_for(lambda: context.repository.ready, 60)  # type: ignore[union-attr]
    return context


def repo(tmp_path: Path) -> Path:
    write(tmp_path, {"pkg/__init__.py": "", "pkg/crypto.py": CRYPTO, "pkg/app.py": APP, "pkg/notes.py": "TODO = 1\n"})
    return tmp_path


def end_of(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 2, len(lines[-2])


def test_the_sibling_definition_comes_before_edits_elsewhere_and_after_forwarded(tmp_path: Path) -> None:
    root = repo(tmp_path)
    context = context_for(root)
    try:
        context.changed("file:///notes.py", "pkg/notes.py", [(0, 0, "TODO = 2")])
        lib = tmp_path / "lib.py"
        lib.write_text(LIB)
        context.forward("file:///app.py", [Location(lib, 13)])
        snippets, bundle = context.snippets(
            "file:///app.py",
            root / "pkg/app.py",
            APP,
            *end_of(APP),
            512,
            text_of=lambda uri: "TODO = 2\n",
            open_text=no_open,
        )
        assert [s.kind for s in snippets] == ["edit", "import", "forwarded"]
        assert snippets[1].path == "pkg/crypto.py"
        assert snippets[1].text == (
            "def checksum_for_payload(payload_bytes: bytes, salt_value: str = SECRET_SALT) -> str: ..."
        )
        assert bundle.snippets and not bundle.withheld
    finally:
        context.stop()


def test_typing_in_one_block_keeps_the_context_until_the_cursor_line_needs_more(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/crypto.py": CRYPTO,
            "pkg/util.py": "def flatten(items: list, depth: int = 1) -> list:\n    return items\n",
        },
    )
    app = "from .crypto import checksum_for_payload\nfrom .util import flatten\n\n\ndef send(payload):\n    x = \n"
    context = context_for(tmp_path)
    path = tmp_path / "pkg/app.py"

    def at(text: str, character: int) -> list[str]:
        snippets, _ = context.snippets(
            "file:///app.py", path, text, 5, character, 64, text_of=no_open, open_text=no_open
        )
        return [s.text for s in snippets]

    try:
        first = at(app, 8)
        # A small budget: one definition fits, the nearest import's.
        assert first == ["def flatten(items: list, depth: int = 1) -> list: ..."]
        # More keystrokes on the line, nothing new named: exactly the same context (KV cache).
        assert at(app.replace("x = \n", "x = 1 + \n"), 12) == first
        # The line now calls the other import: its definition replaces what was kept.
        typed = app.replace("x = \n", "x = checksum_for_payload(\n")
        assert at(typed, 29) == [
            "def checksum_for_payload(payload_bytes: bytes, salt_value: str = SECRET_SALT) -> str: ..."
        ]
    finally:
        context.stop()


def test_the_other_calls_of_a_kept_definition_still_reach_the_cursor(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/util.py": "def flatten(items: list, depth: int = 1) -> list:\n    return items\n",
            "pkg/user.py": "from .util import flatten\n\n\ndef go(rows):\n    return flatten(rows, depth=2)\n",
        },
    )
    app = "from .util import flatten\n\n\ndef send(payload):\n    x = flatten\n"
    context = context_for(tmp_path)
    path = tmp_path / "pkg/app.py"

    def at(text: str, character: int) -> list[tuple[str, str]]:
        snippets, _ = context.snippets(
            "file:///app.py", path, text, 4, character, 256, text_of=no_open, open_text=no_open
        )
        return [(s.kind, s.text) for s in snippets]

    try:
        first = at(app, 15)
        assert first[0] == ("import", "def flatten(items: list, depth: int = 1) -> list: ...")
        assert "call" not in [kind for kind, _ in first]
        # The same block, the same name, but now its argument list is open: its calls are new.
        typed = app.replace("flatten\n", "flatten(\n")
        assert at(typed, 16) == [*first, ("call", "return flatten(rows, depth=2)")]
    finally:
        context.stop()


def test_a_closed_document_stops_feeding_other_prompts(tmp_path: Path) -> None:
    context = PromptContext()
    context.changed("file:///a.py", "a.py", [(1, 1, "x")])
    context.forward("file:///b.py", [Location(tmp_path / "x.py", 0)])
    context.closed("file:///a.py", None)
    context.closed("file:///b.py", None)
    assert len(context.edits) == 0 and len(context.forwarded) == 0


def test_the_gate_withholds_a_secret_and_says_so_without_content() -> None:
    files = [
        ContextFile("pkg/app_config.py", SECRET_LINE, "import"),
        ContextFile("pkg/util.py", "def flatten(items): ...", "usage"),
        ContextFile(".env", "NAME=value\n", "edit"),
    ]
    scanner = SensitivityScanner(path_globs=[".env"])
    kept = withhold(files, gate_from_scanner(scanner))
    assert [f.path for f in kept.files] == ["pkg/util.py"]
    assert [(path, kind) for path, kind, _ in kept.withheld] == [("pkg/app_config.py", "import"), (".env", "edit")]
    reason = kept.ledger_reason()
    assert reason == "context_withheld: 2 snippets kept home (path, secret)"
    assert "AKIA" not in reason
    assert withhold(files[1:2], gate_from_scanner(scanner)).ledger_reason() is None
