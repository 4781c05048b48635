"""The pieces that make completion fast: cache and adaptive debounce."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lsp_server.completion.cache import CompletionCache, CursorText
from lsp_server.completion.debounce import AdaptiveDebounce

DOC = "def area(r):\n    return \n\nprint(area(2))\n"


def at(text: str, line: int, character: int, uri: str = "file:///a.py") -> CursorText:
    return CursorText.of(uri, text, line, character)


def test_cursor_text_splits_at_the_cursor():
    cursor = at(DOC, 1, 11)
    assert cursor.before == "def area(r):\n    return "
    assert cursor.after == "\n\nprint(area(2))\n"
    assert at(DOC, 99, 99).after == ""  # clamped to the end


def test_exact_re_request_hits():
    cache = CompletionCache()
    cache.put(at(DOC, 1, 11), "3.14 * r * r", "req-1")
    hit = cache.get(at(DOC, 1, 11))
    assert hit is not None and hit.text == "3.14 * r * r" and hit.typed == 0 and hit.origin == "req-1"


def test_typing_through_the_suggestion_hits_with_the_rest():
    cache = CompletionCache()
    cache.put(at(DOC, 1, 11), "3.14 * r * r")
    typed = DOC.replace("return \n", "return 3.1\n")
    hit = cache.get(at(typed, 1, 14))
    assert hit is not None and hit.text == "4 * r * r" and hit.typed == 3


def test_typing_something_else_misses():
    cache = CompletionCache()
    cache.put(at(DOC, 1, 11), "3.14 * r * r")
    assert cache.get(at(DOC.replace("return \n", "return r\n"), 1, 12)) is None


def test_a_changed_suffix_or_earlier_text_misses():
    cache = CompletionCache()
    cache.put(at(DOC, 1, 11), "3.14 * r * r")
    assert cache.get(at(DOC.replace("area(2)", "area(3)"), 1, 11)) is None
    assert cache.get(at(DOC.replace("def area", "def aera"), 1, 11)) is None
    assert cache.get(at(DOC, 1, 11, uri="file:///b.py")) is None


def test_typing_the_whole_suggestion_is_no_hit():
    cache = CompletionCache()
    cache.put(at(DOC, 1, 11), "r")
    assert cache.get(at(DOC.replace("return \n", "return r\n"), 1, 12)) is None


def test_lru_bound_and_clear():
    cache = CompletionCache(size=3)
    for n in range(5):
        cache.put(at(f"x{n} = \n", 0, 5), f"{n}")
    assert len(cache) == 3
    assert cache.get(at("x0 = \n", 0, 5)) is None and cache.get(at("x4 = \n", 0, 5)) is not None
    cache.clear("file:///a.py")
    assert len(cache) == 0 and cache.get(at("x4 = \n", 0, 5)) is None


@given(st.text(max_size=60), st.text(min_size=1, max_size=30), st.integers(0, 30), st.text(max_size=30))
def test_a_hit_is_always_the_rest_of_what_was_cached(before, suggestion, typed_n, after):
    cache = CompletionCache()
    cache.put(CursorText("u", before, after), suggestion)
    typed = suggestion[:typed_n]
    hit = cache.get(CursorText("u", before + typed, after))
    if hit is not None:
        assert typed + hit.text == suggestion and hit.text.strip()
    elif suggestion.strip() and len(typed) < len(suggestion) and suggestion[len(typed) :].strip():
        raise AssertionError("a typed-through prefix of a cached suggestion must hit")


def test_debounce_follows_typing_speed():
    debounce = AdaptiveDebounce(min_ms=0, max_ms=120, factor=1.4)
    assert debounce.delay_ms(now=0.0) == 0  # nothing known: answer at once
    t = 0.0
    for _ in range(6):
        debounce.keystroke(now=t)
        t += 0.060
    last = t - 0.060
    # 60 ms gaps: wait ~84 ms after the last key for the next one
    assert 80 <= debounce.delay_ms(now=last) <= 90
    assert 35 <= debounce.delay_ms(now=last + 0.045) <= 40  # time already waited counts
    assert debounce.delay_ms(now=last + 1.0) == 0  # a pause: answer at once


def test_debounce_is_capped_and_ignores_pauses():
    debounce = AdaptiveDebounce(min_ms=5, max_ms=100)
    for t in (0.0, 0.3, 0.6, 0.9):  # slow typing: 300 ms gaps
        debounce.keystroke(now=t)
    assert debounce.delay_ms(now=0.9) == 100
    debounce = AdaptiveDebounce(min_ms=5, max_ms=100)
    for t in (0.0, 5.0, 10.0):  # pauses only
        debounce.keystroke(now=t)
    assert debounce.delay_ms(now=10.0) == 5
