"""Secret-detection rules, as data, plus the small helpers they share.

Each rule is one regex with a named group ``secret`` (the span that is reported and
redacted) and optionally ``body`` (the random part that placeholder words are checked
against, so that ``sk_test_`` keys still count while ``sk_test_EXAMPLE`` does not).

Speed is the main design constraint (the scanner runs on every routed request), and it
rests on how CPython's ``re`` searches: a pattern that *starts with a literal* is found
with a fast substring search (~0.3 ms per MB), while a pattern that starts with a
character class, a lookbehind, ``\\b`` or an ``(?i)`` alternation is tried at every
position (10-100x slower). So:

* token rules start with their literal prefix (``ghp_``, ``xoxb-``...) and check the
  "not glued to a longer word" condition in Python (``boundary``) instead of ``\\b``;
* context rules ("a Heroku key is a UUID assigned to something named *heroku*") run on
  the lower-cased text, start with the lower-case keyword, and re-check the value's
  exact shape on the original text with ``value_re``;
* rules whose distinctive literal sits in the middle (Discord's ``.``-separated parts,
  Mailchimp's ``-us12``) give that literal as an ``anchor`` and are searched only in a
  small window around each anchor hit;
* most rules do not even see the whole text: a token is a run of ``TOKEN_CHARS``, so
  ``scope="tokens"`` rules run on the text's long runs of those only, and context rules
  (``scope="lines"``) on the lines that hold such a run: a few percent of typical code.

All quantifiers are bounded, so no rule can backtrack catastrophically.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Validator = Callable[[str], bool]
Scope = Literal["text", "tokens", "lines"]


@dataclass(frozen=True, slots=True)
class SecretRule:
    id: str
    family: str
    regex: re.Pattern[str]
    on_lower: bool = False  # run on the lower-cased text (case-insensitive keywords, fast)
    value_re: re.Pattern[str] | None = None  # exact shape of the value, on the original text
    validator: Validator | None = None  # checksum / structure check on the value
    min_entropy: float = 0.0  # Shannon bits per char of the body, to skip "aaaa..."-ish values
    boundary: bool = False  # the secret must not be glued to a preceding word character
    placeholder_check: bool = True  # skip values that are obviously placeholders
    anchor: re.Pattern[str] | None = None  # fast literal to find first; regex runs around it
    window: int = 0  # characters searched on each side of an anchor hit
    tier: int = 0  # 0 = provider-specific; 1 = structural (URLs, headers); wins over lower
    # Where the rule runs: "text" (everything), "tokens" (the whole match is token characters,
    # so only the long runs of them are searched) or "lines" (the value is a long token and
    # sits on one line with its name, so only lines holding a long token are searched).
    scope: Scope = "text"


def shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


# --- placeholders -----------------------------------------------------------------------

# Words that mark documentation, fixtures and templates rather than live credentials.
# Matched case-insensitively anywhere in the value (or in its random body).
_PLACEHOLDER_WORDS = re.compile(
    r"example|dummy|test|fake|sample|placeholder|redacted|changeme|change_me|change-me"
    r"|your[_-]|yourkey|yourtoken|yourpass|yoursecret|insert[_-]|replace[_-]?me|todo|fixme"
    r"|xxxx|\*\*\*|•••|\.\.\.|<[^>]{0,60}>|\$\{|\$\(|\{\{|\{%|%\([\w.]*\)|%[sd]\b"
    r"|\{[A-Za-z_][\w.]{0,40}\}|\benviron\b|getenv|process\.env|os\.env|\bsecrets\.",
    re.IGNORECASE,
)
# Literal non-values that show up on the right of `password =`.
_NON_VALUES = frozenset(
    {
        "",
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "empty",
        "n/a",
        "na",
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "key",
        "string",
        "str",
        "required",
        "optional",
        "hidden",
        "omitted",
        "unset",
        "default",
        "value",
        "values",
        "your_password",
        "mypassword",
        "my_password",
        "secret_key",
        "foo",
        "bar",
        "baz",
        "qux",
        "user",
        "username",
        "admin",
        "root",
        "guest",
        "login",
    }
)
# Passwords that only ever appear as examples (and in breach top-10 lists).
_EXAMPLE_PASSWORDS = re.compile(
    r"(?i)(?:passw[o0]rd|pass|secret|token|admin|root|qwerty|letmein|hunter|welcome|abc|iloveyou)\d{0,6}[!.]?|\d{4,9}"
)


def is_placeholder(value: str) -> bool:
    """True for values that are templates, references or filler rather than secrets."""
    stripped = value.strip().strip("\"'`")
    if stripped.lower() in _NON_VALUES:
        return True
    if len(set(stripped)) <= 2:  # "xxxxxxxx", "00000000", "abababab"
        return True
    if stripped.startswith("$"):  # $VAR, ${VAR}, $(cmd)
        return True
    if _EXAMPLE_PASSWORDS.fullmatch(stripped):
        return True
    return _PLACEHOLDER_WORDS.search(stripped) is not None


# --- validators ---------------------------------------------------------------------------


def _b64decode(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def valid_jwt(value: str) -> bool:
    """Header and payload must decode to JSON objects; the header names an algorithm."""
    parts = value.split(".")
    if len(parts) != 3:
        return False
    decoded = [_b64decode(p) for p in parts[:2]]
    try:
        header, payload = (json.loads(d) if d is not None else None for d in decoded)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and isinstance(payload, dict) and ("alg" in header or "typ" in header)


def valid_discord_token(value: str) -> bool:
    """The first part of a Discord bot token is the base64 of the bot's numeric user id."""
    raw = _b64decode(value.split(".", 1)[0])
    return raw is not None and 15 <= len(raw) <= 20 and raw.isdigit()


