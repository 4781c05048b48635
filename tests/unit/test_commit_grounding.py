"""Grounding a commit message in the facts of a real staged change: what changed inside a
function, the nature of a file's edit, the streamed facts builder, the blob reader, and the
checker that keeps, corrects or replaces a model's subject (and filters its body)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lsp_server.explain.diff import parse_diff, staged_diff
from lsp_server.explain.facts import (
    FactsBuilder,
    GitTexts,
    anchored,
    contradictions,
    extract_facts,
    factual_subject,
    ground_message,
    grounded_subject,
    prompt_facts,
)
from lsp_server.explain.facts.claims import states_a_change
from lsp_server.explain.facts.facts import ChangeFacts


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    return tmp_path


def commit(root: Path, files: dict[str, str | None]) -> None:
    stage(root, files)
    git(root, "commit", "-qm", "c")


def stage(root: Path, files: dict[str, str | None]) -> None:
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(root, "add", "-A")


def staged_facts(root: Path) -> ChangeFacts:
    with GitTexts.staged(root) as texts:
        return extract_facts(parse_diff(staged_diff(root)), texts)


CALC = "def total(items):\n    return sum(items)\n\n\ndef mean(items):\n    return total(items) / len(items)\n"
# The change the embedded model once summarised as "chore: checks the diff between two files".
CALC_AFTER = (
    'def total(items):\n    """Sum of the items, doubled."""\n    return 2 * sum(items)\n\n\n'
    "def mean(items):\n    return total(items) / len(items)\n"
)


@pytest.fixture
def calc(repo: Path) -> ChangeFacts:
    commit(repo, {"calc.py": CALC})
    stage(repo, {"calc.py": CALC_AFTER})
    return staged_facts(repo)


# --------------------------------------------------------------------------- facts


def test_the_issue_example_gets_a_grounded_subject(calc: ChangeFacts) -> None:
    check = grounded_subject("chore: checks the diff between two files", calc)
    assert check.replaced and check.reason == "vague"
    assert check.subject == "fix: change what total returns and document it in calc.py"
    message = ground_message("chore: checks the diff between two files", calc)
    assert message.text == check.subject  # the subject names everything: no facts body needed
    assert not anchored("chore: checks the diff between two files", calc)


def test_what_changed_inside_functions(repo: Path) -> None:
    commit(
        repo,
        {
            "m.py": "def a(x):\n    return x\n\n\ndef b(x):\n    y = x\n    return y\n\n\n"
            "def c(x):\n    # old note\n    return x\n\n\ndef d(x):\n    return x\n\n\n"
            "def e(a, b):\n    return a / b\n"
        },
    )
    stage(
        repo,
        {
            "m.py": "def a(x, y=0):\n    return x\n\n\ndef b(x):\n    y = x + 1\n    return y\n\n\n"
            "def c(x):\n    # new note\n    return x\n\n\ndef d(x):\n        return x\n\n\n"
            "def e(a, b):\n    return a / b  # true division\n"
        },
    )
    facts = staged_facts(repo)
    details = {s.name: s.details for s in facts.symbols}
    assert details == {
        "a": ("signature changed",),
        "b": ("body changed",),
        "c": ("comments changed",),
        "d": ("formatting changed",),
        "e": ("comments changed",),
    }


def test_a_comment_only_change_is_docs_and_layout_only_is_style(repo: Path) -> None:
    commit(repo, {"m.py": "def run(x):\n    return x\n", "n.py": "def go(y):\n    return y\n"})
    stage(repo, {"m.py": "def run(x):\n    # Why: callers pass ints.\n    return x\n"})
    facts = staged_facts(repo)
    assert facts.files[0].nature == "docs" and facts.commit_type == "docs"
    assert factual_subject(facts) == "docs: update comments in run in m.py"
    git(repo, "reset", "-q", "--hard")
    stage(repo, {"n.py": "def go(y):\n    return   y\n"})
    facts = staged_facts(repo)
    assert facts.files[0].nature == "format" and facts.commit_type == "style"


def test_a_rename_with_its_call_sites_is_a_refactor(repo: Path) -> None:
    commit(repo, {"m.py": "def load(p):\n    return open(p).read()\n\n\ndef main():\n    return load('x')\n"})
    stage(repo, {"m.py": "def _load(p):\n    return open(p).read()\n\n\ndef main():\n    return _load('x')\n"})
    facts = staged_facts(repo)
    assert {(s.name, s.change) for s in facts.symbols} == {("_load", "renamed"), ("main", "changed")}
    assert facts.commit_type == "refactor"
    assert factual_subject(facts) == "refactor: rename load to _load in m.py"


def test_a_property_getter_and_setter_are_told_apart(repo: Path) -> None:
    text = (
        "class Node:\n    @property\n    def children(self):\n        return self._c\n\n"
        "    @children.setter\n    def children(self, value):\n        self._c = value\n"
    )
    commit(repo, {"n.py": text})
    stage(repo, {"n.py": text.replace("        self._c = value", "        # Keep it first.\n        self._c = value")})
    facts = staged_facts(repo)
    assert [(s.name, s.details) for s in facts.symbols] == [("Node.children", ("comments changed",))]


def test_the_builder_gives_the_facts_of_one_chunk(repo: Path) -> None:
    commit(repo, {"a.py": "def one():\n    return 1\n", "b.py": "def two():\n    return 2\n"})
    stage(
        repo,
        {"a.py": "def one():\n    return 11\n", "b.py": "def two():\n    return 2\n\n\ndef three():\n    return 3\n"},
    )
    builder = FactsBuilder()
    for change in parse_diff(staged_diff(repo)):
        builder.add(change)
    only_b = builder.facts(["b.py"])
    assert [f.path for f in only_b.files] == ["b.py"]
    assert [(s.name, s.change) for s in only_b.symbols] == [("three", "added")]
    assert "one" not in only_b.vocabulary and "one" in builder.facts().vocabulary
    assert {s.name for s in builder.facts().symbols} == {"one", "three"}


def test_a_file_the_facts_cannot_analyse_is_still_named(repo: Path) -> None:
    class Broken:
        def old(self, path: str) -> str | None:
            raise RuntimeError("unreadable")

        def new(self, path: str) -> str | None:
            return None

    commit(repo, {"a.py": "x = 1\n"})
    stage(repo, {"a.py": "x = 2\n"})
    builder = FactsBuilder(Broken())
    for change in parse_diff(staged_diff(repo)):
        builder.add(change)
    assert [f.path for f in builder.facts().files] == ["a.py"]


def test_the_blob_reader_reads_many_files_through_one_git(repo: Path) -> None:
    files = {f"f{i}.py": f"v = {i}\n" for i in range(30)}
    commit(repo, {**files, "big.txt": "x" * (2 << 20)})
    stage(repo, {"f3.py": "v = 33\n"})
    with GitTexts.staged(repo) as texts:
        assert [texts.old(f"f{i}.py") for i in (0, 29)] == ["v = 0\n", "v = 29\n"]
        assert texts.new("f3.py") == "v = 33\n"
        assert texts.old("missing.py") is None and texts.old("big.txt") is None  # over the cap
        assert texts.old("f1.py") == "v = 1\n"  # still in step after a missing and an oversized object
        proc = texts._reader._proc
        assert proc is not None and proc.poll() is None
    assert proc.wait(timeout=10) == 0  # closed with the block


# --------------------------------------------------------------------------- the checker


def test_subjects_that_state_a_change() -> None:
    assert states_a_change("feat: add tokens")
    assert states_a_change("fix: now handles empty input")
    assert states_a_change("Renamed load to _load")
    assert not states_a_change("chore: returns the width of a float")
    assert not states_a_change("docs: shows the changes to the function")
    assert not states_a_change("chore: is a method that is called")


def test_anchoring_takes_names_stems_and_touched_code(calc: ChangeFacts) -> None:
    assert anchored("fix: double the total", calc)  # the changed function by name
    assert anchored("fix: double totals", calc)  # by its stem
    assert anchored("fix: change calc.py", calc)  # the file
    assert anchored("fix: use `sum` twice", calc)  # a code name on a changed line
    assert not anchored("fix: use `len` in mean", calc)  # on a context line only: not touched


def test_claims_the_facts_refute(calc: ChangeFacts) -> None:
    assert contradictions("feat: add total", calc) == ["added total"]
    assert contradictions("refactor: remove total from calc.py", calc) == ["removed total"]
    assert contradictions("feat: add a docstring to total", calc) == []  # the object is the docstring
    check = grounded_subject("feat: add the new `total` function", calc)
    assert check.replaced and check.reason == "contradicted" and check.contradicted == ("added total",)


def test_a_good_subject_is_kept_and_a_ruled_out_type_corrected(calc: ChangeFacts) -> None:
    kept = grounded_subject("fix: double what total returns", calc)
    assert (kept.subject, kept.replaced, kept.reason) == ("fix: double what total returns", False, "ok")
    fixed = grounded_subject("test: double what total returns", calc)
    assert fixed.subject == "fix: double what total returns" and fixed.type_fixed


def test_the_body_keeps_only_grounded_lines(calc: ChangeFacts) -> None:
    message = (
        "fix: double what total returns\n\nThe docstring of total explains it.\n"
        "Also updates parse_header() in utils.py.\nCallers see twice the sum."
    )
    grounded = ground_message(message, calc)
    assert grounded.text == (
        "fix: double what total returns\n\nThe docstring of total explains it.\nCallers see twice the sum."
    )
    assert grounded.dropped_lines == 1 and not grounded.check.replaced


def test_a_replaced_subject_that_cannot_name_everything_gets_the_facts_as_body(repo: Path) -> None:
    commit(repo, {f"m{i}.py": f"def f{i}(x):\n    return x\n" for i in range(5)})
    stage(repo, {f"m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(5)})
    facts = staged_facts(repo)
    grounded = ground_message("chore: it", facts)
    subject, _, body = grounded.text.partition("\n\n")
    assert subject == factual_subject(facts) and "more" in subject
    assert grounded.facts_body and body.splitlines()[0] == "- m0.py: function f0 changed: return value changed"
    assert len(body.splitlines()) == 5


def test_prompt_facts_fit_their_budget_and_keep_the_type(repo: Path) -> None:
    commit(repo, {f"m{i}.py": f"def f{i}(x):\n    return x\n" for i in range(40)})
    stage(repo, {f"m{i}.py": f"def f{i}(x):\n    return x + 1\n" for i in range(40)})
    lines = prompt_facts(staged_facts(repo), 400)
    assert sum(len(line) + 1 for line in lines[:-2]) <= 400
    assert lines[-2].startswith("... and ") and lines[-1] == "commit type: fix"


def test_a_huge_change_names_its_last_files_without_looking_for_symbols(repo: Path) -> None:
    commit(repo, {"keep.txt": "x\n"})
    stage(repo, {f"m{i}.py": "".join(f"def f{i}_{j}():\n    return {j}\n" for j in range(10)) for i in range(3)})
    builder = FactsBuilder(max_lines=45)  # each file adds 20 lines
    for change in parse_diff(staged_diff(repo)):
        builder.add(change)
    facts = builder.facts()
    assert [f.summarized for f in facts.files] == [None, None, "not analysed: a large change"]
    assert {s.path for s in facts.symbols} == {"m0.py", "m1.py"}
    assert factual_subject(facts) == "feat: add m0.py, m1.py and m2.py"  # files, not a partial list of symbols


def test_adding_a_name_no_changed_line_has_is_refuted(repo: Path) -> None:
    # What the embedded model wrote for a change that added `disp_len` next to `tmap`.
    commit(repo, {"tqdm/contrib/__init__.py": "def tmap(x):\n    return x\n"})
    stage(
        repo,
        {
            "tqdm/contrib/__init__.py": "def tmap(x):\n    return x\n\n\ndef disp_len(s, strict=False):\n"
            "    return len(s)\n"
        },
    )
    facts = staged_facts(repo)
    subject = "feat: adds a new function called tmap to the list of functions in tqdm"
    assert contradictions(subject, facts) == ["added tmap"]
    assert grounded_subject(subject, facts).subject == "feat: add disp_len in __init__.py"
    assert contradictions("feat: add `strict` to disp_len", facts) == []  # on an added line
    # A directory is no anchor ("the strict list" is not about `_strict/`), but a scope may name one.
    assert not anchored("feat: adds the following to the list of files in contrib", facts)
    assert anchored("feat(contrib): add disp_len", facts)
