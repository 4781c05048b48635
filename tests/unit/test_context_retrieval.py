"""Retrieval at a cursor: imported definitions from other files (Python absolute, relative and
re-exported imports, JS relative imports, Go by name), the enclosing class, similar chunks,
the stable order consecutive keystrokes need, the token budget and the sensitivity hook."""

from __future__ import annotations

from pathlib import Path

from lsp_server.context.cursor import scope_at
from lsp_server.context.documents import DocumentCache
from lsp_server.context.entries import IndexLimits
from lsp_server.context.retrieval import ContextOptions
from lsp_server.context.service import RepositoryContext
from lsp_server.context.snippets import gate_from_scanner
from lsp_server.sensitivity.scanner import SensitivityScanner

from .test_context_index import write

SHAPES = '''"""Shapes."""
import math


class Circle:
    """A circle."""
    unit: str = "cm"

    def __init__(self, radius: float, *, label: str | None = None) -> None:
        self.radius = radius

    def area(self) -> float:
        return math.pi * self.radius ** 2


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.dist(a, b)
'''

APP = '''from .shapes import Circle
from pkg.geometry import scale
from pkg import Square


def build(points):
    c = Circle(
'''


def engine(root: Path, **options: object) -> RepositoryContext:
    ctx = RepositoryContext([root], IndexLimits(worker="inline", watch=False), ContextOptions(**options))  # type: ignore[arg-type]
    ctx.index.build()
    return ctx


def cursor_at_end(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1])


def workspace(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from .square import Square\n",
            "pkg/shapes.py": SHAPES,
            "pkg/square.py": "class Square:\n    def __init__(self, side: float) -> None:\n        self.side = side\n",
            "pkg/geometry.py": "def scale(shape, factor: float = 2.0):\n    return shape\n",
            "pkg/app.py": APP,
            "other/shapes.py": "class Circle:\n    def __init__(self, wrong): ...\n",
        },
    )
    return tmp_path


def test_the_definition_imported_from_the_next_file_is_found(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    ctx = engine(root)
    text = (root / "pkg/app.py").read_text()
    bundle = ctx.gather(root / "pkg/app.py", text, *cursor_at_end(text))
    imports = [s for s in bundle.snippets if s.kind == "import"]
    assert [(s.path, s.symbol) for s in imports] == [
        ("pkg/shapes.py", "Circle"),
        ("pkg/geometry.py", "scale"),
        ("pkg/square.py", "Square"),
    ]
    circle = imports[0].text
    # the class outline: its header, field and members' signatures, bodies elided
    assert circle.split("\n") == [
        "class Circle:",
        '    unit: str = "cm"',
        "    def __init__(self, radius: float, *, label: str | None = None) -> None: ...",
        "    def area(self) -> float: ...",
    ]
    assert imports[1].text == "def scale(shape, factor: float = 2.0): ..."
    assert all(s.root == str(root.resolve()) for s in bundle.snippets)
    assert bundle.files()[0] == ("pkg/shapes.py", circle)


def test_without_the_index_the_same_cursor_gets_nothing_from_other_files(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    ctx = engine(empty)
    text = (root / "pkg/app.py").read_text()
    assert ctx.gather(root / "pkg/app.py", text, *cursor_at_end(text)).snippets == ()


def test_javascript_relative_imports_and_go_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "web/util.ts": "export function slugify(title: string, max = 40): string { return title; }\n",
            "web/page.ts": "import { slugify as slug } from './util';\nconst s = slug(\n",
            "svc/store/store.go": "package store\ntype Store struct { db int }\nfunc (s *Store) Get(key string) (string, error) { return key, nil }\n",
            "svc/main.go": 'package main\nimport "example.com/svc/store"\nfunc main() {\n\tvar s store.Store\n\tv, err := s.Get(\n',
        },
    )
    ctx = engine(tmp_path)
    page = (tmp_path / "web/page.ts").read_text()
    bundle = ctx.gather(tmp_path / "web/page.ts", page, *cursor_at_end(page))
    assert [(s.kind, s.path, s.text) for s in bundle.snippets if s.kind == "import"] == [
        ("import", "web/util.ts", "export function slugify(title: string, max = 40): string { ... }")
    ]
    main = (tmp_path / "svc/main.go").read_text()
    bundle = ctx.gather(tmp_path / "svc/main.go", main, *cursor_at_end(main))
    store = [s for s in bundle.snippets if s.symbol == "Store"]
    assert store and store[0].text.split("\n") == [
        "type Store struct {",
        "db int",
        "}",
        "func (s *Store) Get(key string) (string, error) { ... }",
    ]


def test_the_enclosing_class_members_far_from_the_cursor(tmp_path: Path) -> None:
    filler = "".join(f"        x{i} = {i}\n" for i in range(80))
    source = (
        "class Service:\n    def start(self, port: int) -> None:\n"
        + filler
        + "    def stop(self, grace: float = 1.0) -> None:\n        pass\n\n"
        "    def handle(self, request):\n        self."
    )
    write(tmp_path, {"svc.py": source})
    ctx = engine(tmp_path)
    bundle = ctx.gather(tmp_path / "svc.py", source, *cursor_at_end(source))
    cls = [s for s in bundle.snippets if s.kind == "class"]
    # `start` is 80 lines up (out of the prompt's window); `stop` and `handle` are next to the cursor
    assert [s.text for s in cls] == ["class Service:\n    def start(self, port: int) -> None: ..."]


