"""Credentials that their place in a known format gives away, whatever they look like.

Some formats say outright which of their values are secrets, so the value's own shape does
not matter (a Kubernetes Secret's data can be any base64; a curl password can be a word):

* **curl commands**: `-u/--user user:password` and `-H/--header "Authorization: ..."`
  (or an API-key header), also when the option sits on a continuation line of the command;
* **Kubernetes Secret manifests**: the values under `data:` / `stringData:` of a document of
  `kind: Secret`;
* **Google credential files**: an authorized-user file (a `client_secret` and a
  `refresh_token` in one JSON object) and a service-account file (a `private_key` next to
  `auth_provider_x509_cert_url`), even when cut short or mangled.

Each detector starts only when its literal markers are in the text, so ordinary code pays
for a few substring tests.
"""

from __future__ import annotations

import bisect
import re

from lsp_server.sensitivity.secret_rules import is_placeholder, shannon_entropy

StructuredHit = tuple[str, str, int, int]  # (rule, family, start, end)


def find_structured(text: str, lowered: str) -> list[StructuredHit]:
    """Every structured credential in `text` (`lowered` is its lower-cased copy)."""
    hits: list[StructuredHit] = []
    # Each test is one pass over the text (the rarest marker first); the parsers start only
    # when their format is there.
    if "curl" in lowered:
        hits += _curl(text, lowered)
    if "kind:" in lowered:
        hits += _kubernetes_secret(text, lowered)
    if '"refresh_token"' in lowered and '"client_secret"' in lowered:
        hits += _authorized_user(text, lowered)
    if "auth_provider_x509_cert_url" in lowered:
        hits += _service_account(text, lowered)
    return hits


# The rule ids these detectors report (each is planted in the seeded corpus).
RULE_IDS = ("curl-basic-auth", "curl-auth-header", "kubernetes-secret", "gcp-user-credentials", "gcp-service-account")


# --------------------------------------------------------------------------- curl

_CURL = re.compile(r"curl(?!\w)")  # starts with its literal: found fast; the start is checked apart
# A command's options may continue over a few lines (`\` continuations, pasted output,
# blank lines between).
_CURL_REACH_LINES = 10
_CURL_REACH_CHARS = 2000
_USER_OPTION = re.compile(
    r"""(?<!\S)(?:-u|--user)(?:=|[ \t]{0,5})"""
    r"""(?:(?P<user>"[^"\n]{1,200}"|'[^'\n]{1,200}'|[^\s:'"]{1,200}):(?P<pw>"[^"\n]{1,200}"|'[^'\n]{1,200}'|[^\s'"]{1,200})"""
    r"""|"(?P<dq>[^"\n]{3,300})"|'(?P<sq>[^'\n]{3,300})')"""
)
_HEADER_OPTION = re.compile(
    r"""(?<!\S)(?:-H|--header)(?:=|[ \t]{0,5})(?P<q>["'])(?P<name>[A-Za-z][A-Za-z0-9-]{0,40})[ \t]{0,5}:[ \t]{0,5}"""
    r"""(?P<value>[^"'\n]{6,2000}+)(?P=q)"""
)
# Headers that carry a credential: Authorization, and API-key / token headers.
_CREDENTIAL_HEADER = re.compile(r"(?i)(?:proxy-)?authorization|(?:x-)?(?:[a-z]+-)?(?:api-?)?(?:key|token|secret)")
_AUTH_SCHEME = re.compile(r"(?i)(?:basic|bearer|token|api-token|apikey|digest|negotiate|sso-key)[ \t]+")


def _curl(text: str, lowered: str) -> list[StructuredHit]:
    hits: list[StructuredHit] = []
    done_until = 0
    for m in _CURL.finditer(lowered):
        if m.start() < done_until or _glued(lowered, m.start()):
            continue
        end = m.end()
        for _ in range(_CURL_REACH_LINES):
            nl = text.find("\n", end + 1, m.end() + _CURL_REACH_CHARS)
            if nl < 0:
                end = min(len(text), m.end() + _CURL_REACH_CHARS)
                break
            end = nl
        done_until = end
        for opt in _USER_OPTION.finditer(text, m.end(), end):
            span = _user_password(opt)
            if span is not None:
                hits.append(("curl-basic-auth", "http-auth", *span))
        for opt in _HEADER_OPTION.finditer(text, m.end(), end):
            if not _CREDENTIAL_HEADER.fullmatch(opt.group("name")):
                continue
            start, stop = opt.span("value")
            scheme = _AUTH_SCHEME.match(text, start, stop)
            if scheme:
                start = scheme.end()
            value = text[start:stop].rstrip()
            if _secret_value(value, min_length=6, min_entropy=2.75):
                hits.append(("curl-auth-header", "http-auth", start, start + len(value)))
    return hits


def _glued(lowered: str, pos: int) -> bool:
    """Whether a word character or `-` comes right before `pos` (`libcurl`, `pycurl`)."""
    return pos > 0 and (lowered[pos - 1].isalnum() or lowered[pos - 1] in "_-")


def _user_password(opt: re.Match[str]) -> tuple[int, int] | None:
    """The span of the password in a `-u` option, or None (no password: curl asks for it)."""
    for group in ("dq", "sq"):
        if opt.group(group) is not None:
            user, sep, password = opt.group(group).partition(":")
            if not sep:
                return None
            start = opt.start(group) + len(user) + 1
            break
    else:
        password = opt.group("pw")
        start = opt.start("pw")
        if password[:1] in "\"'":
            password, start = password[1:-1], start + 1
    if not _secret_value(password, min_length=3, min_entropy=1.5):
        return None
    return start, start + len(password)


