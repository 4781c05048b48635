"""Data-sensitivity detection, run on every request before any routing decision.

A hit keeps the request home (or gets it redacted, as the policy says), so the scanner
favours recall on real credentials while keeping false positives on ordinary code low.

These detectors feed one report:

* provider rules (``secret_rules.RULES``): token prefixes, keys in context, private keys,
  JWTs, connection strings, HTTP credentials;
* named services' credentials and vendor-prefixed tokens (``service_secrets``), and
  credentials that their format gives away (``structured_secrets``: curl options,
  Kubernetes Secrets, Google credential files);
* generic assignments: ``password = "..."``, ``api_key: ...``, ``.env`` lines, XML
  elements, when the name says "secret" and the value is not a placeholder or a reference;
* high-entropy literals: long base64/hex strings that look random (hex only next to a
  secret-ish name, since bare hex strings in code are almost always hashes);
* PII (``pii.py``): e-mail, phone, payment card (Luhn), IBAN (mod-97); can be turned off.

Plus path globs (gitignore-style) whose files are sensitive whatever they contain.

Findings never hold the matched text: they are logged and written to the ledger.
Overlaps are resolved by precision: a provider rule beats a structural rule (URL, header),
which beats a generic assignment, which beats an entropy hit; PII inside a secret is
dropped.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from lsp_server.sensitivity.pii import DIGIT_SHAPE_TABLE, find_pii
from lsp_server.sensitivity.scan_views import View, base64_view, concat_view, decoded_blobs, diff_views, json_view, url_view
from lsp_server.sensitivity.secret_engines import SecretEngine
from lsp_server.sensitivity.service_secrets import assignment_anchor, prefixed_token, random_value, service_context
from lsp_server.sensitivity.structured_secrets import find_structured
from lsp_server.sensitivity.secret_rules import (
    MIN_TOKEN_RUN,
    RULES,
    TOKEN_CHARS,
    SecretRule,
    is_placeholder,
    mixed_token,
    shannon_entropy,
    valid_basic_auth,
)

Kind = Literal["secret", "pii", "path"]

_STRUCTURED_TIER = 1
_GENERIC_TIER = 2
_PREFIXED_TIER = 3
_ENTROPY_TIER = 3
_PII_TIER = 4


@dataclass(frozen=True)
class Finding:
    kind: Kind
    rule: str  # e.g. "github-pat", "email", "path:secrets/**"
    family: str  # e.g. "vcs", "cloud", "pii", "path"
    start: int  # character offsets into the scanned text; (0, 0) for path findings
    end: int
    # Deliberately no `value` field: findings are logged and put in ledgers.


_KIND_ORDER = {"path": 0, "secret": 1, "pii": 2}


@dataclass(frozen=True)
class SensitivityReport:
    findings: tuple[Finding, ...] = ()

    @property
    def sensitive(self) -> bool:
        return bool(self.findings)

    @property
    def rules(self) -> list[str]:
        """Sorted unique rule names (safe to log)."""
        return sorted({f.rule for f in self.findings})

    def summary(self) -> str:
        """E.g. "secret:aws-access-key-id, pii:email" (no values)."""
        pairs = sorted({(f.kind, f.rule) for f in self.findings}, key=lambda p: (_KIND_ORDER[p[0]], p[1]))
        # Path rules already read "path:<glob>".
        return ", ".join(rule if rule.startswith(f"{kind}:") else f"{kind}:{rule}" for kind, rule in pairs)


# --- path globs ---------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """gitignore-style glob -> regex over a workspace-relative POSIX path.

    `*` and `?` stay within one segment, `**/` is any number of directories (or none),
    a trailing `/**` is everything inside; a pattern with no slash (other than a trailing
    one) matches at any depth; a leading `/` anchors at the root; a match on a directory
    covers everything under it."""
    pat = pattern.strip()
    dir_only = pat.endswith("/")
    pat = pat.strip("/") if dir_only else pat
    anchored = pat.startswith("/") or "/" in pat.rstrip("/")
    pat = pat.lstrip("/")
    out: list[str] = [] if anchored else ["(?:.*/)?"]
    i, n = 0, len(pat)
    while i < n:
        if pat.startswith("**", i):
            at_start = i == 0 or pat[i - 1] == "/"
            if at_start and pat.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if at_start and i + 2 == n:
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")  # `a**b` is two stars inside a segment
            i += 2
            continue
        ch = pat[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            close = pat.find("]", i + 2)
            if close < 0:
                out.append(re.escape(ch))
            else:
                body = pat[i + 1 : close]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = close
        elif ch == "\\" and i + 1 < n:
            out.append(re.escape(pat[i + 1]))
            i += 1
        else:
            out.append(re.escape(ch))
        i += 1
    suffix = "/.*" if dir_only else "(?:/.*)?"
    return re.compile("^" + "".join(out) + suffix + "$", re.DOTALL)


def _normalize_path(path: str) -> tuple[str, bool]:
    """POSIX form of a path and whether it is absolute (or escapes the workspace)."""
    p = path.replace("\\", "/")
    absolute = p.startswith(("/", "../")) or bool(re.match(r"^[A-Za-z]:/", p))
    p = re.sub(r"^[A-Za-z]:/", "/", p)
    p = re.sub(r"/{2,}", "/", p)
    parts = [s for s in p.split("/") if s not in ("", ".")]
    return "/".join(parts), absolute


@dataclass(frozen=True)
class _Glob:
    text: str
    regex: re.Pattern[str]
    negated: bool


def _compile_globs(globs: Sequence[str]) -> tuple[_Glob, ...]:
    out = []
    for g in globs:
        g = g.strip()
        if not g or g.startswith("#"):
            continue
        negated = g.startswith("!")
        out.append(_Glob(g, glob_to_regex(g[1:] if negated else g), negated))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _compiled_globs(globs: tuple[str, ...]) -> tuple[_Glob, ...]:
    return _compile_globs(globs)


def _match_compiled(path: str | None, globs: tuple[_Glob, ...]) -> str | None:
    if not globs or not path:
        return None
    normalized, absolute = _normalize_path(path)
    if not normalized:
        return None
    parts = normalized.split("/")
    # Absolute paths: the workspace root is unknown, so try every tail.
    candidates = ["/".join(parts[i:]) for i in range(len(parts))] if absolute else [normalized]
    matched: str | None = None
    for glob in globs:
        if any(glob.regex.match(c) for c in candidates):
            matched = None if glob.negated else glob.text
    return matched


def first_matching_glob(path: str | None, globs: Sequence[str]) -> str | None:
    """The glob (gitignore semantics, `!glob` re-includes) that matches a path, or None."""
    return _match_compiled(path, _compiled_globs(tuple(globs)))


# --- generic assignments ------------------------------------------------------------------

# On the lower-cased text: a secret-ish word inside a name, the rest of the name, then an
# assignment operator. Comparisons (`==`, `!=`) and `::`, `://` are not assignments.
# One regex per keyword: a pattern that starts with a literal is searched ~10x faster.
_GENERIC = tuple(
    re.compile(
        keyword + r"(?P<rest>[\w-]{0,60})[\"'\]]{0,2}\s{0,4}(?P<op>:=|=>|=(?![=>~])|:(?![:/]))[ \t]{0,4}"
    )
    for keyword in ("pass", "pwd", "secret", "token", "cred", "key", "auth")
)
_XML_SECRET = re.compile(
    r"<(?P<tag>[\w.:-]{0,40}(?:password|passwd|secret|token|apikey|api-key|api_key)[\w.:-]{0,40})>"
    r"(?P<value>[^<\n]{1,200})</(?P=tag)>"
)
# .NET and NuGet settings: `<add key="ClearTextPassword" value="..." />`.
_XML_ADD = re.compile(r'<add\s{1,40}key\s{0,4}=\s{0,4}"(?P<key>[^"\n]{1,80})"\s{1,80}value\s{0,4}=\s{0,4}"(?P<value>[^\n]{1,300}?)"\s{0,80}/?>')
# A password passed to a login call: `smtp.login("user", "s3cret")`, `authenticate(u, 'pw')`.
_LOGIN_CALLS = tuple(
    re.compile(
        word + r"[ \t]{0,8}\([ \t]{0,8}[^,()\r\n]{1,250}?[ \t]{0,8},[ \t]{0,8}"
        r"(?P<q>[\"'`])(?P<value>(?:\\.|(?!(?P=q))[^\\\r\n]){4,250})(?P=q)[ \t]{0,8}\)"
    )
    for word in (r"log_?in", "authenticate")  # each starts with a literal: found fast
)
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-$")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_UNQUOTED = re.compile(r"[^\s,;#)}\]\"'`]{1,8192}")
_ANNOTATION = re.compile(r"[A-Za-z_][\w.\[\], |]{0,40}?[ \t]{0,3}=(?![=>])[ \t]{0,4}")
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s")
_CODE_CHARS = re.compile(r"[()\[\]{}<>]")
_WORD_ONLY = re.compile(r"[A-Za-z_.-]+")
_CHAINED = re.compile(r"[A-Za-z_][\w.-]*=")
_REGEX_SYNTAX = re.compile(r"\\[wdsWDSbB]|\[[^\]]{1,80}\][*+?{]")

# Word -> kind of secret it names.
_SECRET_WORDS: dict[str, str] = {
    "password": "password", "passwd": "password", "passwort": "password", "passphrase": "password",
    "pwd": "password", "pass": "password", "secret": "secret", "token": "token",
    "credential": "credential", "credentials": "credential", "creds": "credential",
    "apikey": "api-key", "privatekey": "api-key", "secretkey": "secret", "accesskey": "api-key",
    "authtoken": "token", "accesstoken": "token", "refreshtoken": "token", "apitoken": "token",
    "clientsecret": "secret", "apisecret": "secret", "authkey": "api-key", "masterkey": "api-key",
}
_COMPOUND_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey", "secretkey")
# `<qualifier>_key` names a secret; a plain `key` does not (dict keys, sort keys...).
_KEY_QUALIFIERS = frozenset(
    {
        "api", "access", "secret", "private", "signing", "encryption", "encrypt", "master",
        "client", "app", "auth", "session", "account", "storage", "subscription", "license",
        "service", "shared", "webhook", "admin", "deploy", "consumer", "hmac", "jwt",
    }
)
# Words allowed after the secret word: `password_prod` is a password, `password_hash` is not.
_TRAILERS = frozenset(
    {
        "value", "val", "str", "string", "b64", "base64", "hex", "raw", "plain", "plaintext",
        "enc", "encrypted", "key", "secret", "prod", "production", "dev", "development", "staging",
        "stage", "local", "live", "default", "main", "primary", "secondary", "old", "new",
        "current", "override", "env",
    }
)
# Words before `token` that make it a lexer/tokenizer/pagination token, not a credential.
_NOT_CREDENTIAL_TOKEN = frozenset(
    {
        "next", "page", "continuation", "sync", "start", "end", "last", "first", "prev",
        "previous", "cur", "current", "max", "min", "num", "total", "eos", "bos", "pad", "unk",
        "sep", "cls", "mask", "special", "stop", "new", "sentinel", "cancellation", "cancel",
        "type",
    }
)
_RULE_FOR_KIND = {
    "password": "generic-password",
    "secret": "generic-secret",
    "token": "generic-token",
    "api-key": "generic-api-key",
    "credential": "generic-credential",
}
# File kinds where `key: value` / `KEY=value` values are literal (no code expressions).
_CONFIG_SUFFIXES = (
    ".env", ".ini", ".cfg", ".conf", ".properties", ".yaml", ".yml", ".toml", ".envrc",
    ".npmrc", ".pypirc", ".netrc", ".tfvars", ".secrets", ".credentials", ".dotenv",
)


def _secret_kind(words: list[str]) -> str | None:
    """What kind of secret a name like `DB_PASSWORD` or `apiKey` names, if any."""
    for i in range(len(words) - 1, -1, -1):
        w = words[i]
        kind = _SECRET_WORDS.get(w)
        if kind is None and w == "key" and i > 0 and words[i - 1] in _KEY_QUALIFIERS:
            kind = "secret" if words[i - 1] in ("secret", "private") else "api-key"
        if kind is None and len(w) > 6 and w.endswith(_COMPOUND_SUFFIXES) and w != "tokens":
            kind = "token" if w.endswith("token") else "password" if "pass" in w else "secret"
        if kind is None:
            continue
        if not all(t in _TRAILERS or t.isdigit() for t in words[i + 1 :]):
            return None
        if kind == "token" and i > 0 and words[i - 1] in _NOT_CREDENTIAL_TOKEN:
            return None
        if "public" in words[:i]:
            return None  # public keys and .NET publicKeyToken are not secrets
        return kind
    return None


def _name_words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name)]


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~/")) or "://" in value or bool(re.match(r"^[A-Za-z]:\\", value))


def _generic_value_ok(value: str, kind: str, quoted: bool, config_like: bool) -> bool:
    """Whether the value assigned to a secret-ish name is plausibly a live secret.

    Cheap structural checks come first; the placeholder regex runs last."""
    # Passwords stay short; tokens and keys may be long (session tokens, signed blobs).
    if not (6 if kind == "password" else 8) <= len(value) <= (256 if kind == "password" else 8192):
        return False
    if value.endswith(":"):
        return False  # a label or prompt ("Password:")
    if _SPACE.search(value):
        # Prompts and messages ("Enter your password") have spaces; so do passphrases.
        return quoted and kind == "password" and _passphrase(value)
    if not quoted:
        if value[0] in "!|>&*%@":
            return False  # YAML tags, block scalars, anchors, aliases
        if _CHAINED.match(value) or _CODE_CHARS.search(value) or _NUMBER.fullmatch(value):
            return False  # `a=b=c`, code expressions, ports, counts
        if _IDENTIFIER.fullmatch(value) and (not config_like or "." in value):
            return False  # in code a bare name is a reference (`password = other_variable`)
    if _looks_like_path(value) or _REGEX_SYNTAX.search(value):
        return False  # file paths, URLs, `token = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"` (a grammar)
    # Tokens and keys are random; a quoted word is an enum or a name (`token = "NAME"`).
    if kind != "password" and _WORD_ONLY.fullmatch(value) and (len(value) < 20 or shannon_entropy(value) < 3.8):
        return False
    return not is_placeholder(value)


_MESSAGE_WORDS = frozenset(
    """
    enter your please invalid incorrect wrong required must should cannot can't missing failed
    error type provide new confirm password passphrase passwords secret token key the for is not
    of to be with and or you this that does match matches reset forgot change changed expired
    minimum maximum characters length empty too short long field value
    """.split()
)


def _passphrase(value: str) -> bool:
    """A quoted value with spaces that reads as a passphrase ("correct horse battery staple"),
    not a message about passwords ("Passwords do not match")."""
    words = value.split()
    if not 2 <= len(words) <= 10 or len(value) < 12:
        return False
    if value.rstrip()[-1:] in ":?." or "{" in value or "%" in value:
        return False  # prompts, sentences, format strings
    return not any(w.lower().strip("!,.'\"") in _MESSAGE_WORDS for w in words) and not is_placeholder(value)


def _parse_value(text: str, pos: int) -> tuple[int, int, bool] | None:
    """(start, end, quoted) of the value starting at `pos`, or None."""
    q = pos
    while q < len(text) and q - pos < 2 and text[q] in "bBrRuUfF":
        q += 1
    if q < len(text) and text[q] in "\"'`":
        quote = text[q]
        close = text.find(quote, q + 1, q + 8194)
        if close < 0:
            return None
        if "\n" in text[q + 1 : close]:
            return None
        return q + 1, close, True
    m = _UNQUOTED.match(text, pos)
    if not m:
        return None
    return pos, m.end(), False


# --- entropy ------------------------------------------------------------------------------

_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{20,512}")
# Key ids whose secret half is often given right next to them, and that half's shape.
_COMPANIONS: dict[str, tuple[str, str, re.Pattern[str]]] = {
    "aws-access-key-id": (
        "aws-secret-access-key", "cloud", re.compile(r"(?<![\w/+=-])(?P<secret>[A-Za-z0-9/+]{40})(?![\w/+=-])"),
    ),
    "alibaba-access-key-id": (
        "alibaba-access-key-secret", "cloud", re.compile(r"(?<![\w/+=-])(?P<secret>[A-Za-z0-9]{30})(?![\w/+=-])"),
    ),
}
_ALONE_BEFORE = re.compile(r"[\s\"'`]*")
_ALONE_AFTER = re.compile(r"(?:\\[nrt\"'`]|[ \t\"'`,;])*\n")
# `KEY=value` inside one token run; a key is a name (few digits), so the `=` inside a
# random value (`wz7q5qyk-j=1ts3in3u`) is not taken for one.
_GLUED_KEY = re.compile(r"[A-Za-z_][A-Za-z_.-]{0,80}?\d{0,2}(?::=|=>|=|:)(?=[\w$])")
_KEY_THEN_BLOB = re.compile(r"([A-Za-z_][\w.-]{0,80})[=:]([A-Za-z0-9+/=_-]{20,512})")
_KEY_BEFORE = re.compile(r"([A-Za-z0-9_.$-]{1,80})[\"'\]]{0,2}\s{0,4}(?::=|=>|=|:)\s{0,4}[bBrRuU]{0,2}[\"'`]?$")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_RE = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_WEAK_SECRET_WORDS = frozenset(
    {
        "key", "secret", "token", "pass", "password", "passwd", "pwd", "auth", "cred", "creds",
        "credential", "credentials", "sig", "signature", "hmac", "salt", "cookie", "session",
        "apikey", "private", "bearer", "access",
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
    if _HEX_RE.fullmatch(value):
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
    return any(w in _WEAK_SECRET_WORDS or w.endswith(("key", "token", "secret")) for w in _name_words(name))


def _wordy(value: str) -> bool:
    """Identifiers split into longer pieces than random strings do: random base64 averages
    ~1.8 characters per case/digit run (the limits sit near its 99th percentile), and
    `snake_Case_Names` are mostly made of 3+ letter pieces."""
    pieces = _WORDS.findall(value)
    average = sum(map(len, pieces)) / max(1, len(pieces))
    coverage = sum(len(p) for p in pieces if len(p) >= 3 and p.isalpha()) / len(value)
    if "_" in value and _IDENTIFIER.fullmatch(value):
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


# --- text shapes ----------------------------------------------------------------------------

# One byte per character (non-ASCII becomes "?"), so byte offsets are character offsets.
# _TOKEN_SHAPE: token characters -> "T", the rest -> " ": long tokens are found with
# bytes.find(b"T" * 20), which skips through the text far faster than any regex.
# pii.digit_shape: digits -> "0", upper -> "A", lower -> "a": PII candidates ("0000 0000...",
# "AA00...") become literal-prefixed byte patterns.
_TOKEN_SHAPE = bytes(ord("T") if chr(i) in TOKEN_CHARS else ord(" ") for i in range(256))
_RUN_NEEDLE = b"T" * MIN_TOKEN_RUN


@dataclass(slots=True)
class _Excerpt:
    """Pieces of the scanned text joined by NUL characters, with the way back to the text."""

    text: str
    starts: list[int]  # where each piece starts in `text`
    origins: list[int]  # where each piece starts in the scanned text

    def to_original(self, pos: int) -> int:
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.origins[i] + pos - self.starts[i]


def _excerpt(source: str, spans: list[tuple[int, int]]) -> _Excerpt:
    starts: list[int] = []
    offset = 0
    for start, end in spans:
        starts.append(offset)
        offset += end - start + 1
    # NUL keeps matches inside one piece: no rule pattern matches it (\s and \w do not).
    return _Excerpt("\0".join(source[s:e] for s, e in spans), starts, [s for s, _ in spans])


def _long_token_runs(ascii_bytes: bytes) -> list[tuple[int, int]]:
    """(start, end) of every maximal run of >= MIN_TOKEN_RUN token characters."""
    shape = ascii_bytes.translate(_TOKEN_SHAPE)
    runs: list[tuple[int, int]] = []
    pos = 0
    while (start := shape.find(_RUN_NEEDLE, pos)) >= 0:
        end = shape.find(b" ", start + MIN_TOKEN_RUN)
        end = len(shape) if end < 0 else end
        runs.append((start, end))
        pos = end
    return runs


def _lines_around(text: str, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (merged) lines that hold the runs."""
    lines: list[tuple[int, int]] = []
    for start, end in runs:
        if lines and start < lines[-1][1]:
            continue
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        lines.append((line_start, len(text) if line_end < 0 else line_end))
    return lines