def valid_basic_auth(value: str) -> bool:
    """`Basic` credentials are base64("user:password") in printable ASCII."""
    if len(value) % 4:
        return False
    try:
        raw = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    user, sep, password = raw.partition(":")
    return bool(sep and user and password and raw.isprintable() and not is_placeholder(password))


_PEM_NOISE = re.compile(r"\\[nr]|\s|Proc-Type:[^\n]*|DEK-Info:[^\n]*|Comment:[^\n]*|Version:[^\n]*")


def valid_pem_body(value: str) -> bool:
    """A real key body is a long run of base64, not '...' or a sentence."""
    start = value.find("-----", 10)  # end of the BEGIN line
    end = value.find("-----END", start + 5)
    body = _PEM_NOISE.sub("", value[start + 5 : end if end > 0 else len(value)])
    return len(body) >= 64 and re.fullmatch(r"[A-Za-z0-9+/=]+", body) is not None


_WORDISH = re.compile(r"[A-Za-z][a-z]{3,}")


def unreadable_key_body(value: str) -> bool:
    """A private-key block whose body is not base64 (mangled, re-encoded, pasted through a
    chat) but is not code or prose either: long, varied, few pronounceable words. Code
    between a header constant and a footer constant reads as words."""
    start = value.find("-----", 10) + 5
    end = value.rfind("-----END", start)
    body = "".join(value[start : end if end > 0 else len(value) - 8].split())
    if len(body) < 64 or "..." in body or shannon_entropy(body) < 4.0:
        return False
    words = sum(
        len(w) for w in _WORDISH.findall(body) if 0.25 <= sum(c in "aeiouy" for c in w.lower()) / len(w) <= 0.65
    )
    return words < 0.25 * len(body)


