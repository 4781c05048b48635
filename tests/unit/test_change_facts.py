"""Facts from real diffs made with git in a temporary repository: files, categories, symbols
added/removed/renamed/changed (whole texts and hunks alone), dependency bumps, the commit
type, the factual subject, and the check of a model's subject against the diff."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lsp_server.explain.diff import parse_diff, range_diff, staged_diff
from lsp_server.explain.facts import (
    GitTexts,
    category,
    extract_facts,
    factual_subject,
    grounded_subject,
    named_things,
    ungrounded_names,
)
from lsp_server.explain.facts.facts import ChangeFacts


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.git("init", "-q")
        self.git("config", "user.email", "t@example.com")
        self.git("config", "user.name", "t")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.root), *args], check=True, capture_output=True, text=True).stdout

    def write(self, files: dict[str, str | None]) -> None:
        for rel, text in files.items():
            path = self.root / rel
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def commit(self, files: dict[str, str | None], message: str = "c") -> None:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-qm", message)

    def stage(self, files: dict[str, str | None]) -> None:
        self.write(files)
        self.git("add", "-A")

    def staged_facts(self, *, whole_texts: bool = True) -> ChangeFacts:
        changes = parse_diff(staged_diff(self.root))
        return extract_facts(changes, GitTexts.staged(self.root) if whole_texts else None)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path)


MOD = '''class Parser:
    def parse(self, text):
        return text.split()

    def old_helper(self, x):
        a = x + 1
        b = a * 2
        return b


def check(a, b):
    return a == b


def unused():
    return None
'''

MOD_AFTER = '''class Parser:
    def parse(self, text):
        """Split text into words."""
        return text.split()

    def new_helper(self, x):
        a = x + 1
        b = a * 2
        return b

    def tokens(self, text):
        return len(self.parse(text))


def check(a, b):
    return a == b * 2
'''


@pytest.mark.parametrize("whole_texts", [True, False])
def test_symbols_added_removed_renamed_changed(repo: Repo, whole_texts: bool) -> None:
    repo.commit({"pkg/mod.py": MOD, "README.md": "# x\n"})
    repo.stage({"pkg/mod.py": MOD_AFTER})
    facts = repo.staged_facts(whole_texts=whole_texts)
    got = {(s.name, s.kind, s.change, s.old_name) for s in facts.symbols}
    assert got == {
        ("Parser.parse", "method", "changed", None),
        ("Parser.new_helper", "method", "renamed", "Parser.old_helper"),
        ("Parser.tokens", "method", "added", None),
        ("check", "function", "changed", None),
        ("unused", "function", "removed", None),
    }
    assert [(f.path, f.status, f.category) for f in facts.files] == [("pkg/mod.py", "modified", "source")]
    assert facts.commit_type == "feat"
    assert not (facts.tests_only or facts.docs_only or facts.config_only or facts.dependencies_only)


def test_files_added_deleted_and_renamed_between_commits(repo: Repo) -> None:
    repo.commit(
        {
            "a/old_name.py": "def keep():\n    return 1\n" * 1 + "\n\ndef stay(x):\n    return x * 3\n",
            "gone.go": "package p\nfunc Gone() {}\n",
        }
    )
    repo.commit(
        {
            "a/old_name.py": None,
            "a/new_name.py": "def keep():\n    return 1\n\n\ndef stay(x):\n    return x * 3\n",
            "gone.go": None,
            "web/fresh.ts": "export function fresh(n: number): number { return n; }\n",
        }
    )
    changes = parse_diff(range_diff(repo.root, "HEAD~1..HEAD"))
    facts = extract_facts(changes, GitTexts.between(repo.root, "HEAD~1", "HEAD"))
    by_path = {f.path: f for f in facts.files}
    assert by_path["a/new_name.py"].status == "renamed" and by_path["a/new_name.py"].old_path == "a/old_name.py"
    assert by_path["gone.go"].status == "deleted" and by_path["web/fresh.ts"].status == "added"
    symbols = {(s.path, s.name, s.change) for s in facts.symbols}
    assert symbols == {("gone.go", "Gone", "removed"), ("web/fresh.ts", "fresh", "added")}  # the move changed none
    assert facts.commit_type == "feat"


def test_tests_only_docs_only_config_only(repo: Repo) -> None:
    repo.commit(
        {
            "src/app.py": "def run(): ...\n",
            "tests/test_app.py": "def test_run(): ...\n",
            "docs/guide.md": "# Guide\n",
            "README.md": "# App\n",
            "setup.cfg": "[flake8]\nmax-line-length = 100\n",
            ".editorconfig": "root = true\n",
        }
    )
    repo.stage({"tests/test_app.py": "def test_run(): ...\n\n\ndef test_stop(): ...\n"})
    facts = repo.staged_facts()
    assert facts.tests_only and facts.commit_type == "test"
    assert factual_subject(facts) == "test: add test_stop in test_app.py"
    repo.git("commit", "-qm", "t")
    repo.stage({"docs/guide.md": "# Guide\n\nMore.\n", "README.md": "# App\n\nUsage.\n"})
    facts = repo.staged_facts()
    assert facts.docs_only and facts.commit_type == "docs"
    assert factual_subject(facts) == "docs: update README.md and guide.md"
    repo.git("commit", "-qm", "d")
    repo.stage({".editorconfig": "root = true\n[*]\nindent_style = space\n"})
    facts = repo.staged_facts()
    assert facts.config_only and facts.commit_type == "chore"
    assert factual_subject(facts) == "chore: update .editorconfig"


def test_dependency_bumps_in_manifests_and_lock_files(repo: Repo) -> None:
    repo.commit(
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = [\n    "httpx>=0.27,<1",\n    "numpy>=1.26",\n]\n',
            "package.json": '{\n  "name": "web",\n  "version": "1.0.0",\n  "dependencies": {\n    "react": "^18.2.0"\n  }\n}\n',
            "uv.lock": "version = 1\n",
        }
    )
    repo.stage(
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = [\n    "httpx>=0.28,<1",\n    "numpy>=1.26",\n]\n',
            "uv.lock": "version = 1\n# httpx 0.28.1\n",
        }
    )
    facts = repo.staged_facts()
    assert [(d.path, d.name, d.old, d.new, d.change) for d in facts.dependencies] == [
        ("pyproject.toml", "httpx", ">=0.27,<1", ">=0.28,<1", "bumped")
    ]
    assert facts.dependencies_only and (facts.commit_type, facts.scope) == ("build", "deps")
    assert {f.path: f.category for f in facts.files} == {"pyproject.toml": "dependencies", "uv.lock": "lockfile"}
    assert factual_subject(facts) == "build(deps): bump httpx from >=0.27,<1 to >=0.28,<1"
    repo.git("commit", "-qm", "b")
    # a manifest change that is more than dependencies is not a dependency bump
    repo.stage(
        {
            "package.json": '{\n  "name": "web",\n  "version": "1.0.0",\n  "scripts": {"t": "jest"},\n'
            '  "dependencies": {\n    "react": "^18.3.1",\n    "zod": "^3.23.0"\n  }\n}\n'
        }
    )
    facts = repo.staged_facts()
    assert {(d.name, d.change) for d in facts.dependencies} == {("react", "bumped"), ("zod", "added")}
    assert not facts.dependencies_only and facts.commit_type == "chore"


def test_a_docstring_and_a_doubled_return_value(repo: Repo) -> None:
    # The change the embedded model once summarised as "checks the diff between two files".
    repo.commit({"calc.py": "def total(items):\n    return sum(items)\n"})
    repo.stage({"calc.py": 'def total(items):\n    """Sum of the items, doubled."""\n    return 2 * sum(items)\n'})
    facts = repo.staged_facts()
    assert [(s.name, s.change) for s in facts.symbols] == [("total", "changed")]
    assert facts.commit_type == "fix" and "feat" in facts.allowed_types
    assert facts.symbols[0].details == ("return value changed", "docstring added")
    assert factual_subject(facts) == "fix: change what total returns and document it in calc.py"
    assert "function changed: total in calc.py (return value changed, docstring added)" in facts.lines()


def test_the_subject_checker(repo: Repo) -> None:
    repo.commit({"pkg/mod.py": MOD})
    repo.stage({"pkg/mod.py": MOD_AFTER})
    facts = repo.staged_facts()
    grounded = [
        "feat: add tokens to Parser",
        "feat: add Parser.tokens()",
        "refactor(mod): rename old_helper to new_helper in pkg/mod.py",
        "feat: add `tokens` and document `Parser.parse`",
        "chore: tidy the parser",  # vague, but it names nothing the diff lacks
        "fix(deps): nothing named",
    ]
    for subject in grounded:
        assert ungrounded_names(subject, facts) == [], subject
    assert ungrounded_names("feat: add `Tokenizer.count()` to src/parser.py", facts) == [
        "Tokenizer.count",
        "src/parser.py",
    ]
    assert ungrounded_names("fix: handle empty input in parse_words", facts) == ["parse_words"]
    assert ungrounded_names("feat(tokenizer): add tokens", facts) == ["tokenizer"]
    assert ungrounded_names("fix: update README.md", facts) == ["README.md"]
    check = grounded_subject("chore: checks the diff between two files in diff_utils.py", facts)
    assert check.replaced and check.ungrounded == ("diff_utils.py",)
    assert check.subject == factual_subject(facts) == "feat: add Parser.tokens in mod.py"
    kept = grounded_subject("feat: add Parser.tokens", facts)
    assert (kept.subject, kept.replaced) == ("feat: add Parser.tokens", False)


def test_a_type_the_facts_rule_out_is_corrected(repo: Repo) -> None:
    repo.commit({"README.md": "# a\n"})
    repo.stage({"README.md": "# a\n\nb\n"})
    facts = repo.staged_facts()
    check = grounded_subject("feat: explain usage in README.md", facts)
    assert (check.subject, check.type_fixed, check.replaced) == ("docs: explain usage in README.md", True, False)


def test_named_things() -> None:
    assert named_things("add `x y` and parse_diff() to lsp/a.py, Index.build and HttpClient; fix README.md") == [
        "x y",
        "lsp/a.py",
        "README.md",
        "parse_diff",
        "Index.build",
        "HttpClient",
    ]
    assert named_things("update the parser and Router for version 2.0") == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests/unit/test_x.py", "test"),
        ("pkg/foo_test.go", "test"),
        ("web/a.spec.ts", "test"),
        ("src/test/java/FooTest.java", "test"),
        ("docs/index.md", "docs"),
        ("README", "docs"),
        ("CHANGELOG.md", "docs"),
        (".github/workflows/ci.yml", "ci"),
        (".pre-commit-config.yaml", "ci"),
        ("Makefile", "build"),
        ("Dockerfile", "build"),
        ("pyproject.toml", "dependencies"),
        ("requirements-dev.txt", "dependencies"),
        ("go.mod", "dependencies"),
        ("package-lock.json", "lockfile"),
        ("Cargo.lock", "lockfile"),
        ("config/app.yaml", "config"),
        (".gitignore", "config"),
        ("src/app.py", "source"),
        ("lib/x.rs", "source"),
        ("assets/logo.png", "other"),
    ],
)
def test_categories(path: str, expected: str) -> None:
    assert category(path) == expected


def test_a_bare_requirement_that_gets_a_constraint(repo: Repo) -> None:
    repo.commit(
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = [\n    "tqdm",\n    "fire",\n]\n\n'
            '[tool.ruff]\nselect = [\n    "E",\n]\n',
            "requirements.txt": "requests\n",
        }
    )
    repo.stage(
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = [\n    "tqdm>=4.70.1",\n    "fire",\n]\n\n'
            '[tool.ruff]\nselect = [\n    "E",\n]\n'
        }
    )
    facts = repo.staged_facts()
    assert [(d.name, d.old, d.new) for d in facts.dependencies] == [("tqdm", "", ">=4.70.1")]
    assert facts.dependencies_only and factual_subject(facts) == "build(deps): require tqdm>=4.70.1"
    assert "dependency bumped: tqdm any version -> >=4.70.1 in pyproject.toml" in facts.lines()
    # A quoted name outside a requirements list is not a dependency; a requirements file's bare line is.
    repo.stage(
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = [\n    "tqdm",\n    "fire",\n]\n\n'
            '[tool.ruff]\nselect = [\n    "E",\n    "W",\n]\n',
            "requirements.txt": "requests\nrich\n",
        }
    )
    facts = repo.staged_facts()
    assert [(d.name, d.change) for d in facts.dependencies] == [("rich", "added")]
    assert not facts.dependencies_only  # the ruff setting is not a dependency line


def test_a_requirements_list_known_from_the_hunk_header(repo: Repo) -> None:
    names = [f"pkg{i}" for i in range(9)]
    before = '[project]\nname = "x"\ndependencies = [\n' + "".join(f'    "{n}",\n' for n in names) + "]\n"
    repo.commit({"pyproject.toml": before})
    repo.stage({"pyproject.toml": before.replace('"pkg6",', '"pkg6>=2",')})  # `dependencies = [` is 6 lines up
    facts = repo.staged_facts()
    assert [(d.name, d.old, d.new) for d in facts.dependencies] == [("pkg6", "", ">=2")]
