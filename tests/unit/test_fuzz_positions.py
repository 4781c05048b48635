"""Property tests (hypothesis) for LSP position conversion: every encoding, astral characters,
lone surrogates (JSON can carry them), CRLF, lone CR, NUL and other separators that are not
LSP line ends.

The reference for unit counts is Python's own codecs, not the module's arithmetic.
Runs derandomized so CI is stable; NINETYTEN_FUZZ=deep explores new random inputs with
ten times the examples.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from lsp_server.lsp.convert import (
    Encoding,
    clamp_position,
    split_lines,
    to_client_character,
    to_codepoint_column,
)
from tests.fuzzing import fuzz

ENCODINGS = ("utf-8", "utf-16", "utf-32")
encodings = st.sampled_from(ENCODINGS)

# 1-, 2-, 3- and 4-byte UTF-8; astral (a UTF-16 surrogate pair); a lone surrogate; NUL; and
# separators str.splitlines honours but LSP does not (form feed, NEL, U+2028).
SPECIAL = "aé日😀𝄞\U0010ffff\ud800\udfff\x00\x0c\x85\u2028\t "
chars = st.sampled_from(SPECIAL) | st.characters(exclude_characters="\r\n")
lines = st.text(alphabet=chars, max_size=40)
documents = st.lists(st.tuples(lines, st.sampled_from(["\n", "\r\n", "\r"])), max_size=12).map(
    lambda rows: "".join(text + end for text, end in rows)
) | st.text(alphabet=chars | st.sampled_from("\r\n"))


def units(text: str, encoding: Encoding) -> int:
    """Length of `text` in the encoding's code units, by the codecs (surrogatepass: JSON can
    deliver a lone surrogate, which still occupies one UTF-16 unit and three UTF-8 bytes)."""
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == "utf-16":
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    return len(text)


@fuzz(300)
@given(text=documents)
@example(text="a\r\n\rb\n\x0c\u2028c\r")
def test_split_lines_breaks_only_at_lsp_line_ends(text: str) -> None:
    got = split_lines(text)
    assert all("\r" not in line and "\n" not in line for line in got)
    # One more line than line ends, a CRLF counting once; nothing else is lost.
    assert len(got) == text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    assert "\n".join(got) == text.replace("\r\n", "\n").replace("\r", "\n")


@fuzz(400)
@given(line=lines, encoding=encodings)
@example(line="a😀b", encoding="utf-16")
def test_client_offsets_of_every_column_match_the_codec_and_round_trip(line: str, encoding: Encoding) -> None:
    for column in range(len(line) + 1):
        character = to_client_character(line, column, encoding)
        assert character == units(line[:column], encoding)
        assert to_codepoint_column(line, character, encoding) == column


@fuzz(400)
@given(line=lines, encoding=encodings, character=st.integers(-5, 200))
@example(line="😀", encoding="utf-16", character=1)
@example(line="😀x", encoding="utf-8", character=3)
def test_any_client_offset_rounds_down_to_a_character_boundary(line: str, encoding: Encoding, character: int) -> None:
    """client -> server -> client is stable: an offset inside a surrogate pair or a multi-byte
    character comes back as the boundary before it, past the end as the end, never an error."""
    column = to_codepoint_column(line, character, encoding)
    assert 0 <= column <= len(line)
    back = to_client_character(line, column, encoding)
    assert back <= max(character, 0)
    # The largest boundary not after the offset: the next character would overshoot it.
    if column < len(line):
        assert units(line[: column + 1], encoding) > character
    elif line:
        assert character >= units(line, encoding)
    # A second trip changes nothing.
    assert to_codepoint_column(line, back, encoding) == column
    assert to_client_character(line, to_codepoint_column(line, back, encoding), encoding) == back


@fuzz(300)
@given(text=documents, line=st.integers(-3, 20), character=st.integers(-3, 200), encoding=encodings)
def test_clamp_position_always_lands_inside_the_document(
    text: str, line: int, character: int, encoding: Encoding
) -> None:
    rows = split_lines(text)
    row, column = clamp_position(rows, line, character, encoding)
    assert 0 <= row < len(rows) and 0 <= column <= len(rows[row])
    if line < 0:
        assert (row, column) == (0, 0)
    elif line >= len(rows):
        assert (row, column) == (len(rows) - 1, len(rows[-1])), "past the last line: the end of the document"
    else:
        assert row == line
        assert column == to_codepoint_column(rows[row], character, encoding)
        if character >= units(rows[row], encoding):
            assert column == len(rows[row]), "past the end of a line: its end"


@fuzz(50)
@given(encoding=encodings, line=st.integers(-3, 3), character=st.integers(-3, 3))
def test_clamp_position_of_no_lines_is_the_origin(encoding: Encoding, line: int, character: int) -> None:
    assert clamp_position([], line, character, encoding) == (0, 0)
