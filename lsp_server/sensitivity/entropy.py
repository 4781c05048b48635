"""High-entropy literals: long base64/hex strings that look random, assigned to a name
(hex only next to a secret-ish name, since bare hex strings in code are almost always hashes)."""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import math
import re
from collections.abc import Callable

from lsp_server.sensitivity.assignments import IDENTIFIER, WORDS, name_words
from lsp_server.sensitivity.resolution import ENTROPY_TIER, Hit
from lsp_server.sensitivity.secret_rules import (
    is_placeholder,
    shannon_entropy,
    valid_basic_auth,
)

_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{20,512}")
# Key ids whose secret half is often given right next to them, and that half's shape.
COMPANIONS: dict[str, tuple[str, str, re.Pattern[str]]] = {
    "aws-access-key-id": (
        "aws-secret-access-key",
        "cloud",
        re.compile(r"(?<![\w/+=-])(?P<secret>[A-Za-z0-9/+]{40})(?![\w/+=-])"),
    ),
    "alibaba-access-key-id": (
        "alibaba-access-key-secret",
        "cloud",
        re.compile(r"(?<![\w/+=-])(?P<secret>[A-Za-z0-9]{30})(?![\w/+=-])"),
    ),
}
ALONE_BEFORE = re.compile(r"[\s\"'`]*")
ALONE_AFTER = re.compile(r"(?:\\[nrt\"'`]|[ \t\"'`,;])*\n")
# `KEY=value` inside one token run; a key is a name (few digits), so the `=` inside a
# random value (`wz7q5qyk-j=1ts3in3u`) is not taken for one.
GLUED_KEY = re.compile(r"[A-Za-z_][A-Za-z_.-]{0,80}?\d{0,2}(?::=|=>|=|:)(?=[\w$])")
_KEY_THEN_BLOB = re.compile(r"([A-Za-z_][\w.-]{0,80})[=:]([A-Za-z0-9+/=_-]{20,512})")
_KEY_BEFORE = re.compile(r"([A-Za-z0-9_.$-]{1,80})[\"'\]]{0,2}\s{0,4}(?::=|=>|=|:)\s{0,4}[bBrRuU]{0,2}[\"'`]?$")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX_RE = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_WEAK_SECRET_WORDS = frozenset(
    {
        "key",
        "secret",
        "token",
        "pass",
        "password",
        "passwd",
        "pwd",
        "auth",
        "cred",
        "creds",
        "credential",
        "credentials",
        "sig",
        "signature",
        "hmac",
        "salt",
        "cookie",
        "session",
        "apikey",
        "private",
        "bearer",
        "access",
    }
)


def _class_switch_ratio(value: str) -> float:
    """Share of adjacent characters of different classes (upper/lower/digit/other).

    Random base64 switches ~64% of the time; identifiers and words far less."""

    def cls(c: str) -> int:
        return 0 if c.islower() else 1 if c.isupper() else 2 if c.isdigit() else 3

    switches = sum(cls(a) != cls(b) for a, b in itertools.pairwise(value))
    return switches / max(1, len(value) - 1)


def _entropy_rule(value: str, in_secret_context: Callable[[], bool]) -> str | None:
    """Rule name when `value` looks like a random secret, else None.

    `in_secret_context` (asked only when it matters) tells whether the value is assigned to
    a secret-ish name."""
    n = len(value)
    if n < 20 or is_placeholder(value) or _UUID_RE.fullmatch(value):
        return None
    if re.match(r"sha\d{1,3}-", value):  # subresource-integrity hashes in lock files
        return None
    if HEX_RE.fullmatch(value):
        # Bare hex strings are hashes and test vectors; only next to a secret-ish name.
        if shannon_entropy(value) >= min(3.0, 0.67 * math.log2(n)) and in_secret_context():
            return "high-entropy-hex"
        return None
    has_upper = any(c.isupper() for c in value)
    has_lower = any(c.islower() for c in value)
    has_digit = any(c.isdigit() for c in value)
    if not (has_upper and has_lower and has_digit):
        return None
    if "/" in value and all(re.fullmatch(r"[A-Za-z_.-]*\d{0,2}", seg) for seg in value.split("/")):
        return None  # a path made of words
    if shannon_entropy(value) < min(4.5, 0.85 * math.log2(n)):
        return None
    if _decodes_to_text(value) and not valid_basic_auth(value):
        return None  # base64 of readable text (test vectors, MIME) unless it is "user:password"
    switches = _class_switch_ratio(value)
    if switches < 0.3:
        return None  # camelCase / CONSTANT_NAMES
    if switches < 0.4 or _wordy(value):
        # Could be an identifier (`PyUnicode_AsUTF8String`): only next to a secret-ish name.
        return "high-entropy-base64" if in_secret_context() else None
    return "high-entropy-base64"


def _secret_ish(name: str) -> bool:
    """A name with a weakly secret-ish word (`hmac_salt`, `session_cookie`, `signing_key`)."""
    return any(w in _WEAK_SECRET_WORDS or w.endswith(("key", "token", "secret")) for w in name_words(name))


def _wordy(value: str) -> bool:
    """Identifiers split into longer pieces than random strings do: random base64 averages
    ~1.8 characters per case/digit run (the limits sit near its 99th percentile), and
    `snake_Case_Names` are mostly made of 3+ letter pieces."""
    pieces = WORDS.findall(value)
    average = sum(map(len, pieces)) / max(1, len(pieces))
    coverage = sum(len(p) for p in pieces if len(p) >= 3 and p.isalpha()) / len(value)
    if "_" in value and IDENTIFIER.fullmatch(value):
        return average >= 2.5 or coverage >= 0.6
    return average >= (3.4 if len(value) < 32 else 3.0) or coverage >= 0.7


def _decodes_to_text(value: str) -> bool:
    padded = value + "=" * (-len(value.rstrip("=")) % 4 if "=" not in value else 0)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        decoded = raw.decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    if len(decoded) < 8 or not decoded.isprintable():
        return False
    return sum(c.isalpha() or c == " " for c in decoded) >= 0.6 * len(decoded)


def find_entropy(text: str, runs: list[tuple[int, int]], unquoted_ok: bool, hits: list[Hit]) -> None:
    """High-entropy literals, taken from the long tokens: quoted ones always, `KEY=value`
    and `key: value` ones only where values are literals (config files, bare text)."""
    n = len(text)
    for start, end in runs:
        before = text[start - 1] if start else ""
        if before in ("'", '"', "`"):
            if end >= n or text[end] != before or not _BLOB.fullmatch(text, start, end):
                continue
            context_end = start
        elif not unquoted_ok:
            continue
        elif m := _KEY_THEN_BLOB.fullmatch(text, start, end):  # KEY=value inside one token
            start, context_end = m.start(2), m.start(2)
        elif _BLOB.fullmatch(text, start, end) and text[max(0, start - 4) : start].rstrip(" \t")[-1:] in ("=", ":"):
            context_end = start
        else:
            continue
        value = text[start:end]
        if len(value) > 8192:
            continue
        # Only values assigned to a name count: bare literals in lists, calls and
        # docstrings are identifiers, test vectors and examples far more often than keys.
        line_start = text.rfind("\n", max(0, context_end - 120), context_end) + 1
        key = _KEY_BEFORE.search(text, max(line_start, context_end - 100), context_end)
        if key is None:
            continue
        rule = _entropy_rule(value, functools.partial(_secret_ish, key.group(1)))
        if rule:
            hits.append(Hit(ENTROPY_TIER, "secret", rule, "entropy", start, end))
