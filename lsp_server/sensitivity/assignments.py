"""Generic credential assignments (`password = "..."`, `api_key: ...`, `.env` lines, XML
elements) and high-entropy literals next to a secret-ish name.

A name that says "secret" is not enough: the value must not be a placeholder, a reference,
a path, a sentence or code."""

from __future__ import annotations

import re

from lsp_server.sensitivity.resolution import GENERIC_TIER, Hit
from lsp_server.sensitivity.secret_rules import (
    is_placeholder,
    shannon_entropy,
)

# --- generic assignments ------------------------------------------------------------------

# On the lower-cased text: a secret-ish word inside a name, the rest of the name, then an
# assignment operator. Comparisons (`==`, `!=`) and `::`, `://` are not assignments.
# One regex per keyword: a pattern that starts with a literal is searched ~10x faster.
_GENERIC = tuple(
    re.compile(keyword + r"(?P<rest>[\w-]{0,60})[\"'\]]{0,2}\s{0,4}(?P<op>:=|=>|=(?![=>~])|:(?![:/]))[ \t]{0,4}")
    for keyword in ("pass", "pwd", "secret", "token", "cred", "key", "auth")
)
_XML_SECRET = re.compile(
    r"<(?P<tag>[\w.:-]{0,40}(?:password|passwd|secret|token|apikey|api-key|api_key)[\w.:-]{0,40})>"
    r"(?P<value>[^<\n]{1,200})</(?P=tag)>"
)
# .NET and NuGet settings: `<add key="ClearTextPassword" value="..." />`.
_XML_ADD = re.compile(
    r'<add\s{1,40}key\s{0,4}=\s{0,4}"(?P<key>[^"\n]{1,80})"\s{1,80}value\s{0,4}=\s{0,4}"(?P<value>[^\n]{1,300}?)"\s{0,80}/?>'
)
# A password passed to a login call: `smtp.login("user", "s3cret")`, `authenticate(u, 'pw')`.
_LOGIN_CALLS = tuple(
    re.compile(
        word + r"[ \t]{0,8}\([ \t]{0,8}[^,()\r\n]{1,250}?[ \t]{0,8},[ \t]{0,8}"
        r"(?P<q>[\"'`])(?P<value>(?:\\.|(?!(?P=q))[^\\\r\n]){4,250})(?P=q)[ \t]{0,8}\)"
    )
    for word in (r"log_?in", "authenticate")  # each starts with a literal: found fast
)
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-$")
WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_UNQUOTED = re.compile(r"[^\s,;#)}\]\"'`]{1,8192}")
_ANNOTATION = re.compile(r"[A-Za-z_][\w.\[\], |]{0,40}?[ \t]{0,3}=(?![=>])[ \t]{0,4}")
IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s")
_CODE_CHARS = re.compile(r"[()\[\]{}<>]")
_WORD_ONLY = re.compile(r"[A-Za-z_.-]+")
_CHAINED = re.compile(r"[A-Za-z_][\w.-]*=")
_REGEX_SYNTAX = re.compile(r"\\[wdsWDSbB]|\[[^\]]{1,80}\][*+?{]")

