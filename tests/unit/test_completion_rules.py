from lsp_server.completion.rules import (
    CursorContext,
    StopRule,
    balance_brackets,
    drop_repeats,
    first_text_check,
    indent_width,
    open_brackets,
    postprocess,
    trim_next_lines_overlap,
    trim_suffix_overlap,
)


def cursor(prefix: str, suffix: str = "", next_lines: tuple[str, ...] = (), prev: str = "") -> CursorContext:
    return CursorContext(line_prefix=prefix, line_suffix=suffix, next_lines=next_lines, prev_line=prev)


def feed(rule: StopRule, text: str) -> str:
    """Feed text one character at a time, as a token stream would, and apply the cut."""
    for end in range(1, len(text) + 1):
        cut = rule(text[:end])
        if cut is not None:
            return text[:end][:cut]
    return text


def test_indent_width_counts_tabs():
    assert indent_width("    x") == 4
    assert indent_width("\tx") == 4
    assert indent_width("x") == 0


def test_mid_line_stops_at_first_newline():
    rule = StopRule(cursor("print(", ")"))
    assert feed(rule, '"hello"\nmore stuff') == '"hello"'


def test_blank_line_ends_block():
    rule = StopRule(cursor("    total = 0"))
    assert feed(rule, "\n    for v in values:\n        total += v\n\nprint(x)") == (
        "\n    for v in values:\n        total += v"
    )


def test_dedent_below_cursor_line_stops():
    rule = StopRule(cursor("        x = 1"))
    assert feed(rule, "\n        y = 2\n    return y") == "\n        y = 2"


def test_line_limit():
    rule = StopRule(cursor("x = ["), max_lines=3)
    text = "\n".join(f"    {i}," for i in range(10))
    out = feed(rule, text)
    assert out.count("\n") == 2


def test_blank_first_line_after_empty_cursor_line_is_allowed():
    rule = StopRule(cursor(""))
    assert feed(rule, "\n\ndef f():\n    pass\n\n") == "\n\ndef f():\n    pass"


def test_suffix_overlap_whole_suffix():
    assert trim_suffix_overlap('"hi")', ")") == '"hi"'
    assert trim_suffix_overlap("a, b):", "):") == "a, b"


def test_suffix_overlap_keeps_words():
    # "x" overlaps the suffix "x = 1" but is a word, so it is kept.
    assert trim_suffix_overlap("foo x", "x = 1") == "foo x"


def test_next_lines_overlap():
    completion = "\n    y = x + 1\n    return y"
    assert trim_next_lines_overlap(completion, ("    return y", "")) == "\n    y = x + 1"


def test_drop_repeats():
    assert drop_repeats("\n    a = 1\n    a = 1\n    a = 1", "") == "\n    a = 1"
    assert drop_repeats("x = 1", "x = 1") == "x = 1"  # first line may equal prev (it continues it)


def test_balance_brackets_cuts_unmatched_closer():
    assert balance_brackets("a, b))", "f(") == "a, b)"
    assert balance_brackets("x]", "") == "x"
    assert balance_brackets("')' + s)", "f(") == "')' + s)"  # closers inside strings ignored


def test_postprocess_mid_line():
    assert postprocess('"hello")\n', cursor("print(", ")")) == '"hello"'


def test_postprocess_empty_is_none():
    assert postprocess("   \n  ", cursor("x = ")) is None
    assert postprocess(")", cursor("x = ", ")")) is None


def test_postprocess_crlf_and_trailing_space():
    assert postprocess("a + b  \r\n", cursor("    return ")) == "a + b"


def test_suffix_overlap_ignores_leading_space_of_suffix():
    assert trim_suffix_overlap(" name)", " )") == " name"


