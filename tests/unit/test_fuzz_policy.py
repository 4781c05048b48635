"""Property tests (hypothesis) for the policy loader: whatever a user writes in policy.toml,
loading either succeeds or raises PolicyError naming the line (when the key is in the file),
never another exception, which would take the server down with it.

Valid policies are generated as data, rendered to TOML by a small writer below (the standard
library only reads TOML), and must read back equal. Runs derandomized so CI is stable;
NINETYTEN_FUZZ=deep explores new random inputs with ten times the examples.
"""

from __future__ import annotations

import datetime
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lsp_server.routing.policy import Policy, PolicyError, load_policy_file, parse_policy
from lsp_server.routing.policy_lookup import load_policy
from tests.fuzzing import fuzz

# --------------------------------------------------------------------------- a small TOML writer


class Inline:
    """A value the writer must put inline (`key = {...}`) rather than as a [table]."""

    def __init__(self, value: Any) -> None:
        self.value = value


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, Inline):
        value = value.value
        if isinstance(value, dict):
            return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return toml_value(Inline(value))
    assert isinstance(value, list), value
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def is_table(value: Any) -> bool:
    return isinstance(value, dict)


def is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def render(data: dict[str, Any]) -> tuple[str, dict[tuple[str, ...], int]]:
    """TOML text for `data`, and the 1-based line of every key and table header in it (array
    tables get their index as a path part, as pydantic's error locations do)."""
    out: list[str] = []
    where: dict[tuple[str, ...], int] = {}

    def table(path: tuple[str, ...], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if not (is_table(value) or is_table_array(value)):
                out.append(f"{toml_key(key)} = {toml_value(value)}")
                where[(*path, key)] = len(out)
        for key, value in body.items():
            if is_table(value):
                out.append("[" + ".".join(toml_key(p) for p in (*path, key)) + "]")
                where[(*path, key)] = len(out)
                table((*path, key), value)
            elif is_table_array(value):
                for index, item in enumerate(value):
                    out.append("[[" + ".".join(toml_key(p) for p in (*path, key)) + "]]")
                    where[(*path, key)] = where.get((*path, key), len(out))
                    where[(*path, key, str(index))] = len(out)
                    table((*path, key, str(index)), item)

    table((), data)
    return "\n".join(out) + "\n", where


# --------------------------------------------------------------------------- valid policies

names = st.text(min_size=1, max_size=12)
globs = st.lists(st.text(alphabet="ab*/._", min_size=1, max_size=10), max_size=3)
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.001, max_value=1e4, allow_nan=False, allow_infinity=False)
tier_names = st.sampled_from(["local", "in_house", "frontier"])


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A key that is absent (TOML has no null) or present."""
    return st.one_of(st.just(None), strategy)


def compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@st.composite
def tier(draw: st.DrawFn, backend: str) -> dict[str, Any]:
    url = draw(st.sampled_from(["http://127.0.0.1:8080/v1", "https://api.example.com", "http://h"]))
    return compact(
        {
            "backend": backend,
            "model": draw(names),
            "base_url": url if backend != "llama_cpp" else draw(optional(st.just(url))),
            "api_key_env": draw(optional(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True))),
            "keeps_data_home": draw(optional(st.booleans())),
            "price": draw(
                optional(st.fixed_dictionaries({}, optional={"input_per_mtok": finite, "output_per_mtok": finite}))
            ),
            "context_window": draw(optional(st.integers(1, 10**6))),
            "timeout_s": draw(optional(positive)),
            "connect_timeout_s": draw(optional(positive)),
            "max_retries": draw(optional(st.integers(0, 10))),
            "max_concurrent": draw(optional(st.integers(1, 256))),
        }
    )


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    tiers = {"local": draw(tier("llama_cpp"))}
    for name in ("in_house", "frontier"):
        if draw(st.booleans()):
            tiers[name] = draw(tier(draw(st.sampled_from(["openai", "anthropic"]))))
    rule = st.fixed_dictionaries(
        {"name": names, "route": tier_names},
        optional={
            "task": st.lists(
                st.sampled_from(["completion", "explain", "refactor", "ask", "commit_message"]), max_size=3
            ),
            "risk": st.lists(st.sampled_from(["low", "high"]), max_size=2),
            "latency": st.lists(st.sampled_from(["interactive", "background"]), max_size=2),
            "paths": globs,
            "escalate_to": tier_names,
        },
    )
    return compact(
        {
            "version": draw(optional(st.just(1))),
            "offline": draw(optional(st.booleans())),
            "default_route": draw(optional(tier_names)),
            "tiers": tiers,
            "sensitivity": draw(
                optional(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "paths": globs,
                            "on_sensitive": st.sampled_from(["keep_home", "redact", "block"]),
                            "pii": st.booleans(),
                            "entropy": st.booleans(),
                            "allowlist": st.lists(st.text(max_size=8).map(re.escape), max_size=3),
                        },
                    )
                )
            ),
            "risk": draw(
                optional(st.fixed_dictionaries({}, optional={"high": globs, "auto_apply_is_high": st.booleans()}))
            ),
            "rules": draw(optional(st.lists(rule, max_size=3))),
            "escalation": draw(
                optional(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "completion_min_mean_logprob": st.floats(min_value=-50, max_value=0, allow_nan=False),
                            "verify": st.lists(st.sampled_from(["syntax", "non_empty", "length"]), max_size=3),
                            "max_attempts": st.integers(1, 5),
                            "deadline_ms": st.integers(100, 10**6),
                        },
                    )
                )
            ),
            "budget": draw(
                optional(
                    st.fixed_dictionaries({}, optional={"daily_usd": finite, "soft_fraction": st.floats(0.01, 1.0)})
                )
            ),
        }
    )


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@fuzz(80)
@given(data=policies())
def test_a_valid_policy_round_trips_through_toml(data: dict[str, Any]) -> None:
    text, _ = render(data)
    policy = parse_policy(text)
    assert policy == Policy.model_validate(data)
    # And what it loaded, written out again, is the same policy (same digest in the ledger).
    again = parse_policy(render(without_nulls(policy.model_dump(mode="json")))[0])
    assert again == policy and again.digest == policy.digest


# --------------------------------------------------------------------------- one thing wrong


# Values of every TOML type; none is a tier or backend name, so an error (if any) is the
# mutated key's own and never a policy-wide one without a key.
def nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2).map(Inline)


wrong_values = st.recursive(
    st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.text(max_size=10)
    | st.dates()
    | st.sampled_from(["a{99999999999}", "(" * 400 + ")" * 400, "[", "*"]),
    nested,
    max_leaves=6,
)


def paths_of(data: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path in the data, tables and leaves, list items of tables included."""
    found = [path] if path else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths_of(value, (*path, key))
    elif is_table_array(data):
        for index, value in enumerate(data):
            for sub in paths_of(value, (*path, str(index))):
                if len(sub) > len(path) + 1:
                    found.append(sub)
    return found