def has_digit_and_letter(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def mixed_token(value: str) -> bool:
    """Random tokens mix letters and digits; identifiers and words usually do not."""
    return has_digit_and_letter(value) and shannon_entropy(value) >= 3.0


def random_mixed_case(value: str) -> bool:
    """Letters-only tokens (Hugging Face) are told from CamelCase names by how often case flips."""
    flips = sum(a.isupper() != b.isupper() for a, b in itertools.pairwise(value))
    return shannon_entropy(value) >= 3.8 and flips >= 0.3 * (len(value) - 1)


def random_letters(value: str) -> bool:
    """Letters-only token bodies: mixed case that flips often, or one case that is varied
    enough not to be a word (34 random lower-case letters carry ~4.3 bits per letter)."""
    body = value.rsplit("_", 1)[-1]
    if body.islower() or body.isupper():
        return shannon_entropy(body) >= 3.8
    return random_mixed_case(body)


def random_parts(value: str) -> bool:
    """Every long part of a dotted token is random (JWT-shaped tokens whose parts do not
    decode: `ey...` `.` `ey...` `.` signature)."""
    parts = [p for p in value.split(".") if len(p) >= 16]
    return len(parts) >= 2 and all(shannon_entropy(p) >= 3.5 and has_digit_and_letter(p) for p in parts)


def _not_port(value: str) -> bool:
    # `host:8080@...` style false matches: a short all-digit "password" is a port.
    return not (value.isdigit() and len(value) <= 5)


def valid_url_password(value: str) -> bool:
    # `host:8080/path?to=a@b`: a port and a path before an `@` in the path, not a password.
    head = value.split("/", 1)[0]
    if "/" in value and (head.isdigit() or not head):
        return False
    return _not_port(value) and not value.startswith("%") and not is_placeholder(value)


# --- rule construction ---------------------------------------------------------------------

# (New patterns use possessive quantifiers, `{m,n}+`, where what follows cannot be matched by
# the repeated class: the same matches, without retrying every shorter length on a miss.)

# Characters a token can contain (base64, base64url, `.`/`:`/`$`/`~` separators used by some
# providers). Rules scoped to "tokens" only run on maximal runs of these, of length >=
# MIN_TOKEN_RUN (shorter than any token or context value the rules accept).
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/=$:~")
MIN_TOKEN_RUN = 16

# Separator between a key name and its value, in code, JSON, YAML, TOML, INI, .env and
# shell: optional closing quote/bracket, `=`, `:`, `:=`, `=>`, then an optional opening quote
# (with a bytes/raw string prefix).
_SEP = r"""["'\]]{0,2}\s{0,4}(?::=|=>|=|:)\s{0,4}(?:[bru]{0,2}["'`]|)\s{0,2}"""
# The rest of an identifier after a context keyword: lazy so the separator is found early.
_REST = r"[\w.-]{0,40}?"


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def token(
    id: str,
    family: str,
    pattern: str,
    *,
    validator: Validator | None = None,
    min_entropy: float = 0.0,
    boundary: bool = True,
    placeholder_check: bool = True,
    anchor: str | None = None,
    window: int = 0,
    tier: int = 0,
    scope: Scope = "tokens",
) -> SecretRule:
    """A rule matched on the original text (case matters: prefixes, checksums).

    The default scope says the match contains only token characters (`TOKEN_CHARS`), so it
    only needs to run on the text's long tokens, not all of it."""
    return SecretRule(
        id,
        family,
        _c(pattern),
        validator=validator,
        min_entropy=min_entropy,
        boundary=boundary,
        placeholder_check=placeholder_check,
        anchor=_c(anchor) if anchor else None,
        window=window,
        tier=tier,
        scope=scope,
    )


def context(
    id: str,
    family: str,
    keys: str,
    value: str,
    *,
    value_re: str | None = None,
    validator: Validator | None = None,
    min_entropy: float = 0.0,
    after_key: str = "",
) -> tuple[SecretRule, ...]:
    """A value of a given shape assigned to a name containing one of `keys` ("a|b", lower-case).

    One rule per keyword, so that each regex starts with a literal. `after_key` is an extra
    lower-case fragment that must follow the keyword inside the name (e.g. `secret` for
    AWS), so `aws_region = ...` does not count."""
    middle = f"{_REST}{after_key}{_REST}" if after_key else _REST
    return tuple(
        SecretRule(
            id,
            family,
            _c(rf"{re.escape(key)}{middle}{_SEP}(?P<secret>{value})(?![\w+/=-])"),
            on_lower=True,
            value_re=_c(value_re) if value_re else None,
            validator=validator,
            min_entropy=min_entropy,
            scope="lines",
        )
        for key in keys.split("|")
    )


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

RULES: tuple[SecretRule, ...] = (
    # ---------------------------------------------------------------- cloud
    token("aws-access-key-id", "cloud", r"A(?:KIA|SIA|BIA|CCA)(?P<body>[A-Z2-7]{16})(?![A-Za-z0-9])"),
    *context(
        "aws-secret-access-key",
        "cloud",
        "aws",
        r"[a-z0-9/+]{40}",
        after_key="secret",
        value_re=r"[A-Za-z0-9/+]{40}",
        min_entropy=4.0,
    ),
    *context(
        "aws-secret-access-key",
        "cloud",
        "secret_access_key|secretaccesskey|secret-access-key",
        r"[a-z0-9/+]{40}",
        value_re=r"[A-Za-z0-9/+]{40}",
        min_entropy=4.0,
    ),
    token(
        "gcp-service-account",
        "cloud",
        r'"private_key"\s{0,4}:\s{0,4}"(?P<secret>-----BEGIN (?:RSA )?PRIVATE KEY-----'
        r'[A-Za-z0-9+/=\\\s]{64,8000}-----END (?:RSA )?PRIVATE KEY-----(?:\\n)?)"',
        validator=valid_pem_body,
        boundary=False,
        placeholder_check=False,
        scope="text",
    ),
    token(
        "gcp-service-account-key-id",
        "cloud",
        r'"private_key_id"\s{0,4}:\s{0,4}"(?P<secret>[0-9a-f]{40})"',
        boundary=False,
        scope="text",
    ),
    token("gcp-api-key", "cloud", r"AIza(?P<body>[0-9A-Za-z_-]{35})(?![\w-])", min_entropy=3.5),
    token("gcp-oauth-client-secret", "cloud", r"GOCSPX-(?P<body>[A-Za-z0-9_-]{28})(?![\w-])"),
    token("google-oauth-access-token", "cloud", r"ya29\.(?P<body>[0-9A-Za-z_-]{30,400})(?![\w-])", min_entropy=3.5),
    *(
        token(
            "azure-storage-account-key",
            "cloud",
            prefix + r"\s{0,2}=\s{0,2}(?P<secret>[A-Za-z0-9+/]{42,86}={0,2})(?![A-Za-z0-9+/=])",
            boundary=False,
            min_entropy=4.0,
            scope="lines",
        )
        for prefix in ("AccountKey", "SharedAccessKey")
    ),
    token(
        "azure-sas-token",
        "cloud",
        r"sv=\d{4}-\d\d-\d\d&[^\s\"'<>]{0,300}?sig=(?P<secret>[A-Za-z0-9%+/]{30,120})",
        boundary=False,
        scope="lines",
    ),
    token(
        "azure-ad-client-secret",
        "cloud",
        r"(?<![\w~.-])(?P<secret>[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?![\w~.-])",
        anchor=r"Q~",
        window=40,
        min_entropy=3.5,
    ),
    token("digitalocean-token", "cloud", r"do[opr]_v1_(?P<body>[a-f0-9]{64})(?![\w-])"),
    *context("heroku-api-key", "cloud", "heroku", _UUID),
    token("heroku-api-key", "cloud", r"HRKU-(?P<body>[A-Za-z0-9_-]{30,80})(?![\w-])"),
    token("alibaba-access-key-id", "cloud", r"LTAI(?P<body>[A-Za-z0-9]{12,20})(?![\w-])", validator=mixed_token),
    *context(
        "alibaba-access-key-secret",
        "cloud",
        "alibaba|aliyun|alicloud",
        r"[a-z0-9]{30}",
        after_key="secret",
        value_re=r"[A-Za-z0-9]{30}",
        min_entropy=3.5,
    ),
    *context("ibm-cloud-api-key", "cloud", "ibm", r"[a-z0-9_-]{44}", value_re=r"[A-Za-z0-9_-]{44}", min_entropy=4.0),
    *context(
        "cloudflare-api-token",
        "cloud",
        "cloudflare|cf_api|cf-api|cf_token|cf_key",
        r"[a-z0-9_-]{40}|[a-f0-9]{37}",
        value_re=r"[A-Za-z0-9_-]{40}|[a-f0-9]{37}",
        min_entropy=3.5,
    ),
    token("databricks-token", "cloud", r"dapi(?P<body>[a-f0-9]{32})(?:-\d)?(?![\w-])"),
    token("supabase-token", "cloud", r"sbp_(?P<body>[a-f0-9]{40})(?![\w-])"),
    token(
        "firebase-fcm-server-key",
        "cloud",
        r"(?<![\w-])(?P<secret>AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{134})(?![\w-])",
        anchor=r":APA91b",
        window=150,
    ),
    # ---------------------------------------------------------------- version control
    token("github-pat", "vcs", r"ghp_(?P<body>[A-Za-z0-9]{36})(?![\w-])"),
    token("github-oauth-token", "vcs", r"gho_(?P<body>[A-Za-z0-9]{36})(?![\w-])"),
    token("github-app-token", "vcs", r"gh[us]_(?P<body>[A-Za-z0-9]{36})(?![\w-])"),
    token("github-refresh-token", "vcs", r"ghr_(?P<body>[A-Za-z0-9]{36,76})(?![\w-])"),
    token("github-fine-grained-pat", "vcs", r"github_pat_(?P<body>[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?![\w-])"),
    token("gitlab-pat", "vcs", r"glpat-(?P<body>[A-Za-z0-9_-]{20,64})(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?(?![\w-])"),
    token("gitlab-deploy-token", "vcs", r"gldt-(?P<body>[A-Za-z0-9_-]{20,64})(?![\w-])"),
    token("gitlab-runner-token", "vcs", r"glrt-(?P<body>[A-Za-z0-9_-]{20,64})(?![\w-])"),
    token("gitlab-runner-token", "vcs", r"GR1348941(?P<body>[A-Za-z0-9_-]{20,64})(?![\w-])"),
    token("gitlab-token", "vcs", r"gl(?:ptt|ft|soat|imt|cbt|oas|agent)-(?P<body>[A-Za-z0-9_-]{20,64})(?![\w-])"),
    token(
        "gitlab-incoming-email-token",
        "vcs",
        # A project's reply-by-email address carries a per-user token.
        r"incoming\+(?:[A-Za-z0-9._-]{1,100}-)?\d{1,24}-(?P<secret>[A-Za-z0-9_-]{12,64})-(?:issue(?:-\d{1,20})?|merge-request)@",
        min_entropy=3.0,
        boundary=False,
        scope="lines",  # `incoming+...-issue` is one long run of token characters
    ),
    token("bitbucket-app-password", "vcs", r"ATBB(?P<body>[A-Za-z0-9_=.-]{28,64})(?![\w=.-])", min_entropy=3.5),
    *context(
        "bitbucket-app-password",
        "vcs",
        "bitbucket",
        r"[a-z0-9]{18,24}",
        value_re=r"[A-Za-z0-9]{18,24}",
        validator=mixed_token,
    ),
    # ---------------------------------------------------------------- chat
    token("slack-bot-token", "chat", r"xoxb-(?P<body>[0-9]{8,13}-[0-9]{8,13}-[A-Za-z0-9]{20,40})(?![\w-])"),
    token("slack-user-token", "chat", r"xoxp-(?P<body>(?:[0-9]{6,13}-){2,3}[A-Za-z0-9]{20,40})(?![\w-])"),
    token("slack-app-token", "chat", r"xapp-\d-(?P<body>[A-Z0-9]{8,14}-[0-9]{8,24}-[A-Za-z0-9]{16,70}+)(?![\w-])"),
    token("slack-legacy-token", "chat", r"xox[aeors]-(?P<body>(?:[0-9]{1,13}-){0,3}[A-Za-z0-9]{8,64})(?![\w-])"),
    # Legacy user tokens: three numeric ids and a hex tail, which may be short.
    token(
        "slack-legacy-token",
        "chat",
        r"xox[os]-(?P<body>[0-9]{4,30}-[0-9]{4,30}-[0-9]{4,30}-[a-fA-F0-9]{2,64}+)(?![\w-])",
        min_entropy=3.0,
    ),
    token(
        "slack-webhook",
        "chat",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/(?P<body>[A-Za-z0-9+/_-]{30,120})",
    ),
    token(
        "discord-bot-token",
        "chat",
        r"(?<![\w-])(?P<secret>[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38})(?![\w-])",
        anchor=r"\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27}",
        window=45,
        validator=valid_discord_token,
    ),
    token(
        "discord-webhook",
        "chat",
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/(?P<body>[A-Za-z0-9_-]{60,80})",
    ),
    token(
        "telegram-bot-token",
        "chat",
        r"(?<![\w:-])(?P<secret>[0-9]{8,10}:AA[A-Za-z0-9_-]{33})(?![\w-])",
        anchor=r":AA[A-Za-z0-9_-]{33}",
        window=12,
    ),
    token(
        "teams-webhook",
        "chat",
        r"https://[a-z0-9-]{1,60}\.webhook\.office\.com/webhookb2/[A-Za-z0-9-]{36}@[A-Za-z0-9-]{36}/IncomingWebhook/(?P<body>[A-Za-z0-9]{32}/[A-Za-z0-9-]{36})(?:/[A-Za-z0-9_-]{20,80})?",
        anchor=r"\.webhook\.office\.com/",
        window=200,
        scope="lines",
    ),
    # ---------------------------------------------------------------- messaging (email, SMS)
    token("twilio-api-key", "messaging", r"SK(?P<body>[0-9a-fA-F]{32})(?![\w-])", min_entropy=3.0),
    *context("twilio-account-sid", "messaging", "twilio", r"ac[0-9a-f]{32}", value_re=r"AC[0-9a-f]{32}"),
    *context(
        "twilio-auth-token",
        "messaging",
        "twilio",
        r"[0-9a-f]{32}",
        after_key="(?:auth|token|secret)",
        value_re=r"[0-9a-f]{32}",
        min_entropy=3.0,
    ),
    token("sendgrid-api-key", "messaging", r"SG\.(?P<body>[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})(?![\w-])"),
    *context(
        "mailgun-api-key",
        "messaging",
        "mailgun",
        r"key-[0-9a-f]{32}|[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8}",
        value_re=r"key-[0-9a-f]{32}|[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8}",
    ),
    token(
        "mailchimp-api-key",
        "messaging",
        r"(?<![\w-])(?P<secret>[0-9a-f]{32}-us[0-9]{1,2})(?![\w-])",
        anchor=r"-us[0-9]",
        window=34,
        min_entropy=3.0,
    ),
    token("brevo-api-key", "messaging", r"xkeysib-(?P<body>[a-f0-9]{64}-[A-Za-z0-9]{16})(?![\w-])"),
    # ---------------------------------------------------------------- payment
    token("stripe-secret-key", "payment", r"sk_(?:live|test)_(?P<body>[A-Za-z0-9]{24,247})(?![\w-])"),
    token("stripe-restricted-key", "payment", r"rk_(?:live|test)_(?P<body>[A-Za-z0-9]{24,247})(?![\w-])"),
    token("stripe-webhook-secret", "payment", r"whsec_(?P<body>[A-Za-z0-9+/=]{32,100})(?![\w-])"),
    token("square-access-token", "payment", r"sq0atp-(?P<body>[A-Za-z0-9_-]{22,60})(?![\w-])"),
    token("square-access-token", "payment", r"EAAA(?P<body>[A-Za-z0-9_-]{60})(?![\w-])", min_entropy=4.0),
    # Flutterwave: `FLWSECK-`/`FLWPUBK-` (live) and `..._TEST-` (test mode) keys.
    token(
        "flutterwave-key", "payment", r"FLW(?:SEC|PUB)K(?:_TEST)?-(?P<body>[a-hA-H0-9]{32})-X(?![\w-])", min_entropy=2.5
    ),
    token("flutterwave-key", "payment", r"FLWSECK(?:_TEST)?-(?P<body>[a-hA-H0-9]{12})(?![\w-])", min_entropy=2.5),
    token("easypost-api-key", "payment", r"EZ[AT]K(?P<body>[A-Za-z0-9]{54})(?![\w-])", min_entropy=3.5),
    token("square-oauth-secret", "payment", r"sq0csp-(?P<body>[A-Za-z0-9_-]{43})(?![\w-])"),
    token(
        "braintree-access-token",
        "payment",
        r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$(?P<body>[0-9a-f]{32})",
    ),
    token("shopify-access-token", "payment", r"shpat_(?P<body>[a-fA-F0-9]{32})(?![\w-])"),
    token("shopify-custom-app-token", "payment", r"shpca_(?P<body>[a-fA-F0-9]{32})(?![\w-])"),
    token("shopify-private-app-password", "payment", r"shppa_(?P<body>[a-fA-F0-9]{32})(?![\w-])"),
    token("shopify-shared-secret", "payment", r"shpss_(?P<body>[a-fA-F0-9]{32})(?![\w-])"),
    # ---------------------------------------------------------------- AI providers
    token(
        "openai-api-key",
        "ai",
        r"sk-(?:(?:proj|svcacct|admin|None)-(?P<body>[A-Za-z0-9_-]{40,250})|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})(?![\w-])",
    ),
    token("anthropic-api-key", "ai", r"sk-ant-[a-z]{2,8}\d{0,3}-(?P<body>[A-Za-z0-9_-]{40,200})(?![\w-])"),
    token("huggingface-token", "ai", r"hf_(?P<body>[A-Za-z0-9]{34,40}+)(?![\w-])", validator=random_letters),
    token("huggingface-token", "ai", r"api_org_(?P<body>[A-Za-z0-9]{34,40}+)(?![\w-])", validator=random_letters),
    token("replicate-api-token", "ai", r"r8_(?P<body>[A-Za-z0-9]{37})(?![\w-])", validator=mixed_token),
    token("groq-api-key", "ai", r"gsk_(?P<body>[A-Za-z0-9]{52})(?![\w-])", validator=mixed_token),
    # ---------------------------------------------------------------- package registries
    token("npm-token", "registry", r"npm_(?P<body>[A-Za-z0-9]{36})(?![\w-])", validator=mixed_token),
    token(
        "pypi-token",
        "registry",
        r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)(?P<body>[A-Za-z0-9_-]{50,250})(?![\w-])",
    ),
    token("dockerhub-pat", "registry", r"dckr_(?:pat|oat)_(?P<body>[A-Za-z0-9_-]{27,60})(?![\w-])"),
    token("rubygems-api-key", "registry", r"rubygems_(?P<body>[a-f0-9]{48})(?![\w-])"),
    # ---------------------------------------------------------------- observability
    *context(
        "datadog-api-key",
        "observability",
        "datadog|dd_api|dd_app|dd-api|dd-app|ddapi|ddapp",
        r"[a-f0-9]{40}|[a-f0-9]{32}",
        value_re=r"[a-f0-9]{32}|[a-f0-9]{40}",
        min_entropy=3.0,
    ),
    token("newrelic-user-api-key", "observability", r"NRAK-(?P<body>[A-Z0-9]{27})(?![\w-])"),
    token("newrelic-insert-key", "observability", r"NRII-(?P<body>[A-Za-z0-9_-]{32})(?![\w-])"),
    token("newrelic-browser-key", "observability", r"NRJS-(?P<body>[a-f0-9]{19})(?![\w-])"),
    token(
        "newrelic-license-key",
        "observability",
        r"(?<![\w-])(?P<secret>[a-fA-F0-9]{36}NRAL)(?![\w-])",
        anchor="NRAL",
        window=40,
    ),
    token(
        "sentry-dsn-secret",
        "observability",
        r"https?://[0-9a-f]{32}:(?P<secret>[0-9a-f]{32})@[\w.-]{0,100}sentry[\w.-]{0,100}",
        anchor=r"sentry",
        window=200,
        boundary=False,
        scope="lines",
    ),
    token("sentry-auth-token", "observability", r"sntry[su]_(?P<body>[A-Za-z0-9+/=_-]{60,400})(?![\w-])"),
    token("grafana-cloud-token", "observability", r"glc_(?P<body>[A-Za-z0-9+/]{32,400}={0,2})(?![\w-])"),
    token("grafana-service-account-token", "observability", r"glsa_(?P<body>[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})(?![\w-])"),
    token("grafana-api-key", "observability", r"eyJrIjoi(?P<body>[A-Za-z0-9]{70,400}={0,2})(?![\w-])"),
    # ---------------------------------------------------------------- identity, dev tools, SaaS
    *context(
        "okta-api-token", "identity", "okta", r"00[a-z0-9_-]{40}", value_re=r"00[A-Za-z0-9_-]{40}", min_entropy=3.5
    ),
    token("atlassian-api-token", "devtools", r"ATATT(?P<body>[A-Za-z0-9_=+/.-]{50,300})(?![\w=+/.-])", min_entropy=4.0),
    *context(
        "atlassian-api-token",
        "devtools",
        "atlassian|jira|confluence",
        r"[a-z0-9]{24}",
        value_re=r"[A-Za-z0-9]{24}",
        validator=mixed_token,
    ),
    token("postman-api-key", "devtools", r"PMAK-(?P<body>[a-f0-9]{24}-[a-f0-9]{34})(?![\w-])"),
    token("linear-api-key", "devtools", r"lin_api_(?P<body>[A-Za-z0-9]{40})(?![\w-])"),
    token("notion-token", "devtools", r"secret_(?P<body>[A-Za-z0-9]{43})(?![\w-])", validator=mixed_token),
    token("notion-token", "devtools", r"ntn_(?P<body>[0-9]{11}[A-Za-z0-9]{35})(?![\w-])"),
    token("airtable-pat", "devtools", r"pat(?P<body>[A-Za-z0-9]{14}\.[a-f0-9]{64})(?![\w-])"),
    token(
        "asana-pat",
        "devtools",
        r"(?<![\w/-])(?P<secret>[0-9]/[0-9]{13,20}(?:/[0-9]{13,20})?:[A-Za-z0-9]{32})(?![\w-])",
        anchor=r"/[0-9]{13}",
        window=70,
        validator=mixed_token,
    ),
    token("dropbox-token", "devtools", r"sl\.(?:u\.)?(?P<body>[A-Za-z0-9_-]{130,1400})(?![\w-])", min_entropy=4.0),
    token("mapbox-secret-token", "devtools", r"sk\.eyJ(?P<body>[A-Za-z0-9_-]{20,300}\.[A-Za-z0-9_-]{20,40})(?![\w-])"),
    # ---------------------------------------------------------------- infrastructure
    token("vault-token", "infra", r"hv[sbr]\.(?P<body>[A-Za-z0-9_-]{24,300})(?![\w-])", min_entropy=3.5),
    token(
        "terraform-cloud-token",
        "infra",
        r"(?<![\w-])(?P<secret>[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})(?![\w-])",
        anchor=r"\.atlasv1\.",
        window=80,
    ),
    token("pulumi-access-token", "infra", r"pul-(?P<body>[a-f0-9]{40})(?![\w-])"),
    token("doppler-token", "infra", r"dp\.(?:pt|st|sa|ct|scim|audit)\.(?P<body>[A-Za-z0-9]{40,44})(?![\w-])"),
    token("planetscale-token", "infra", r"pscale_(?:tkn|pw|oauth)_(?P<body>[A-Za-z0-9_.-]{32,64})(?![\w-])"),
    token("openshift-token", "infra", r"sha256~(?P<body>[A-Za-z0-9_-]{43})(?![\w-])", min_entropy=3.5),
    token(
        "flyio-token",
        "infra",
        r"FlyV1[ \t](?P<body>[A-Za-z0-9=_,/+-]{100,4000})",
        min_entropy=4.0,
        scope="lines",
    ),
    # ---------------------------------------------------------------- more SaaS formats
    token(
        "dropbox-token",
        "devtools",
        # Long-lived tokens: 11 characters, ten `A`s, 43 more.
        r"(?<![\w-])(?P<secret>[A-Za-z0-9]{11}AAAAAAAAAA[A-Za-z0-9_=-]{43})(?![\w=-])",
        anchor="AAAAAAAAAA",
        window=60,
        min_entropy=3.5,
    ),
    token(
        "salesforce-access-token",
        "devtools",
        # An org id (`00D...`), `!`, then the session part.
        r"(?<![\w!])(?P<secret>00[A-Za-z0-9]{13}![A-Za-z0-9._-]{80,260}+)(?![\w.-])",
        anchor="!",
        window=280,
        min_entropy=3.5,
        scope="lines",
    ),
    *(
        token(
            "facebook-app-access-token",
            "devtools",
            # `app id|app secret` (also with the bar URL-encoded or mangled to `%`)
            r"(?<![\w|%])(?P<secret>\d{15,16}(?:\||%7[Cc]|%)[0-9A-Za-z_-]{27,40}+)(?![\w-])",
            anchor=anchor,  # the separator and the secret: starts with a literal, found fast
            window=60,
            validator=mixed_token,
            min_entropy=3.5,
            scope="lines",
        )
        for anchor in (r"\|[0-9A-Za-z_-]{27}", r"%[0-9A-Za-z_-]{27}")
    ),
    token(
        "facebook-page-access-token", "devtools", r"EAA[MC](?P<body>[A-Za-z0-9]{100,400}+)(?![\w-])", min_entropy=4.0
    ),
    token(
        "tableau-personal-access-token",
        "devtools",
        r"(?<![A-Za-z0-9+/])(?P<secret>[A-Za-z0-9+/]{22}==:[A-Za-z0-9]{32})(?![\w-])",
        anchor="==:",
        window=40,
        validator=mixed_token,
        min_entropy=3.5,
    ),
    SecretRule(
        "gc-notify-api-key",
        "messaging",
        # Canada's GC Notify: `gcntfy-<name>-<service uuid>-<secret uuid>`.
        _c(
            r"gcntfy-[a-z0-9_-]{1,60}?-(?P<secret>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
        ),
        on_lower=True,
        scope="lines",
    ),
    # ---------------------------------------------------------------- private keys
    token(
        "private-key",
        "private-key",
        r"-----BEGIN[ A-Z0-9]{0,20} PRIVATE KEY(?: BLOCK)?-----"
        r"(?:Proc-Type:[^\n]{0,80}|DEK-Info:[^\n]{0,120}|Version:[^\n]{0,80}|Comment:[^\n]{0,120}|[A-Za-z0-9+/=\s]|\\[nr]){64,16000}"
        r"(?:-----END[ A-Z0-9]{0,20} PRIVATE KEY(?: BLOCK)?-----)?",
        validator=valid_pem_body,
        boundary=False,
        scope="text",
        placeholder_check=False,
    ),
    token(
        "private-key",
        "private-key",
        r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\s\S]{64,16000}?KEY(?: BLOCK)?-----",
        validator=unreadable_key_body,
        boundary=False,
        scope="text",
        placeholder_check=False,
    ),
    token(
        "putty-private-key",
        "private-key",
        r"PuTTY-User-Key-File-\d: [\w-]{1,40}\s[\s\S]{0,12000}?Private-MAC: [0-9a-f]{40,64}",
        boundary=False,
        scope="text",
        anchor="Private-MAC: ",  # searched backwards from the MAC line: no MAC, no cost
        window=12000,
        placeholder_check=False,
    ),
    token("age-secret-key", "private-key", r"AGE-SECRET-KEY-1(?P<body>[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})"),
    # ---------------------------------------------------------------- JWT
    token(
        "jwt",
        "jwt",
        r"eyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,8000}\.[A-Za-z0-9_-]{16,1000}(?![\w-])",
        validator=valid_jwt,
        placeholder_check=False,
    ),
    token(
        "jwt",
        "jwt",
        # JWT-shaped (`ey...`.`ey...`[.sig]) with random parts that do not decode. Searched
        # only around a `.ey...` (a header is short; a run of `eyeyey...` costs nothing).
        r"ey[A-Za-z0-9_-]{17,300}+\.ey[A-Za-z0-9_-]{17,8000}+\.(?:[A-Za-z0-9_-]{10,1000}+={0,2})?(?![\w-])",
        validator=random_parts,
        anchor=r"\.ey[A-Za-z0-9_-]{17}",
        window=9400,
    ),
    # ---------------------------------------------------------------- connection strings
    token(
        "connection-string-password",
        "connection-string",
        # scheme://user:password@host; found from the `://`, the scheme does not matter.
        # The password runs to the last `@` before the host: it may hold `/` and `@` itself.
        r"://(?P<user>[^\s:/@'\"<>`]{0,128}):(?P<secret>[^\s'\"<>`]{1,256})@(?!(?:[\w-]{1,63}\.){0,5}example\.(?:com|org|net|edu)(?![\w.-]))(?P<host>[\w.\[\]:-]{1,255})",
        validator=valid_url_password,
        boundary=False,
        scope="text",
        tier=1,
    ),
    token(
        "jdbc-password",
        "connection-string",
        r"jdbc:[a-z0-9]{2,20}:[^\s\"'<>`]{0,300}?[?;&](?:password|pwd)=(?P<secret>[^&;\s\"'<>`]{1,128})",
        boundary=False,
        scope="text",
        tier=1,
    ),
    SecretRule(
        "odbc-password",
        "connection-string",
        # ADO/ODBC: `Server=...;Database=...;Password=...;` (password anywhere in the list).
        _c(
            r"(?:server|data source|host|uid|user id|database|driver|initial catalog|dsn|address)\s{0,2}="
            r"[^;\n\"'`]{1,200};(?:[^;\n\"'`]{0,200};){0,8}?\s{0,2}(?:password|pwd)\s{0,2}=\s{0,2}"
            r"(?P<secret>\{[^}\n]{1,128}\}|[^;\n\"'`]{1,128})"
        ),
        on_lower=True,
        anchor=_c(r"pwd\s{0,2}=|password\s{0,2}="),
        window=2000,
        tier=1,
    ),
    SecretRule(
        "odbc-password",
        "connection-string",
        _c(
            r"(?:password|pwd)\s{0,2}=\s{0,2}(?P<secret>\{[^}\n]{1,128}\}|[^;\n\"'`]{1,128});\s{0,2}"
            r"(?:[^;\n\"'`]{0,200};){0,8}?\s{0,2}"
            r"(?:server|data source|host|uid|user id|database|driver|initial catalog)\s{0,2}="
        ),
        on_lower=True,
        anchor=_c(r"pwd\s{0,2}=|password\s{0,2}="),
        window=200,
        tier=1,
    ),
    # ---------------------------------------------------------------- HTTP credentials
    SecretRule(
        "http-bearer-token",
        "http-auth",
        _c(r"bearer\s{1,3}(?P<secret>[a-z0-9._~+/-]{16,2000}=*)(?![\w.~+/=-])"),
        on_lower=True,
        validator=mixed_token,
        tier=1,
    ),
    SecretRule(
        "http-basic-auth",
        "http-auth",
        _c(r"basic\s{1,3}(?P<secret>[a-z0-9+/]{8,400}={0,2})(?![\w+/=])"),
        on_lower=True,
        validator=valid_basic_auth,
        tier=1,
    ),
    token(
        "docker-config-auth",
        "http-auth",
        # ~/.docker/config.json: "auths": {"host": {"auth": base64("user:password")}}
        r'"auth"\s{0,3}:\s{0,3}"(?P<secret>[A-Za-z0-9+/]{8,400}={0,2})"',
        validator=valid_basic_auth,
        boundary=False,
        scope="text",
        tier=1,
    ),
    # curl's `-u user:password` and `-H "Authorization: ..."`: structured_secrets.py (options
    # may sit on a command's continuation lines).
    SecretRule(
        "netrc-password",
        "http-auth",
        _c(r"machine\s{1,4}[^\s]{1,200}\s{1,4}login\s{1,4}[^\s]{1,200}\s{1,4}password\s{1,4}(?P<secret>[^\s]{1,200})"),
        on_lower=True,
        tier=1,
    ),
)


def rule_ids() -> list[str]:
    """Distinct rule ids (some ids have several patterns), in definition order."""
    return list(dict.fromkeys(rule.id for rule in RULES))


def families() -> list[str]:
    return sorted({rule.family for rule in RULES})
