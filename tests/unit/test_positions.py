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