def test_truncated_multiline_drops_unfinished_last_line():
    text = "print(i)\n    print(i+1)\n    print("
    assert postprocess(text, cursor("    "), truncated=True) == "print(i)\n    print(i+1)"
    assert postprocess(text, cursor("    "), truncated=False).endswith("print(")
    # A single line is kept: it is all there is.
    assert postprocess("a + b", cursor("    return "), truncated=True) == "a + b"


def test_prefix_only_models_fill_one_line_when_the_block_continues_below():
    from lsp_server.completion.rules import code_follows

    inside = CursorContext(line_prefix="    ", line_suffix="", next_lines=("    return total",))
    assert code_follows(inside)
    rule = StopRule(inside, single_line=True)
    assert rule("total = a + b\n    return") == len("total = a + b")
    assert rule("\n") is None  # the model may start with a newline before the line itself
    at_end = CursorContext(line_prefix="    ", line_suffix="", next_lines=("", "def other():"))
    assert code_follows(at_end)  # the block's last line: what comes after it is there already
    opened = CursorContext(
        line_prefix="    ", line_suffix="", next_lines=("", "def other():"), prev_line="def total(items):"
    )
    assert not code_follows(opened)  # a body just opened is written whole
    assert not code_follows(CursorContext(line_prefix="    ", line_suffix="", next_lines=("", "")))
    typed = CursorContext(line_prefix="    total = ", line_suffix="", next_lines=("    return total",))
    assert not code_follows(typed)  # mid-statement: the rest of the line is the suggestion anyway


def test_a_trailing_block_header_without_a_body_is_dropped():
    cursor = CursorContext(line_prefix="    ", line_suffix="")
    assert postprocess("total = 0\n    for item in items:", cursor) == "total = 0"
    assert postprocess("for item in items:", cursor) == "for item in items:"  # one line: the user goes on


def test_an_unfinished_statement_is_told_from_a_finished_line():
    for prefix in (
        "x = foo(",
        "    return ",
        "total = a +",
        "items = [1,",
        "value = obj.",
        "if x and",
        "    yield",
        "foo(a, b",
        "if (x) {",
    ):
        assert cursor(prefix).unfinished, prefix
    for prefix in ("", "    ", "total = 0", "def f():", "print(x)", "    x.y", "return_value"):
        assert not cursor(prefix).unfinished, prefix
    assert open_brackets('f(a, "(", [b') == 2 and open_brackets("a)") == -1


def test_an_unfinished_statement_ends_where_its_brackets_close():
    rule = StopRule(cursor("    data = encode(", next_lines=("    send(data)",)))
    assert feed(rule, "frame, seed)\n    send(data)\n") == "frame, seed)"
    # Arguments over several lines: the statement ends when the call closes.
    assert feed(rule, "frame,\n        seed)\n    more()\n") == "frame,\n        seed)"
    rule = StopRule(cursor("    return "))
    assert feed(rule, "a + b\n    print(1)\n") == "a + b"
    # A finished line may go on with the next lines, as before.
    assert feed(StopRule(cursor("    total = 0")), "\n    total += 1\n    x\n\ny") == "\n    total += 1\n    x"


def test_no_line_break_first_where_the_cursor_line_wants_writing():
    for prefix in ("x = foo(", "    ", "", "    return "):
        check = first_text_check(cursor(prefix))
        assert check is not None and not check("\n") and not check("  \n") and check("a") and check(" b"), prefix
    for prefix in ("def f():", "total = 0", "if (x) {", "x = {"):
        assert first_text_check(cursor(prefix)) is None, prefix


def test_no_closing_bracket_first_right_after_an_opening_one():
    for prefix, closing in (("x = foo(", ")"), ("    items[", "]")):
        check = first_text_check(cursor(prefix))
        assert check is not None and not check(closing) and not check(closing + ":") and check("a" + closing), prefix
    # Not where the bracket is not the last thing typed, nor at the start of a line.
    for prefix in ("x = foo(a, ", "    "):
        check = first_text_check(cursor(prefix))
        assert check is not None and check(")"), prefix