def set_path(data: Any, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[int(part)] if isinstance(data, list) else data[part]
    if isinstance(data, list):
        data[int(path[-1])] = value
    else:
        data[path[-1]] = value


@st.composite
def broken_policies(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[str, ...]]:
    data = draw(policies())
    path = draw(st.sampled_from(paths_of(data)))
    if draw(st.booleans()):
        # An unknown key beside it (a typo, or an option from a newer version).
        parent = path[:-1]
        target = data
        for part in parent:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, dict):
            # Quoted keys too: spaces, dots and escapes are where a line lookup goes wrong.
            name = draw(st.from_regex(r"[a-z_]{1,8}", fullmatch=True) | st.text(min_size=1, max_size=6))
            path = (*parent, "zz_" + name)
    set_path(data, path, draw(wrong_values))
    return data, path


@fuzz(120)
@given(broken=broken_policies())
@example(
    broken=(
        {"tiers": {"local": {"backend": "llama_cpp", "model": "m", "zz_a.b \"c": 1}}},
        ("tiers", "local", "zz_a.b \"c"),
    )
)
def test_a_wrong_value_or_unknown_key_is_reported_at_its_line(broken) -> None:
    data, path = broken
    text, where = render(data)
    try:
        parse_policy(text)
    except PolicyError as error:
        assert error.problems
        # The key's own line, or the line of a table holding it (a tier's base_url is checked
        # against its backend, so that error belongs to the [tiers.x] table).
        allowed = {where[path[:end]] for end in range(1, len(path) + 1) if path[:end] in where}
        for line, key, _ in error.problems:
            assert line in allowed, (line, key, path, text)
            # The key is dotted for the message (so compared as text: a quoted key may hold dots).
            dotted = ".".join(path)
            assert f"{key}.".startswith(f"{dotted}.") or f"{dotted}.".startswith(f"{key}."), (
                "only the mutated key (or a table holding it) is at fault"
            )


