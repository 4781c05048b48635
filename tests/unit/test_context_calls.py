"""Other calls of the function at the cursor: which name the cursor is calling, which lines of
the workspace call it, and how they reach the context (stable, nearest folders first, the
edited file and definitions left out, the sensitivity gate applied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.context.calls import call_sites, callee_at
from lsp_server.context.snippets import SourceLines, gate_from_scanner
from lsp_server.sensitivity.scanner import SensitivityScanner

from .test_context_index import write
from .test_context_retrieval import cursor_at_end, engine


@pytest.mark.parametrize(
    ("prefix", "callee"),
    [
        ("    token = EventLoopToken(", "EventLoopToken"),
        ("x = mod.helper(a, ", "helper"),
        ("build(a, shape(b), ", "build"),
        ("build(a, shape(", "shape"),
        ("build(a, [1, 2], {", None),  # inside a dict literal, not the argument list itself
        ("build(a)", None),  # the call is closed
        ("f(", None),  # a one-letter name is not indexed
        ("x = 1", None),
        ('log("value (', None),  # inside a string
        ("if (", None),  # a keyword, not a call
        ("# call(", None),  # a comment
        ("print(", None),  # a name every file calls says nothing
        ('build("a)", ', "build"),  # a parenthesis in a string does not close the call
    ],
)
def test_the_callee_at_the_cursor(prefix: str, callee: str | None) -> None:
    assert callee_at(prefix) == callee


def calls_workspace(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "pkg/tokens.py": "class EventLoopToken:\n    def __init__(self, backend, token):\n        self.token = token\n",
            "pkg/core/loop.py": "from ..tokens import EventLoopToken\n\n\ndef current(backend_class, raw):\n"
            "    return EventLoopToken(backend_class, raw)\n",
            "pkg/core/other.py": "from ..tokens import EventLoopToken\n\n\ndef again(backend_class, raw):\n"
            "    made = EventLoopToken(\n        backend_class, raw)\n    return EventLoopToken(backend_class, raw)\n",
            "pkg/zzz.py": "from .tokens import EventLoopToken\n\nTOKEN = EventLoopToken(None, 0)\n",
            "pkg/core/edited.py": "from ..tokens import EventLoopToken\n\n\ndef run(backend_class, token):\n"
            "    first = EventLoopToken(backend_class, token)\n    return EventLoopToken(",
        },
    )
    return tmp_path


def test_call_sites_come_from_other_files_nearest_first_without_definitions(tmp_path: Path) -> None:
    root = calls_workspace(tmp_path)
    ctx = engine(root)
    edited = ctx.index.file(0, "pkg/core/edited.py")
    assert edited is not None
    sites = call_sites(
        ctx.index, SourceLines(), "EventLoopToken", exclude_file=edited.file_id, near="pkg/core/edited.py", limit=5
    )
    # The same folder's files first; the duplicate line and the call whose arguments start
    # on the next line are left out; the class's own file has no call.
    assert [(s.entry.path, s.text) for s in sites] == [
        ("pkg/core/loop.py", "return EventLoopToken(backend_class, raw)"),
        ("pkg/zzz.py", "TOKEN = EventLoopToken(None, 0)"),
    ]
    limited = call_sites(ctx.index, SourceLines(), "EventLoopToken", exclude_file=None, near=None, limit=1)
    assert len(limited) == 1


def test_the_calls_reach_the_context_last_and_stay_the_same_while_typing(tmp_path: Path) -> None:
    root = calls_workspace(tmp_path)
    ctx = engine(root)
    path = root / "pkg/core/edited.py"
    text = path.read_text()
    bundle = ctx.gather(path, text, *cursor_at_end(text))
    assert bundle.snippets[-1].kind == "call"
    calls = [(s.path, s.text, s.symbol) for s in bundle.snippets if s.kind == "call"]
    assert calls == [
        ("pkg/core/loop.py", "return EventLoopToken(backend_class, raw)", "EventLoopToken"),
        ("pkg/zzz.py", "TOKEN = EventLoopToken(None, 0)", "EventLoopToken"),
    ]
    typed = text + "backend_cl"
    assert [s for s in ctx.gather(path, typed, *cursor_at_end(typed)).snippets if s.kind == "call"] == [
        s for s in bundle.snippets if s.kind == "call"
    ]
    # Outside an argument list there is nothing to show.
    closed = text + "backend_class, token)\n"
    assert not [s for s in ctx.gather(path, closed, *cursor_at_end(closed)).snippets if s.kind == "call"]
    # And none when the setting is off.
    off = engine(root, max_calls=0)
    assert not [s for s in off.gather(path, text, *cursor_at_end(text)).snippets if s.kind == "call"]


def test_a_call_site_holding_a_secret_is_withheld(tmp_path: Path) -> None:
    root = calls_workspace(tmp_path)
    write(
        root, {"pkg/core/keys.py": 'TOKEN = EventLoopToken("ghp_' + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + '", 0)\n'}
    )
    ctx = engine(root)
    path = root / "pkg/core/edited.py"
    text = path.read_text()
    bundle = ctx.gather(path, text, *cursor_at_end(text), gate=gate_from_scanner(SensitivityScanner()))
    assert "ghp_" not in "".join(s.text for s in bundle.snippets)
    assert [(w.path, w.kind) for w in bundle.withheld] == [("pkg/core/keys.py", "call")]
