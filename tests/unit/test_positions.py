import pytest

from lsp_server.lsp.convert import (
    clamp_position,
    normalize_encoding,
    split_lines,
    to_client_character,
    to_codepoint_column,
)

LINE = "a😀é日b"  # 😀 is two UTF-16 units and four UTF-8 bytes; é two bytes; 日 three


@pytest.mark.parametrize(
    ("encoding", "character", "column"),
    [
        ("utf-16", 0, 0),
        ("utf-16", 1, 1),
        ("utf-16", 2, 1),  # inside the surrogate pair: rounds down
        ("utf-16", 3, 2),
        ("utf-16", 4, 3),
        ("utf-16", 5, 4),
        ("utf-16", 6, 5),
        ("utf-16", 99, 5),
        ("utf-8", 1, 1),
        ("utf-8", 5, 2),
        ("utf-8", 7, 3),
        ("utf-8", 10, 4),
        ("utf-32", 3, 3),
    ],
)
def test_to_codepoint_column(encoding, character, column):
    assert to_codepoint_column(LINE, character, encoding) == column


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_round_trip(encoding):
    for column in range(len(LINE) + 1):
        assert to_codepoint_column(LINE, to_client_character(LINE, column, encoding), encoding) == column


def test_split_lines_only_on_lsp_line_endings():
    assert split_lines("a\r\nb\rc\nd\x0ce") == ["a", "b", "c", "d\x0ce"]


def test_clamp_position():
    lines = ["abc", "de"]
    assert clamp_position(lines, 5, 0, "utf-16") == (1, 2)
    assert clamp_position(lines, 0, 10, "utf-16") == (0, 3)
    assert clamp_position(lines, -1, 3, "utf-16") == (0, 0)


def test_normalize_encoding():
    assert normalize_encoding("utf-8") == "utf-8"
    assert normalize_encoding(None) == "utf-16"
    assert normalize_encoding("latin-1") == "utf-16"


# -- documents: pure conversions the handlers use ------------------------------------------


def test_a_huge_documents_window_moves_in_steps():
    from lsp_server.lsp.convert import WINDOW_STEP, window

    lines = [f"line {n}" for n in range(5000)]
    shown, cursor = window(lines, 3000, 100)
    start = (3000 - 100) // WINDOW_STEP * WINDOW_STEP
    assert shown[0] == f"line {start}" and shown[cursor] == "line 3000" and shown[-1] == "line 3100"
    # one line further down, the same start: the prompt (and the KV cache) stays put
    assert window(lines, 3001, 100)[0][0] == shown[0]


def test_minified_lines_are_clipped_around_the_cursor():
    from lsp_server.lsp.convert import clip_long_lines

    lines = ["short", "x" * 10_000, "y" * 5_000]
    clipped, column = clip_long_lines(lines, 1, 9_000, 4_000)
    assert [len(line) for line in clipped] == [5, 4_000, 4_000]
    assert 0 <= column < 4_000 and clipped[1][column:] == "x" * (4_000 - column)
    assert clip_long_lines(["a" * 100], 0, 50, 4_000) == (["a" * 100], 50)


def test_a_selection_is_ordered_clamped_and_read_in_code_points():
    from lsp_server.lsp.convert import client_point, ordered_range, replaced, text_between, whole_document

    lines = ["def f():", "    return 'é😀'", ""]
    start, end = ordered_range(lines, (1, 20), (1, 4), "utf-16")  # reversed, and past the line's end
    assert (start, end) == ((1, 4), (1, 15))
    assert text_between(lines, start, end) == "return 'é😀'"
    assert client_point(lines, end, "utf-16") == (1, 16)  # 😀 counts two UTF-16 units
    assert text_between(lines, *whole_document(lines)) == "\n".join(lines)
    assert replaced(lines, (0, 4), (0, 5), "g") == "def g():\n    return 'é😀'\n"


def test_the_refactor_guard_refuses_only_edits_that_break_a_file_that_parsed():
    from lsp_server.assist.verification import edit_keeps_file_valid

    assert edit_keeps_file_valid("x = 1\n", "x = 2\n", "python")
    assert not edit_keeps_file_valid("x = 1\n", "x = (\n", "python")
    assert edit_keeps_file_valid("x = (\n", "x = ((\n", "python")  # it did not parse before either
    assert edit_keeps_file_valid("a {", "a {{", "css")  # not a language we can parse