def test_similar_chunks_from_files_not_imported(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "report.py": "def monthly_report(ledger, month):\n    rows = ledger.rows_for(month)\n"
            "    totals = summarize_rows(rows, by='category')\n    return render_table(totals)\n",
            "weekly.py": "def weekly_report(ledger, week):\n    rows = ledger.rows_for(week)\n    totals = \n",
        },
    )
    ctx = engine(tmp_path)
    text = (tmp_path / "weekly.py").read_text()
    bundle = ctx.gather(tmp_path / "weekly.py", text, 2, len("    totals = "))
    similar = [s for s in bundle.snippets if s.kind == "similar"]
    assert [s.path for s in similar] == ["report.py"] and "summarize_rows" in similar[0].text
    assert similar[0].score > 0.1


def test_consecutive_keystrokes_give_the_same_context(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    ctx = engine(root)
    base = (root / "pkg/app.py").read_text()
    bundles = []
    for typed in ("", "r", "ra", "rad", "radi", "radiu", "radius"):
        text = base + typed
        bundles.append(ctx.gather(root / "pkg/app.py", text, *cursor_at_end(text)))
    assert all(b.snippets == bundles[0].snippets for b in bundles)
    # and a new line of code below keeps the beginning: imports come first
    text = base + "radius=1)\n    c.area()\n    "
    later = ctx.gather(root / "pkg/app.py", text, *cursor_at_end(text))
    assert later.snippets[: len(bundles[0].snippets)] == bundles[0].snippets[: len(later.snippets)] or [
        s for s in later.snippets if s.kind == "import"
    ] == [s for s in bundles[0].snippets if s.kind == "import"]


def test_the_budget_is_kept_and_spent_on_what_is_used_near_the_cursor(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    text = (root / "pkg/app.py").read_text()
    line, character = cursor_at_end(text)
    full = engine(root).gather(root / "pkg/app.py", text, line, character)
    assert full.tokens <= full.budget == 512
    circle = next(s for s in full.snippets if s.symbol == "Circle")
    tight = engine(root, budget_tokens=circle.tokens + 5).gather(root / "pkg/app.py", text, line, character)
    assert tight.tokens <= circle.tokens + 5
    assert [s.symbol for s in tight.snippets] == ["Circle"]  # the imported name being called right here
    assert engine(root, budget_tokens=3).gather(root / "pkg/app.py", text, line, character).snippets == ()


def test_the_sensitivity_hook_withholds_snippets_by_path_and_content(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "secrets/keys.py": "def signing_key(env: str) -> bytes:\n    ...\n",
            "conf.py": 'def token_for(user):\n    aws_key = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R"\n    return aws_key\n',
            "app.py": "from secrets.keys import signing_key\nfrom conf import token_for\nfrom shapes import area\n"
            "k = signing_key(token_for(\n",
            "shapes.py": "def area(r: float) -> float:\n    return r\n",
        },
    )
    ctx = engine(tmp_path)
    text = (tmp_path / "app.py").read_text()
    gate = gate_from_scanner(SensitivityScanner(path_globs=["secrets/**"]))
    local = ctx.gather(tmp_path / "app.py", text, *cursor_at_end(text))
    assert {s.path for s in local.snippets} >= {"secrets/keys.py", "shapes.py"}
    remote = ctx.gather(tmp_path / "app.py", text, *cursor_at_end(text), gate=gate)
    assert "secrets/keys.py" not in {s.path for s in remote.snippets}
    assert "shapes.py" in {s.path for s in remote.snippets}
    assert ("secrets/keys.py", "path:secrets/**") in {(w.path, w.reason) for w in remote.withheld}
    # the same filter applied afterwards to a bundle gathered for the local tier
    assert local.filtered(gate).snippets == tuple(s for s in local.snippets if s.path != "secrets/keys.py")
    # a chunk that holds a secret is withheld by its content
    window = 'def other(user):\n    aws_key = ""\n    return aws_key\n'
    ungated = ctx.gather(tmp_path / "app.py", window, 1, 0)
    assert any("ghp_" in s.text for s in ungated.snippets)  # found as a similar chunk
    gated = ctx.gather(tmp_path / "app.py", window, 1, 0, gate=gate)
    assert all("ghp_" not in s.text for s in gated.snippets)
    assert any(w.path == "conf.py" and w.reason.startswith("secret:") for w in gated.withheld)


def test_incremental_parsing_matches_a_fresh_parse() -> None:
    # Edits inside a body leave the (edited) old tree in place; structural ones re-parse. Either
    # way the cursor analysis must read the same as on a fresh parse.
    cache = DocumentCache()
    text = SHAPES
    cache.get("s.py", text)
    reparsed = 0
    for i in range(30):
        if i % 3:
            text = text.replace("return math.pi", f"return {i} * math.pi", 1)
        elif i % 2:
            text = text.replace("    def area", f"    def size{i}(self) -> int:\n        return {i}\n\n    def area", 1)
        else:
            text += f"\ndef f{i}(): ...\n"
        incremental = cache.get("s.py", text)
        fresh = DocumentCache().get("s.py", text)
        assert incremental is not None and fresh is not None
        reparsed += incremental.parsed
        if incremental.parsed:
            assert str(incremental.tree.root_node) == str(fresh.tree.root_node)
        lines = text.split("\n")
        in_area = next(n for n, line in enumerate(lines) if "math.pi" in line)
        for line, character in ((len(lines) - 1, 0), (in_area, len(lines[in_area]))):
            a, b = scope_at(incremental, line, character), scope_at(fresh, line, character)
            assert (a.imports, a.names, a.qualified) == (b.imports, b.names, b.qualified)
            assert (a.enclosing is None) == (b.enclosing is None)
            if a.enclosing is not None and b.enclosing is not None:
                assert [sig for _, sig in a.enclosing.members] == [sig for _, sig in b.enclosing.members]
    assert 0 < reparsed < 30  # body edits skipped the parse, new definitions did not