def _secret_value(value: str, min_length: int, min_entropy: float) -> bool:
    """A literal credential, not a reference (`$TOKEN`, `${{ secrets.X }}`) or a placeholder."""
    value = value.strip()
    if len(value) < min_length or value.startswith(("$", "%", "<", "{{")):
        return False
    return shannon_entropy(value) > min_entropy and not is_placeholder(value)


# --------------------------------------------------------------------------- Kubernetes

_KIND_SECRET = re.compile(r"kind:[ \t]*[\"']?secret(?![\w-])")
_DATA = re.compile(r"(?<![\w-])(?:string)?data:")
# An entry of a data block: `name: value`, `name: |` then the value on the next lines.
_DATA_ENTRY = re.compile(
    r"\s+(?P<key>[\w.-]{1,253}):(?:[ \t]*(?:\||>[-+]?)\s+)?[ \t]*[\"']?(?P<value>[^\s\"'#]{4,8192})[\"']?"
)
_MANIFEST_REACH = 1100  # a Secret's `data:` is within this many characters of its `kind:`
_FIRST_ENTRY_REACH = 100


def _kubernetes_secret(text: str, lowered: str) -> list[StructuredHit]:
    kinds = [k.start() for k in _KIND_SECRET.finditer(lowered) if not _glued(lowered, k.start())]
    if not kinds:
        return []
    hits: list[StructuredHit] = []
    # The data block may come before or after `kind:` in its document: the `data:` keys
    # within reach of a `kind: Secret` of the same document (no `---` between) count.
    for lo, hi in _merged_windows(kinds, _MANIFEST_REACH, len(text)):
        for data in _DATA.finditer(lowered, lo, hi):
            i = bisect.bisect_left(kinds, data.start())
            near = [k for k in kinds[max(0, i - 1) : i + 1] if abs(k - data.start()) <= _MANIFEST_REACH]
            if not any(lowered.find("\n---", min(k, data.start()), max(k, data.end())) < 0 for k in near):
                continue
            hits += _data_block(text, data)
    return hits


def _merged_windows(positions: list[int], reach: int, limit: int) -> list[tuple[int, int]]:
    """[pos - reach, pos + reach] around sorted positions, overlapping ones merged."""
    windows: list[tuple[int, int]] = []
    for pos in positions:
        lo, hi = max(0, pos - reach), min(limit, pos + reach)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
    return windows


def _data_block(text: str, data: re.Match[str]) -> list[StructuredHit]:
    """The values of the entries of a `data:` block (the first may follow on its line)."""
    hits: list[StructuredHit] = []
    indent = _indent(text, data.start())
    entry = _DATA_ENTRY.search(text, data.end(), min(len(text), data.end() + _FIRST_ENTRY_REACH + 8500))
    if entry is None or entry.start("key") - data.end() > _FIRST_ENTRY_REACH:
        return hits
    while entry is not None:
        if _secret_value(entry.group("value"), min_length=4, min_entropy=1.5):
            hits.append(("kubernetes-secret", "cloud", *entry.span("value")))
        entry = _DATA_ENTRY.match(text, entry.end(), min(len(text), entry.end() + 9000))
        if entry is not None and _indent(text, entry.start("key")) <= indent:
            break  # the block has ended
    return hits


def _indent(text: str, pos: int) -> int:
    """Column of the first non-blank character of the line holding `pos`."""
    line_start = text.rfind("\n", 0, pos) + 1
    column = line_start
    while column < pos and text[column] in " \t-":
        column += 1
    return column - line_start


# --------------------------------------------------------------------------- Google credentials

_JSON_STRING_FIELD = r'"{name}"\s{{0,64}}:\s{{0,64}}"(?P<value>(?:[^"\\\n]|\\.){{1,8192}})"'
_CLIENT_SECRET = re.compile(_JSON_STRING_FIELD.format(name="client_secret"))
_REFRESH_TOKEN = re.compile(_JSON_STRING_FIELD.format(name="refresh_token"))
_PRIVATE_KEY_FIELD = re.compile(r'"private_key"\s{0,64}:\s{0,64}"(?P<value>-----begin[^"\n]{0,8192})')
_FIELDS_REACH = 1000  # both fields of an authorized-user file sit within this many characters


def _authorized_user(text: str, lowered: str) -> list[StructuredHit]:
    """gcloud's authorized-user file: OAuth client secret and refresh token together."""
    hits: list[StructuredHit] = []
    tokens = list(_REFRESH_TOKEN.finditer(lowered))
    starts = [t.start() for t in tokens]
    for secret in _CLIENT_SECRET.finditer(lowered):
        # Values may hold braces, so the object is not parsed: both fields close together do.
        i = bisect.bisect_left(starts, secret.start())
        near = [t for t in tokens[max(0, i - 1) : i + 1] if abs(t.start() - secret.start()) <= _FIELDS_REACH]
        if not near:
            continue
        for m in (secret, near[0]):
            value = text[m.start("value") : m.end("value")]
            if not is_placeholder(value) and not value.startswith("$"):
                hits.append(("gcp-user-credentials", "cloud", *m.span("value")))
    return hits


def _service_account(text: str, lowered: str) -> list[StructuredHit]:
    """A service-account key file, also when the key is cut short or mangled."""
    hits: list[StructuredHit] = []
    for key in _PRIVATE_KEY_FIELD.finditer(lowered):
        if (
            lowered.find("auth_provider_x509_cert_url", max(0, key.start() - _FIELDS_REACH), key.end() + _FIELDS_REACH)
            >= 0
        ):
            hits.append(("gcp-service-account", "cloud", *key.span("value")))
    return hits
