"""The workspace index: which files it takes (git's view or the .gitignore walker, caps,
binary and minified files), what it holds, and how it follows changes through watchfiles
and its worker process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lsp_server.context.discovery import Limits, discover, walk_files
from lsp_server.context.entries import IndexLimits
from lsp_server.context.gitignore import IgnoreStack, parse
from lsp_server.context.index import WorkspaceIndex

WAIT = 60.0  # seconds a background step may take on a loaded machine (a hang, not a speed bound)


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def git_init(root: Path) -> None:
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")


IGNORING_TREE = {
    ".gitignore": "build/\n*.gen.py\n!keep.gen.py\n/top_only.py\nnotes/**/secret*.py\n# comment\n\\#hash.py\n",
    "src/app.py": "def app(): ...\n",
    "src/keep.gen.py": "def keep(): ...\n",
    "src/drop.gen.py": "def drop(): ...\n",
    "top_only.py": "def t(): ...\n",
    "src/top_only.py": "def t2(): ...\n",
    "build/out.py": "def out(): ...\n",
    "src/build/inner.py": "def inner(): ...\n",
    "notes/a/b/secret_x.py": "def s(): ...\n",
    "notes/a/public.py": "def p(): ...\n",
    "#hash.py": "def h(): ...\n",
    "lib/.gitignore": "*.py\n!wanted.py\n",
    "lib/unwanted.py": "def u(): ...\n",
    "lib/wanted.py": "def w(): ...\n",
    "node_modules/dep/index.js": "function dep() {}\n",
}


def test_the_gitignore_walker_agrees_with_git(tmp_path: Path) -> None:
    write(tmp_path, IGNORING_TREE)
    walked = sorted(p for p in walk_files(tmp_path) if p.endswith(".py"))
    git_init(tmp_path)
    listed = sorted(p for p in git(tmp_path, "ls-files", "-co", "--exclude-standard").split("\n") if p.endswith(".py"))
    assert walked == listed
    assert "src/app.py" in walked and "src/keep.gen.py" in walked and "src/top_only.py" in walked
    assert not {
        "src/drop.gen.py",
        "top_only.py",
        "build/out.py",
        "src/build/inner.py",
        "notes/a/b/secret_x.py",
        "#hash.py",
        "lib/unwanted.py",
    } & set(walked)


def test_gitignore_rules() -> None:
    rules = IgnoreStack().push("", parse("*.log\n!important.log\ndocs/\n/root.txt\na/**/b\n"))
    assert rules.ignored("x/y.log", False) and not rules.ignored("important.log", False)
    assert rules.ignored("docs", True) and not rules.ignored("docs", False)
    assert rules.ignored("root.txt", False) and not rules.ignored("sub/root.txt", False)
    assert rules.ignored("a/b", False) and rules.ignored("a/x/y/b", False) and not rules.ignored("c/a/b", False)


@pytest.mark.parametrize("use_git", [True, False])
def test_discovery_respects_ignores_caps_and_links(tmp_path: Path, use_git: bool) -> None:
    write(tmp_path, IGNORING_TREE)
    write(tmp_path, {"big.py": "x = 1\n" * 20_000, "notes.md": "# not code\n"})
    (tmp_path / "link.py").symlink_to(tmp_path / "src" / "app.py")
    if use_git:
        git_init(tmp_path)
    found = discover(tmp_path, Limits(max_file_bytes=10_000, max_files=100))
    paths = {c.path for c in found.files}
    assert found.method == ("git" if use_git else "walk")
    assert "src/app.py" in paths and "lib/wanted.py" in paths
    assert not {"src/drop.gen.py", "build/out.py", "lib/unwanted.py", "node_modules/dep/index.js", "notes.md"} & paths
    assert "big.py" not in paths and found.skipped["too large"] == 1
    assert "link.py" not in paths  # a repository must not make us read outside it
    capped = discover(tmp_path, Limits(max_file_bytes=10_000, max_files=3))
    assert capped.truncated and len(capped.files) == 3
    assert all(c.depth == 0 for c in capped.files) or min(c.depth for c in found.files) > 0  # shallowest first


def test_index_holds_definitions_of_every_language_and_skips_binary_and_minified(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "py/models.py": "class User:\n    name: str\n    def greet(self, other: 'User') -> str:\n        return ''\n",
            "web/api.ts": "export function fetchUser(id: number): Promise<User> { return get(id); }\n",
            "web/util.js": "export const slug = (s) => s.toLowerCase();\n",
            "go/store.go": "package store\ntype Store struct { db int }\nfunc (s *Store) Get(k string) string { return k }\n",
            "rs/lib.rs": "pub struct Cache { size: usize }\nimpl Cache { pub fn put(&mut self, k: u32) {} }\n",
            "java/Repo.java": "public class Repo { public int count() { return 0; } }\n",
            "c/buf.h": "struct buf { int len; };\nint buf_grow(struct buf *b, int n);\n",
            "cpp/vec.hpp": "class Vec { public: double norm() const; };\n",
            "data.py": b"\x00\x01binary" * 10,
            "min.js": "var a=1;" * 2000,
        },
    )
    index = WorkspaceIndex([tmp_path], IndexLimits(worker="inline", watch=False))
    index.build()
    found = {
        name: {(d.entry.path, d.kind, d.parent) for d in index.definitions_named(name)}
        for name in (
            "User",
            "greet",
            "fetchUser",
            "slug",
            "Store",
            "Get",
            "Cache",
            "put",
            "Repo",
            "count",
            "buf_grow",
            "Vec",
            "norm",
        )
    }
    assert found == {
        "User": {("py/models.py", "class", None)},
        "greet": {("py/models.py", "method", "User")},
        "fetchUser": {("web/api.ts", "function", None)},
        "slug": {("web/util.js", "function", None)},
        "Store": {("go/store.go", "struct", None)},
        "Get": {("go/store.go", "method", "Store")},
        "Cache": {("rs/lib.rs", "struct", None)},
        "put": {("rs/lib.rs", "method", "Cache")},
        "Repo": {("java/Repo.java", "class", None)},
        "count": {("java/Repo.java", "method", "Repo")},
        "buf_grow": {("c/buf.h", "function", None)},
        "Vec": {("cpp/vec.hpp", "class", None)},
        "norm": {("cpp/vec.hpp", "method", "Vec")},
    }
    assert index.file(0, "data.py") is None and index.file(0, "min.js") is None
    assert index.stats.skipped["binary"] == 1 and index.stats.skipped["minified"] == 1
    assert index.definitions_named("name") == []  # fields are found through their class, not by name


def test_the_worker_process_builds_the_same_index(tmp_path: Path) -> None:
    write(tmp_path, {"a/m.py": "def alpha(x):\n    return x\n", "b/n.go": "package b\nfunc Beta() {}\n"})
    inline = WorkspaceIndex([tmp_path], IndexLimits(worker="inline", watch=False))
    inline.build()
    process = WorkspaceIndex([tmp_path], IndexLimits(worker="process", watch=False))
    try:
        process.build()
        for name in ("alpha", "Beta"):
            assert [(d.entry.path, d.line, d.kind) for d in process.definitions_named(name)] == [
                (d.entry.path, d.line, d.kind) for d in inline.definitions_named(name)
            ]
    finally:
        process.stop()


def test_similar_chunks_rank_by_shared_identifiers_and_skip_the_current_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "billing.py": "def invoice_total(invoice, tax_rate):\n    subtotal = sum(line.amount for line in invoice.lines)\n"
            "    return subtotal * (1 + tax_rate)\n" + "\n" * 10,
            "shipping.py": "def parcel_weight(parcel):\n    return sum(item.grams for item in parcel.items)\n"
            + "\n" * 10,
            "current.py": "def refund(invoice, tax_rate):\n    subtotal = invoice.lines\n",
        },
    )
    index = WorkspaceIndex([tmp_path], IndexLimits(worker="inline", watch=False))
    index.build()
    from lsp_server.context.tokens import text_keys

    query = text_keys("subtotal = sum(line.amount for line in invoice.lines) * tax_rate")
    current = index.file(0, "current.py")
    assert current is not None
    ranked = index.similar_chunks(query, exclude=[current.file_id])
    assert [entry.path for _, entry, _, _ in ranked][0] == "billing.py"
    assert "current.py" not in [entry.path for _, entry, _, _ in ranked]
    assert ranked == index.similar_chunks(query, exclude=[current.file_id])  # deterministic


def test_changes_are_followed_through_watchfiles(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "ignored/\n", "pkg/a.py": "def first(): ...\n"})
    git_init(tmp_path)
    index = WorkspaceIndex([tmp_path], IndexLimits(worker="process", watch=True, watch_debounce_ms=50))
    index.start()
    try:
        assert index.ready.wait(WAIT) and index.watching.wait(WAIT)

        def names() -> set[str]:
            return {d.name for e in index.entries() for d in e.definitions()}

        assert names() == {"first"}
        write(tmp_path, {"pkg/a.py": "def first(): ...\ndef second(): ...\n"})  # modified
        assert index.wait_for(lambda: "second" in names(), WAIT)
        write(tmp_path, {"pkg/b.py": "def third(): ...\n", "ignored/c.py": "def hidden(): ...\n"})  # created
        assert index.wait_for(lambda: "third" in names(), WAIT)
        (tmp_path / "pkg" / "a.py").unlink()  # deleted
        assert index.wait_for(lambda: "first" not in names(), WAIT)
        assert "hidden" not in names()  # ignored by .gitignore, though created after the build
        assert [d.entry.path for d in index.definitions_named("third")] == ["pkg/b.py"]
        assert index.definitions_named("first") == []  # the postings of a deleted file are dead
        write(tmp_path, {".gitignore": ""})  # un-ignoring triggers a rescan
        assert index.wait_for(lambda: "hidden" in names(), WAIT)
        assert index.stats.updates >= 3
    finally:
        index.stop()


def test_postings_match_a_plain_dict_through_deltas_rebuilds_and_deaths() -> None:
    import numpy as np

    from lsp_server.context import postings

    rng = np.random.default_rng(3)
    index = postings.Postings()
    reference: dict[int, list[int]] = {}
    owner = np.zeros(0, dtype=np.uint32)
    alive = np.ones(200, dtype=np.bool_)
    value = 0
    for batch in range(60):
        n = int(rng.integers(1, 4000))
        keys = rng.integers(0, 5000, n, dtype=np.uint32)
        values = np.arange(value, value + n, dtype=np.uint32)
        owner = np.concatenate([owner, np.full(n, batch, dtype=np.uint32)])
        value += n
        index.add(keys, values)
        for k, v in zip(keys.tolist(), values.tolist(), strict=True):
            reference.setdefault(k, []).append(v)
        if batch % 7 == 3:
            alive[batch - 1] = False  # a file re-indexed: its postings are dead
        index.publish(alive, owner, force=batch % 3 == 0)
    index.publish(alive, owner, force=True)
    query = np.unique(rng.integers(0, 5000, 300, dtype=np.uint32))
    got = index.lookup(query)
    live = sorted(v for v in got.tolist() if alive[owner[v]])
    expected = sorted(v for k in query.tolist() for v in reference.get(k, []) if alive[owner[v]])
    assert live == expected
    counts = index.frequencies(query)
    assert all(c >= sum(1 for v in reference.get(k, []) if alive[owner[v]]) for k, c in zip(query.tolist(), counts))