# --- the scanner --------------------------------------------------------------------------

# The rules by where they run, each with the pattern that must occur first: its anchor, or
# the rule itself. Most rules find nothing; one search in C tells so before any Python work.
_TOKEN_RULES = tuple((r, r.anchor or r.regex) for r in RULES if r.scope == "tokens")
_LINE_RULES = tuple((r, r.anchor or r.regex) for r in RULES if r.scope == "lines")
_TEXT_RULES = tuple((r, r.anchor or r.regex) for r in RULES if r.scope == "text")


@dataclass(slots=True)
class _Hit:
    tier: int
    kind: Kind
    rule: str
    family: str
    start: int
    end: int


class SensitivityScanner:
    """Scans text (and its path) for secrets, PII and sensitive locations.

    `path_globs` are gitignore-style; a later `!glob` re-includes. `allowlist` holds
    regexes: a finding whose matched value contains a match is dropped. Immutable after
    construction, so one instance can be shared across requests."""

    def __init__(
        self,
        path_globs: Sequence[str] = (),
        *,
        pii: bool = True,
        entropy: bool = True,
        allowlist: Sequence[str] = (),
        engines: Sequence[SecretEngine] = (),
    ) -> None:
        self.path_globs = tuple(path_globs)
        self.pii = pii
        self.entropy = entropy
        self.allowlist = tuple(allowlist)
        self.engines = tuple(engines)  # other engines answering too (secret_engines)
        self._globs = _compile_globs(self.path_globs)
        self._allow = tuple(re.compile(p) for p in self.allowlist)
        self._groups = {
            id(rule): (
                "secret" if "secret" in rule.regex.groupindex else 0,
                "body" if "body" in rule.regex.groupindex else None,
            )
            for rule in RULES
        }

    def __repr__(self) -> str:
        return f"SensitivityScanner(path_globs={self.path_globs!r}, pii={self.pii}, entropy={self.entropy})"

    # ---- paths

    def path_is_sensitive(self, path: str) -> str | None:
        """The glob that makes `path` sensitive, or None (a later `!glob` can undo a match)."""
        return _match_compiled(path, self._globs)

    # ---- text

    def scan(self, text: str, path: str | None = None) -> SensitivityReport:
        findings: list[Finding] = []
        if path:
            glob = self.path_is_sensitive(path)
            if glob:
                findings.append(Finding("path", f"path:{glob}", "path", 0, 0))
        if not text:
            return SensitivityReport(tuple(findings))
        config_like = _is_config_path(path)
        # The detectors read an ASCII copy (one `?` for each other character, so offsets
        # hold): a single `–` or `’` makes the whole text a 2- or 4-byte string and every pass
        # over it 2-4x slower. Credentials are ASCII; PII is read from the text as it is.
        source = text if text.isascii() else text.encode("ascii", "replace").decode("ascii")
        hits, runs = self._detect(source, config_like, path is None, pii_text=text)
        hits += self._normalised(source, runs, config_like, path is None)
        for engine in self.engines:
            for rule, start, end in engine.find(text):
                if 0 <= start < end <= len(text):
                    hits.append(_Hit(0, "secret", rule, f"engine:{engine.name}", start, end))
        if runs or hits:
            self._companions(source, hits)
        if self._allow:
            hits = [h for h in hits if not any(rx.search(text[h.start : h.end]) for rx in self._allow)]
        findings.extend(_resolve(hits))
        return SensitivityReport(tuple(findings))

    def scan_paths(self, text: str, paths: Sequence[str]) -> dict[str, SensitivityReport]:
        """`scan(text, path)` for each path (the files a diff chunk holds), reading the text
        once per kind of file: a path changes only its own path finding and whether the text
        is read as a config file."""
        text_findings: dict[bool, tuple[Finding, ...]] = {}
        reports: dict[str, SensitivityReport] = {}
        for path in paths:
            config_like = _is_config_path(path)
            if config_like not in text_findings:
                text_findings[config_like] = tuple(f for f in self.scan(text, path).findings if f.kind != "path")
            glob = self.path_is_sensitive(path) if path else None
            own = (Finding("path", f"path:{glob}", "path", 0, 0),) if glob else ()
            reports[path] = SensitivityReport(own + text_findings[config_like])
        return reports

    def _detect(
        self, text: str, config_like: bool, pathless: bool, pii_text: str | None = None
    ) -> tuple[list[_Hit], list[tuple[int, int]]]:
        """Every detector over `text` as it is; also returns the long token runs. `pii_text`
        is the text PII is read from when `text` is its ASCII copy (same length)."""
        lowered = text.lower()
        if len(lowered) != len(text):  # only U+0130 lower-cases to two code points
            lowered = text.replace("\u0130", "I").lower()
        ascii_bytes = text.encode("ascii", "replace")
        runs = _long_token_runs(ascii_bytes)
        hits: list[_Hit] = []
        if runs:
            # Most rules only look at long tokens, or at the lines that hold one: a few
            # percent of typical code, so each rule's pass over it is cheap.
            tokens = _excerpt(text, runs)
            lines = _lines_around(text, runs)
            line_texts = {False: _excerpt(text, lines), True: _excerpt(lowered, lines)}
            for rule, first in _TOKEN_RULES:
                if first.search(tokens.text):  # one C call; most rules stop here
                    self._run_rule(rule, text, tokens, hits)
            for rule, first in _LINE_RULES:
                source = line_texts[rule.on_lower]
                if first.search(source.text):
                    self._run_rule(rule, text, source, hits)
        asked: dict[tuple[int, bool], bool] = {}  # rules sharing an anchor ask it once
        for rule, first in _TEXT_RULES:
            source = lowered if rule.on_lower else text
            key = (id(first), rule.on_lower)
            if key not in asked:
                asked[key] = first.search(source) is not None
            if asked[key]:
                self._run_rule(rule, text, source, hits)
        for rule, family, start, end in find_structured(text, lowered):
            hits.append(_Hit(_STRUCTURED_TIER, "secret", rule, family, start, end))
        self._generic(text, lowered, config_like, hits)
        shape = ascii_bytes.translate(DIGIT_SHAPE_TABLE)  # digits "0", upper "A", lower "a"
        if runs:
            self._services(text, runs, shape, hits)
        if self.entropy and runs:
            self._entropy(text, runs, config_like or pathless, hits)
        if self.pii:
            pii = find_pii(text if pii_text is None else pii_text, lowered, shape)
            hits.extend(_Hit(_PII_TIER, "pii", rule, "pii", s, e) for rule, s, e in pii)
        return hits, runs

    def _normalised(self, text: str, runs: list[tuple[int, int]], config_like: bool, pathless: bool) -> list[_Hit]:
        """Findings in the decoded views of `text` (scan_views), mapped back onto it."""
        views: list[View] = diff_views(text)
        for build in (json_view, concat_view, url_view):
            view = build(text)
            if view is not None:
                views.append(view)
            if build is json_view and view is not None:
                # Concatenations and URL escapes inside JSON strings (a notebook's code).
                views += [inner.through(view) for inner in (concat_view(view.text), url_view(view.text)) if inner]
        hits: list[_Hit] = []
        blobs = decoded_blobs(text, runs)
        for blob in blobs:
            if blob.der_private_key:
                hits.append(_Hit(0, "secret", "private-key", "private-key", blob.start, blob.end))
        if (view := base64_view(blobs)) is not None:
            views.append(view)
        if not views:
            return hits
        view = views[0] if len(views) == 1 else View.merged(views)
        view_hits, view_runs = self._detect(view.text, config_like, pathless)
        for blob in decoded_blobs(view.text, view_runs):  # one level of nesting: base64 in JSON...
            if blob.der_private_key:
                view_hits.append(_Hit(0, "secret", "private-key", "private-key", blob.start, blob.end))
        for h in view_hits:
            start, end = view.to_original(h.start, h.end)
            hits.append(_Hit(h.tier, h.kind, h.rule, h.family, start, end))
        return hits

    def _companions(self, text: str, hits: list[_Hit]) -> None:
        """The secret half of a key pair given next to its id (`Client("AKIA...", "wJalr...")`):
        when an id is found, a value of its secret's shape nearby is that secret."""
        for h in list(hits):
            companion = _COMPANIONS.get(h.rule)
            if companion is None:
                continue
            rule, family, shape = companion
            lo = text.rfind("\n", 0, h.start) + 1  # its own line and the next one
            hi = text.find("\n", text.find("\n", h.end) + 1)
            hi = len(text) if hi < 0 else hi
            for m in shape.finditer(text, max(lo, h.start - 400), min(hi, h.end + 400)):
                value = m.group("secret")
                if shannon_entropy(value) >= 4.0 and not is_placeholder(value) and mixed_token(value):
                    hits.append(_Hit(0, "secret", rule, family, m.start("secret"), m.end("secret")))

    def _run_rule(self, rule: SecretRule, text: str, source: str | _Excerpt, hits: list[_Hit]) -> None:
        """Run one rule over `source`: the text, its lower-cased copy, or an excerpt of either."""
        excerpt = source if isinstance(source, _Excerpt) else None
        src = source.text if isinstance(source, _Excerpt) else source
        matches: Iterable[re.Match[str]]
        if rule.anchor is None:
            matches = rule.regex.finditer(src)
        else:
            matches = self._anchored(rule, src)
        secret_group, body_group = self._groups[id(rule)]
        for m in matches:
            start, end = m.span(secret_group)
            if start < 0 or start == end:
                continue
            shift = 0
            if excerpt is not None:  # offsets in the excerpt -> offsets in the text
                mapped = excerpt.to_original(start)
                shift = mapped - start
                start, end = mapped, end + shift
            if rule.boundary and start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
                continue
            value = text[start:end]
            if rule.value_re is not None and not rule.value_re.fullmatch(value):
                continue
            body = value
            if body_group is not None and m.start(body_group) >= 0:
                body = text[m.start(body_group) + shift : m.end(body_group) + shift]
            if rule.placeholder_check and is_placeholder(body):
                continue
            if rule.min_entropy and shannon_entropy(body) < rule.min_entropy:
                continue
            if rule.validator is not None and not rule.validator(value):
                continue
            hits.append(_Hit(rule.tier, "secret", rule.id, rule.family, start, end))

    @staticmethod
    def _anchored(rule: SecretRule, src: str) -> list[re.Match[str]]:
        """Matches of `rule.regex` near the hits of its (fast) anchor.

        Overlapping windows are merged first, so dense anchors cost one pass, not many."""
        assert rule.anchor is not None
        windows: list[list[int]] = []
        for a in rule.anchor.finditer(src):
            lo, hi = max(0, a.start() - rule.window), min(len(src), a.end() + rule.window)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], hi)
            else:
                windows.append([lo, hi])
        return [m for lo, hi in windows for m in rule.regex.finditer(src, lo, hi)]

    def _generic(self, text: str, lowered: str, config_like: bool, hits: list[_Hit]) -> None:
        seen: set[int] = set()
        parsed_until: dict[int, int] = {}  # per keyword: the end of the last value read
        for index, m in ((i, m) for i, regex in enumerate(_GENERIC) for m in regex.finditer(lowered)):
            if m.end() in seen:  # `secret_key =` is found from "secret" and from "key"
                continue
            if m.start() < parsed_until.get(index, -1):
                continue  # inside a value already read (`password=password=...`): no new key
            seen.add(m.end())
            key_end = m.end("rest")
            key_start = m.start()
            while key_start > 0 and m.start() - key_start < 80 and text[key_start - 1] in _KEY_CHARS:
                key_start -= 1
            kind = _secret_kind(_name_words(text[key_start:key_end]))
            if kind is None:
                continue
            pos = m.end()
            if m.group("op") == ":":  # `password: str = "..."` (annotation, then the value)
                ann = _ANNOTATION.match(text, pos)
                if ann and not text.startswith(("'", '"'), pos):
                    pos = ann.end()
            parsed = _parse_value(text, pos)
            if parsed is None:
                continue
            start, end, quoted = parsed
            parsed_until[index] = end
            if _generic_value_ok(text[start:end], kind, quoted, config_like):
                hits.append(_Hit(_GENERIC_TIER, "secret", _RULE_FOR_KIND[kind], "generic-assignment", start, end))
        for m in _XML_ADD.finditer(lowered):
            kind = _secret_kind(_name_words(text[m.start("key") : m.end("key")]))
            start, end = m.span("value")
            value = text[start:end].strip()
            start = text.find(value, start, end) if value else start
            if kind and _generic_value_ok(value, kind, True, True):
                hits.append(_Hit(_GENERIC_TIER, "secret", _RULE_FOR_KIND[kind], "generic-assignment", start, start + len(value)))
        for m in (m for regex in _LOGIN_CALLS for m in regex.finditer(lowered)):
            if m.start() > 0 and lowered[m.start() - 1].isalnum():
                continue  # `catalogin(`, `blogin(`: not a login call
            start, end = m.span("value")
            if _generic_value_ok(text[start:end], "password", True, False):
                hits.append(_Hit(_GENERIC_TIER, "secret", "generic-password", "generic-assignment", start, end))
        if "</" in text:
            for m in _XML_SECRET.finditer(lowered):
                kind = _secret_kind(_name_words(text[m.start("tag") : m.end("tag")].replace(":", "_")))
                start, end = m.span("value")
                if kind and _generic_value_ok(text[start:end], kind, True, True):
                    hits.append(_Hit(_GENERIC_TIER, "secret", _RULE_FOR_KIND[kind], "generic-assignment", start, end))

    def _services(self, text: str, runs: list[tuple[int, int]], shape: bytes, hits: list[_Hit]) -> None:
        """Named services' credentials and vendor-prefixed tokens (see service_secrets).
        `shape` is the text's digit shape: digits and case flips are counted on it in C."""
        for run_start, run_end in runs:
            start, end = run_start, run_end
            if shape.find(b"0", start, end) < 0 and shape.count(b"aA", start, end) < 3:
                continue  # generated values have digits or flip case often; names rarely do
            while end > start and text[end - 1] in ".:,":
                end -= 1
            while start < end and text[start] in "=:":  # `KEY :=value`: the operator is not the value
                start += 1
            glued = _GLUED_KEY.match(text, start, end) if ("=" in text[start:end] or ":" in text[start:end]) else None
            if glued:  # `KEY=value` in one run of token characters
                start = glued.end()
            value = text[start:end]
            if len(value) < 16 or (shape.find(b"0", start, end) < 0 and shape.count(b"aA", start, end) < 3):
                continue
            if start == 0:
                continue  # the text may start inside a longer token (a window cut mid-line)
            if prefixed_token(value):
                hits.append(_Hit(_PREFIXED_TIER, "secret", "prefixed-token", "token", start, end))
                continue
            line_start = text.rfind("\n", max(0, start - 90), start) + 1
            before = text[max(line_start, start - 90) : start]
            if glued:
                before += text[run_start:start]
            if (
                len(value) >= 24
                and line_start > 0  # a whole line, not the start of a window cut mid-line
                and not _HEX_RE.fullmatch(value)
                and _ALONE_BEFORE.fullmatch(before)
                and _ALONE_AFTER.match(text, end)
                and random_value(value, strict=True)
            ):
                # A random token alone on its line (a pasted key, a secrets file).
                hits.append(_Hit(_PREFIXED_TIER, "secret", "high-entropy-token", "entropy", start, end))
                continue
            anchor = assignment_anchor(before) if before else None
            if anchor and random_value(value, strict=not anchor[1]):
                rule, family = ("service-credential", "service") if anchor[1] else ("generic-secret", "generic-assignment")
                hits.append(_Hit(_GENERIC_TIER, "secret", rule, family, start, end))
            elif (not anchor or not anchor[1]) and service_context(text[max(0, start - 100) : start]) and random_value(value):
                # `amplitude:\n  secret: <value>`: the service named a line or two above.
                hits.append(_Hit(_GENERIC_TIER, "secret", "service-credential", "service", start, end))

    def _entropy(self, text: str, runs: list[tuple[int, int]], unquoted_ok: bool, hits: list[_Hit]) -> None:
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
                hits.append(_Hit(_ENTROPY_TIER, "secret", rule, "entropy", start, end))


