from lsp_server.explain.commit_message import SUBJECT_MAX, check_commit_message, guess_type, repair_commit_message
from lsp_server.explain.prompts import commit_message_messages, explain_messages


def test_good_message_passes():
    assert check_commit_message("fix(parser): handle empty input\n\nThe parser crashed on empty files.") == []


def test_problems_are_named():
    assert check_commit_message("") == ["subject_missing"]
    assert "subject_too_long" in check_commit_message("feat: " + "x" * 80)
    assert "not_conventional" in check_commit_message("Fixed the parser")
    assert "not_conventional" in check_commit_message("wip: stuff")  # not a known type
    assert "no_blank_line" in check_commit_message("fix: a\nbody right away")


def test_repair_makes_any_answer_well_formed():
    repaired = repair_commit_message(
        "Commit message: Fixed a crash when the config file is empty.\nThe loader now returns defaults.",
        ["src/config.py"],
    )
    subject, _, body = repaired.partition("\n\n")
    assert subject == "fix: fixed a crash when the config file is empty"
    assert body == "The loader now returns defaults."
    assert check_commit_message(repaired) == []


def test_repair_shortens_and_wraps():
    long_subject = "feat(api): " + " ".join(["support"] * 30)
    body = " ".join(["word"] * 60)
    repaired = repair_commit_message(f"```\n{long_subject}\n\n{body}\n```", ["api.py"])
    lines = repaired.split("\n")
    assert len(lines[0]) <= SUBJECT_MAX and lines[0].startswith("feat(api): ")
    assert lines[1] == "" and all(len(line) <= 72 for line in lines[2:])
    assert check_commit_message(repaired) == []


def test_repair_of_empty_answer_names_the_files():
    repaired = repair_commit_message("", ["README.md", "docs/guide.md"])
    assert repaired.startswith("docs: update README.md, docs/guide.md")


def test_guess_type():
    assert guess_type(["tests/test_a.py"]) == "test"
    assert guess_type([".github/workflows/ci.yml"]) == "ci"
    assert guess_type(["src/a.py"], "fix the crash") == "fix"
    assert guess_type(["src/a.py"], "refresh") == "chore"


def test_prompts_carry_the_diff_without_examples():
    messages = explain_messages("+x = 1", part=2, parts=3)
    assert "part 2 of 3" in messages[1].content and "+x = 1" in messages[1].content
    assert messages[1].content.count("```diff") == 1  # the real diff only: no example diffs
    assert "72" in commit_message_messages("It adds x.", "1 file, +1 -0")[1].content


def test_repair_cuts_a_subject_without_spaces():
    repaired = repair_commit_message("x" * 200, ["a.py"])
    assert len(repaired.split("\n")[0]) == SUBJECT_MAX


def test_repair_prefers_the_first_sentence_and_drops_narration():
    repaired = repair_commit_message(
        "It checks the divisor before dividing. If it is zero, it raises a ValueError instead of failing later on.",
        ["calc.py"],
    )
    assert repaired.split("\n")[0] == "chore: checks the divisor before dividing"


def test_commit_document_sends_the_head_of_a_long_diff():
    from lsp_server.explain.document_prompts import COMMIT_DOCUMENT_CHARS, commit_document

    document = commit_document("+line\n" * 5000)
    assert len(document.text) < COMMIT_DOCUMENT_CHARS + 200 and document.text.endswith("What the diff does: It")
    assert document.max_tokens == 40 and document.stops == ("\n",)