@fuzz(25)
@given(data=policies(), separator=st.sampled_from(["\u2028", "\u2029", "\x85"]))
@example(data={"tiers": {"local": {"backend": "llama_cpp", "model": "m"}}}, separator="\u2028")
def test_line_numbers_count_only_toml_line_ends(data: dict[str, Any], separator: str) -> None:
    """A comment or a string may hold characters that str.splitlines treats as line ends; the
    reported line must still be the one an editor shows (TOML lines end only at \\n)."""
    data["tiers"]["local"]["backend"] = 5
    text, where = render(data)
    text = f"# note{separator}more\nzz_note = \"a{separator}b\"\n" + text
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    lines = {key: line for line, key, _ in raised.value.problems}
    assert lines["tiers.local.backend"] == where[("tiers", "local", "backend")] + 2
    assert lines["zz_note"] == 2


# --------------------------------------------------------------------------- anything at all

KEYS = [
    "version",
    "offline",
    "default_route",
    "backend",
    "model",
    "base_url",
    "api_key_env",
    "price",
    "input_per_mtok",
    "context_window",
    "timeout_s",
    "max_retries",
    "paths",
    "on_sensitive",
    "allowlist",
    "high",
    "name",
    "task",
    "route",
    "escalate_to",
    "verify",
    "max_attempts",
    "daily_usd",
    "soft_fraction",
    "tiers.local.model",
    '"quoted key"',
    "a.b.c",
    "x",
]
VALUES = [
    '"llama_cpp"',
    '"openai"',
    '"anthropic"',
    '"http://x"',
    '"ftp://x"',
    '"local"',
    '"frontier"',
    "1",
    "-1",
    "0",
    "1_000",
    "3.5",
    "-0.0",
    "1e400",
    "inf",
    "nan",
    "true",
    "false",
    "[]",
    '["a", 1]',
    "{}",
    '{ backend = "llama_cpp", model = "m" }',
    "1979-05-27",
    "1979-05-27T07:32:00Z",
    "2021-02-30",
    "07:32:00",
    '"""multi',
    "'''",
    '"unterminated',
    "[" * 3000 + "]" * 3000,
    "{a = " * 600 + "1" + "}" * 600,
    '["a{99999999999}"]',
    '["' + "(" * 600 + ")" * 600 + '"]',
    '["["]',
    '["(?<=a+)b"]',
    '"\\uD800"',
    '"\\q"',
    '"\u2028"',
    "0x10",
    "0o7",
    "0b2",
    "+1",
    "01",
    "1" + "0" * 5000,
    "1" + "0" * 5000 + ".5",
]
HEADERS = [
    "[tiers.local]",
    "[tiers.in_house]",
    "[tiers.frontier]",
    "[tiers.nope]",
    "[sensitivity]",
    "[risk]",
    "[[rules]]",
    "[escalation]",
    "[budget]",
    "[tiers.local.price]",
    "[tiers]",
    "[[tiers]]",
    "[ a . b ]",
    "[tiers.local]]",
    "[[rules]",
    "[]",
    "[sensitivity.allowlist]",
]
toml_lines = st.one_of(
    st.sampled_from(HEADERS),
    st.tuples(st.sampled_from(KEYS), st.sampled_from(["=", " = ", " ="]), st.sampled_from(VALUES)).map("".join),
    st.sampled_from(["", "# comment", "  ", "=", "key", "\x00", "\r", "\ufeff", "\u2028"]),
    st.text(max_size=20),
)
toml_texts = st.lists(toml_lines, max_size=25).map("\n".join)


def check_error(error: PolicyError, text: str) -> None:
    assert error.problems, "a PolicyError always says what is wrong"
    n_lines = text.count("\n") + 1
    for line, key, message in error.problems:
        assert message
        assert line is None or 1 <= line <= n_lines, (line, key, message)
        if message.startswith("not valid TOML") and "end of document" not in message and "deeply" not in message:
            assert line is not None, message


@fuzz(400)
@given(text=toml_texts)
@example(text="a = " + "[" * 3000)
@example(text='[sensitivity]\nallowlist = ["a{99999999999}"]')
@example(text="version = 1" + "0" * 5000)
@example(text='[sensitivity]\nallowlist = ["' + "(" * 600 + ")" * 600 + '"]')
def test_any_text_loads_or_raises_policy_error(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyError as error:
        check_error(error, text)
    else:
        assert policy.tiers["local"].backend == "llama_cpp"


@fuzz(60)
@given(raw=st.binary(max_size=200) | toml_texts.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_file_loads_or_raises_policy_error(raw: bytes) -> None:
    """Through the file path too: bytes that are not UTF-8, BOMs, surrogates."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.toml"
        path.write_bytes(raw)
        try:
            loaded = load_policy(explicit=path)
        except PolicyError as error:
            assert error.path == path and str(path) in str(error)
            return
        assert loaded.source == "flag" and loaded.path == path
        assert loaded.policy == load_policy_file(path)