def _is_config_path(path: str | None) -> bool:
    if not path:
        return False
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name.startswith(".env") or name.endswith(_CONFIG_SUFFIXES) or name in ("credentials", "config")


def _resolve(hits: list[_Hit]) -> list[Finding]:
    """Drop hits that overlap a hit of a more precise tier; drop exact duplicates."""
    hits.sort(key=lambda h: (h.tier, h.start, -h.end))
    kept: list[_Hit] = []
    # Disjoint, sorted union of the spans of all better tiers kept so far.
    starts: list[int] = []
    ends: list[int] = []
    seen_spans: set[tuple[int, int]] = set()
    tier_hits: list[_Hit] = []
    current_tier = -1

    def flush() -> None:
        for h in tier_hits:
            _add_interval(starts, ends, h.start, h.end)
        tier_hits.clear()

    for h in hits:
        if h.tier != current_tier:
            flush()
            current_tier = h.tier
        if (h.start, h.end) in seen_spans:
            continue  # same span from another pattern of the same tier
        i = bisect.bisect_right(starts, h.start) - 1
        if (i >= 0 and ends[i] > h.start) or (i + 1 < len(starts) and starts[i + 1] < h.end):
            continue  # overlaps something more precise
        seen_spans.add((h.start, h.end))
        kept.append(h)
        tier_hits.append(h)
    kept.sort(key=lambda h: (h.start, h.end, h.rule))
    return [Finding(h.kind, h.rule, h.family, h.start, h.end) for h in kept]


def _add_interval(starts: list[int], ends: list[int], start: int, end: int) -> None:
    """Insert [start, end) into a sorted list of disjoint intervals, merging overlaps."""
    i = bisect.bisect_left(starts, start)
    if i > 0 and ends[i - 1] >= start:
        i -= 1
        start = starts[i]
    j = i
    while j < len(starts) and starts[j] <= end:
        end = max(end, ends[j])
        j += 1
    starts[i:j] = [start]
    ends[i:j] = [end]


def redact(text: str, report: SensitivityReport, placeholder: str = "[REDACTED:{rule}]") -> str:
    """`text` with every finding's span replaced by `placeholder` ({rule}, {family}, {kind})."""
    spans = sorted((f.start, f.end, f) for f in report.findings if f.kind != "path" and f.end > f.start)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(spans):
        start, end, first = spans[i]
        i += 1
        while i < len(spans) and spans[i][0] < end:  # merge overlapping spans
            end = max(end, spans[i][1])
            i += 1
        start = max(start, pos)
        out.append(text[pos:start])
        out.append(
            placeholder.replace("{rule}", first.rule).replace("{family}", first.family).replace("{kind}", first.kind)
        )
        pos = max(pos, end)
    out.append(text[pos:])
    return "".join(out)
