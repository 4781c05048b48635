"""E-mail addresses: found from the `@`, then the local part read backwards.

The top-level domain must be a known generic one or a two-letter country code, which keeps
`a@obj.attr` (matrix products) and decorators out. Skipped as placeholders: reserved
domains, `noreply`-style senders, `git@host` SSH remotes, the `user@` of a URL, and
authorship notices (published attribution, not personal data being handled)."""

from __future__ import annotations

import re

from lsp_server.sensitivity.findings import PiiHit

# --- e-mail -------------------------------------------------------------------------------

_EMAIL_DOMAIN = re.compile(
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}([A-Za-z]{2,24}))(?![\w-]|\.[A-Za-z0-9])"
)
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_GENERIC_TLDS = frozenset(
    {
        "com",
        "org",
        "net",
        "edu",
        "gov",
        "mil",
        "int",
        "info",
        "biz",
        "name",
        "pro",
        "mobi",
        "aero",
        "coop",
        "museum",
        "jobs",
        "travel",
        "io",
        "ai",
        "app",
        "dev",
        "cloud",
        "tech",
        "online",
        "site",
        "website",
        "xyz",
        "email",
        "mail",
        "me",
        "co",
        "us",
        "uk",
        "eu",
        "asia",
        "blog",
        "shop",
        "store",
        "page",
        "live",
        "news",
        "media",
        "agency",
        "company",
        "solutions",
        "services",
        "digital",
        "network",
        "systems",
        "software",
        "studio",
        "design",
        "group",
        "team",
        "work",
        "world",
        "global",
        "center",
        "academy",
        "school",
        "university",
        "science",
        "health",
        "bank",
        "finance",
        "law",
        "legal",
        "consulting",
        "partners",
        "ventures",
    }
)
_RESERVED_DOMAIN = re.compile(
    r"(?:^|\.)(?:example\.(?:com|org|net|edu)|example|test|invalid|localhost|local|domain|users\.noreply\.github\.com)$",
    re.IGNORECASE,
)
_PLACEHOLDER_LOCAL = re.compile(
    r"(?i)^(?:no-?reply|do-?not-?reply|git|user|username|name|email|you|your\.?name|me|someone|somebody|"
    r"nobody|anybody|foo|bar|baz|john\.?doe|jane\.?doe)$"
)
# Role and list addresses belong to organisations, not people.
_ROLE_LOCAL = re.compile(
    r"(?i)^(?:info|contact|support|help|sales|admin|webmaster|postmaster|hostmaster|abuse|security|"
    r"press|team|hello|office|billing|privacy|legal|jobs|careers|marketing|newsletter|feedback|"
    r"[\w.]+-(?:sig|dev|devel|users|list|announce|bugs|request|owner|admin))$"
)
# Authorship notices in source headers ("Written by X <x@y>", `__author__ = ...`, copyright
# lines, git trailers): published attribution, not personal data being handled. A marker
# counts only before the address on its own line, with no other field in between (so that
# `{"email": "a@b.co", "credit": 500}` is still a record holding an address), or on one of
# the two lines above when this line only continues the notice (a name, an "Email:" label),
# or further up through a list of addresses.
_ATTRIBUTION = re.compile(
    r"(?<![a-z_])(?:__author__|authors?|copyright|maintainers?|maintained|credits|credit to|thanks to|"
    r"according to|__email__|released|based on|idea of)(?![a-z_])|\(c\)|©|-by:|^\W*by\s|"
    r"\b(?:written|added|contributed|ported|cloned|created|modified|maintained|updated|fixed|patched|"
    r"implemented|tweaks|rewritten|adapted|improved|suggested|originally|support|idea|work)\s+by\b|"
    r"(?-i:\bby\s+[A-Z][a-z]+[ -][A-Z])",  # "pydoc by Ka-Ping Yee": a byline with a name
    re.IGNORECASE | re.MULTILINE,
)
# Between a marker and the address: another `key: value` / `key=value` field.
_OTHER_FIELD = re.compile(r"""[,;{]\s*["']?(?!mailto:)[\w.-]+["']?\s*[:=]|["']\s*:\s*["']?[^"'<(]*["']\s*,""")
# What may stand before the address on a line that continues a notice: a label, a name
# (with its particles: "Amaury Forgeot d'Arc", "Guido van Rossum").
_CONTINUATION = re.compile(
    r"""[\s#*/;"'(<,.-]*(?:[A-Za-z][a-z]+(?:[ -][a-z]+)?\s*:\s*)?"""
    r"""(?:(?:[a-z]{1,2}')?[A-Z][\w.'-]*\.?,?\s+|(?:van|von|de|da|del|der|den|di|du|le|la|ten|ter)\s+){0,6}(?:[<("']|&lt;)?"""
)


def _attribution(text: str, pos: int) -> bool:
    """Whether the address at `pos` is part of an authorship notice."""
    line_start = text.rfind("\n", 0, pos) + 1
    prefix = text[max(line_start, pos - 300) : pos]
    for marker in _ATTRIBUTION.finditer(prefix):  # (`^` in the marker: the start of `prefix`)
        if _OTHER_FIELD.search(prefix, marker.end()) is None:
            return True
    if _CONTINUATION.fullmatch(prefix) is None:
        return False
    start = line_start
    for lines_up in range(_LIST_REACH):
        if start == 0:
            break
        above = text.rfind("\n", 0, start - 1) + 1
        if _ATTRIBUTION.search(text, above, start - 1):
            return True
        if lines_up >= 1 and text.find("@", above, start) < 0:
            break  # past two lines, only a list of addresses still continues the notice
        start = above
    return False


# How far up a list of addresses (`__author__ = ("A <a@x>, "` then one line per author)
# is followed to its marker.
_LIST_REACH = 12


def find_emails(text: str) -> list[PiiHit]:
    hits: list[PiiHit] = []
    for m in _EMAIL_DOMAIN.finditer(text):
        at = m.start()
        start = at
        while start > 0 and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < at and not text[start].isalnum():  # local part starts with a letter/digit
            start += 1
        if start == at or text[at - 1] == "." or text[m.end() : m.end() + 1] == "@":
            continue
        if text[max(0, start - 2) : start] == "//" or text[max(0, start - 1) : start] == "@":
            continue  # scheme://user@host is a URL, a@b@c is not an address
        domain, tld = m.group(1), m.group(2).lower()
        if not (tld in _GENERIC_TLDS or len(tld) == 2):
            continue
        local = text[start:at]
        if _RESERVED_DOMAIN.search(domain) or _PLACEHOLDER_LOCAL.match(local) or _ROLE_LOCAL.match(local):
            continue
        if local.lower() == domain.split(".", 1)[0].lower():
            continue  # one@one.org, test@test.com: made-up addresses
        if not local.strip("0123456789.") or _attribution(text, start):
            continue  # message-ids (<digits.digits@host>), authorship notices
        hits.append(("email", start, m.end()))
    return hits