# Word -> kind of secret it names.
_SECRET_WORDS: dict[str, str] = {
    "password": "password",
    "passwd": "password",
    "passwort": "password",
    "passphrase": "password",
    "pwd": "password",
    "pass": "password",
    "secret": "secret",
    "token": "token",
    "credential": "credential",
    "credentials": "credential",
    "creds": "credential",
    "apikey": "api-key",
    "privatekey": "api-key",
    "secretkey": "secret",
    "accesskey": "api-key",
    "authtoken": "token",
    "accesstoken": "token",
    "refreshtoken": "token",
    "apitoken": "token",
    "clientsecret": "secret",
    "apisecret": "secret",
    "authkey": "api-key",
    "masterkey": "api-key",
}
_COMPOUND_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey", "secretkey")
# `<qualifier>_key` names a secret; a plain `key` does not (dict keys, sort keys...).
_KEY_QUALIFIERS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "signing",
        "encryption",
        "encrypt",
        "master",
        "client",
        "app",
        "auth",
        "session",
        "account",
        "storage",
        "subscription",
        "license",
        "service",
        "shared",
        "webhook",
        "admin",
        "deploy",
        "consumer",
        "hmac",
        "jwt",
    }
)
# Words allowed after the secret word: `password_prod` is a password, `password_hash` is not.
_TRAILERS = frozenset(
    {
        "value",
        "val",
        "str",
        "string",
        "b64",
        "base64",
        "hex",
        "raw",
        "plain",
        "plaintext",
        "enc",
        "encrypted",
        "key",
        "secret",
        "prod",
        "production",
        "dev",
        "development",
        "staging",
        "stage",
        "local",
        "live",
        "default",
        "main",
        "primary",
        "secondary",
        "old",
        "new",
        "current",
        "override",
        "env",
    }
)
# Words before `token` that make it a lexer/tokenizer/pagination token, not a credential.
_NOT_CREDENTIAL_TOKEN = frozenset(
    {
        "next",
        "page",
        "continuation",
        "sync",
        "start",
        "end",
        "last",
        "first",
        "prev",
        "previous",
        "cur",
        "current",
        "max",
        "min",
        "num",
        "total",
        "eos",
        "bos",
        "pad",
        "unk",
        "sep",
        "cls",
        "mask",
        "special",
        "stop",
        "new",
        "sentinel",
        "cancellation",
        "cancel",
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
    ".env",
    ".ini",
    ".cfg",
    ".conf",
    ".properties",
    ".yaml",
    ".yml",
    ".toml",
    ".envrc",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".tfvars",
    ".secrets",
    ".credentials",
    ".dotenv",
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


def name_words(name: str) -> list[str]:
    return [w.lower() for w in WORDS.findall(name)]


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
        if IDENTIFIER.fullmatch(value) and (not config_like or "." in value):
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


def is_config_path(path: str | None) -> bool:
    if not path:
        return False
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name.startswith(".env") or name.endswith(_CONFIG_SUFFIXES) or name in ("credentials", "config")


def find_generic(text: str, lowered: str, config_like: bool, hits: list[Hit]) -> None:
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
        kind = _secret_kind(name_words(text[key_start:key_end]))
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
            hits.append(Hit(GENERIC_TIER, "secret", _RULE_FOR_KIND[kind], "generic-assignment", start, end))
    for m in _XML_ADD.finditer(lowered):
        kind = _secret_kind(name_words(text[m.start("key") : m.end("key")]))
        start, end = m.span("value")
        value = text[start:end].strip()
        start = text.find(value, start, end) if value else start
        if kind and _generic_value_ok(value, kind, True, True):
            hits.append(
                Hit(GENERIC_TIER, "secret", _RULE_FOR_KIND[kind], "generic-assignment", start, start + len(value))
            )
    for m in (m for regex in _LOGIN_CALLS for m in regex.finditer(lowered)):
        if m.start() > 0 and lowered[m.start() - 1].isalnum():
            continue  # `catalogin(`, `blogin(`: not a login call
        start, end = m.span("value")
        if _generic_value_ok(text[start:end], "password", True, False):
            hits.append(Hit(GENERIC_TIER, "secret", "generic-password", "generic-assignment", start, end))
    if "</" in text:
        for m in _XML_SECRET.finditer(lowered):
            kind = _secret_kind(name_words(text[m.start("tag") : m.end("tag")].replace(":", "_")))
            start, end = m.span("value")
            if kind and _generic_value_ok(text[start:end], kind, True, True):
                hits.append(Hit(GENERIC_TIER, "secret", _RULE_FOR_KIND[kind], "generic-assignment", start, end))
