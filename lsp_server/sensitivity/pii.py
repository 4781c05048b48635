"""Personal data: e-mail addresses, phone numbers, payment card numbers, IBANs.

Each detector pairs a cheap candidate regex with a validator, because the shapes alone
(digits and separators) are everywhere in code:

* e-mail: found from the ``@`` (a literal, so the search is fast), then the local part is
  read backwards. The top-level domain must be a known generic one or a two-letter
  country code, which keeps ``a@obj.attr`` (matrix products) and decorators out. Skipped
  as placeholders: reserved domains (``example.com/.org/.net``, ``*.example``, ``*.test``,
  ``*.invalid``, ``*.localhost``), ``noreply``-style senders, ``git@host`` SSH remotes and
  the ``user@`` of a URL (``scheme://user@host``).
* phone: international numbers written with a leading ``+`` (E.164 or grouped), North
  American numbers with consistent separators (``(212) 555-0143``, ``212-555-0143``,
  ``212.555.0143``), and any other national format only right after a word such as
  ``phone``/``tel``/``mobile``/``fax``. Bare digit runs, dates, versions and IP addresses do
  not match; the reserved fictional range 555-0100..0199 counts as a placeholder.
* payment cards: 13-19 digits, contiguous or in 4-4-4-4(-3) / 4-6-5 groups, passing the
  Luhn check and matching a known issuer prefix and length. The well-known test numbers
  (4111 1111 1111 1111 and friends, any number with fewer than 4 distinct digits) are
  placeholders.
* IBAN: country code, check digits, and the country's exact length, validated by mod-97.
"""

from __future__ import annotations

import re

from lsp_server.sensitivity.findings import PiiHit
from lsp_server.sensitivity.pii_email import find_emails

# --- phone numbers ------------------------------------------------------------------------

# Candidates are searched in the "digit shape" of the text (digits -> "0", letters -> "A"/"a",
# one byte per character), where they start with a literal and are found fast.
_INTL_CANDIDATE = re.compile(rb"\+0[0 ().-]{6,22}0")
_INTL_SHAPE = re.compile(r"\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){1,2}(?:[ .-]?\d{2,4}){1,5}")
_NANP_ANCHORS = (re.compile(rb"-000-0000"), re.compile(rb"\.000\.0000"), re.compile(rb"\) ?000-0000"))
_NANP = re.compile(
    r"(?<![\w.+/-])(?:\+?1[-. ])?(?:\((?P<a1>[2-9][0-9]{2})\) ?|(?P<a2>[2-9][0-9]{2})(?P<sep>[-.]))"
    r"(?P<ex>[2-9][0-9]{2})(?(sep)(?P=sep)|-)(?P<line>[0-9]{4})(?![\w-]|\.[0-9])"
)
# Lower-cased text: a phone-ish word, a short label gap, then the number.
_CONTEXT_PHONE = tuple(
    re.compile(word + r"[a-z]{0,6}[\w .:#=\"'-]{0,12}?(?P<num>\+?\(?[0-9][0-9 ().-]{6,20}[0-9])(?![\w-]|\.[0-9])")
    for word in ("phone", "mobile", "tel", "fax", "cell")
)
_NANP_DIGITS = re.compile(r"1[2-9]\d\d[2-9]\d{6}")
_DATE_LIKE = re.compile(
    r"(?:19|20)\d\d[-./]\d\d[-./]\d\d|\d\d[-./]\d\d[-./](?:19|20)\d\d|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
)


def _plausible_number(candidate: str, min_digits: int) -> bool:
    digits = "".join(c for c in candidate if c.isdigit())
    if not (min_digits <= len(digits) <= 15) or _DATE_LIKE.search(candidate):
        return False
    if candidate.startswith("+1") and not _NANP_DIGITS.fullmatch(digits):
        return False  # +1 is North America: exactly ten digits, area and exchange start 2-9
    if re.search(r"[ ().-]{3}|[.-]{2}", candidate):  # "1 -- 2", "1..2": arithmetic, ranges
        return False
    return len(set(digits)) >= 3 and not _fictional(candidate)


def _fictional(number: str) -> bool:
    """North American 555-0100..0199 numbers are reserved for fiction and examples."""
    digits = "".join(c for c in number if c.isdigit())
    return len(digits) >= 10 and digits[-7:-4] == "555" and digits[-4:-2] == "01"


def find_phones(text: str, lowered: str, shape: bytes) -> list[PiiHit]:
    hits: list[PiiHit] = []
    for m in _INTL_CANDIDATE.finditer(shape):
        start = m.start()
        if start and (text[start - 1].isalnum() or text[start - 1] in "_)+."):
            continue  # 1e+10, x+1234: arithmetic, not a number
        grouped = _INTL_SHAPE.match(text, start, m.end())
        if not grouped:
            continue
        end = grouped.end()
        if end < len(text) and (
            text[end].isalnum() or text[end] == "_" or text[end : end + 2].rstrip("0123456789") == "."
        ):
            continue  # glued to a word, or a decimal number (+35236450.6)
        number = text[start:end]
        if number[1:].isdigit() and text[max(0, start - 20) : start].rstrip(" \t")[-1:] in tuple("=([+-*/%<>&|^~!"):
            continue  # `x = +4294967296`: a signed integer in code, not an E.164 number
        if _plausible_number(number, 8):
            hits.append(("phone", start, end))
    seen: set[int] = {start for _, start, _ in hits}
    for anchor in _NANP_ANCHORS:
        for a in anchor.finditer(shape):
            nanp = _NANP.search(text, max(0, a.start() - 9), min(len(text), a.end() + 2))
            if not nanp or nanp.start() in seen:
                continue
            seen.add(nanp.start())
            if not _fictional(nanp.group()):
                hits.append(("phone", nanp.start(), nanp.end()))
    for regex in _CONTEXT_PHONE:
        for labelled in regex.finditer(lowered):
            if labelled.start("num") in seen:
                continue
            seen.add(labelled.start("num"))
            if _plausible_number(labelled.group("num"), 9):
                hits.append(("phone", labelled.start("num"), labelled.end("num")))
    return hits


# --- payment cards --------------------------------------------------------------------------

_CARD_CANDIDATE = re.compile(rb"0000[0 -]{8,18}0")
_CARD_SHAPE = re.compile(
    r"(?<![\d.-])(?:\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{4}(?:(?P=s)\d{3})?"
    r"|\d{4}(?P<t>[ -])\d{6}(?P=t)\d{4,5}|\d{13,19})"
    r"(?![\d]|[.-]\d)"
)
_KNOWN_TEST_CARDS = frozenset(
    {
        "4111111111111111",
        "4242424242424242",
        "4000056655665556",
        "5555555555554444",
        "5200828282828210",
        "5105105105105100",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "3056930009020004",
        "36227206271667",
        "3566002020360505",
        "6200000000000005",
        "4012888888881881",
        "4222222222222",
    }
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if index % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:
    """Issuer for a known IIN prefix and a length that issuer uses."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16:
        return "mastercard"
    if two in (34, 37) and n == 15:
        return "amex"
    if (digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649) and 16 <= n <= 19:
        return "discover"
    if 3528 <= four <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305) and 14 <= n <= 19:
        return "diners"
    if two == 62 and 16 <= n <= 19:
        return "unionpay"
    return None


def find_cards(text: str, shape: bytes) -> list[PiiHit]:
    hits: list[PiiHit] = []
    for cand in _CARD_CANDIDATE.finditer(shape):
        for m in _CARD_SHAPE.finditer(text, cand.start(), cand.end()):
            start, end = m.span()
            if start and (text[start - 1].isalnum() or text[start - 1] in "_"):
                continue
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                continue
            digits = re.sub(r"[ -]", "", m.group())
            if digits in _KNOWN_TEST_CARDS or len(set(digits)) < 4:
                continue
            if luhn_valid(digits) and card_issuer(digits):
                hits.append(("credit-card", start, end))
    return hits


# --- IBAN ---------------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}
_IBAN_CANDIDATE = re.compile(rb"AA00[A0 ]{10,40}")


def iban_valid(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def find_ibans(text: str, shape: bytes) -> list[PiiHit]:
    hits: list[PiiHit] = []
    for m in _IBAN_CANDIDATE.finditer(shape):
        start = m.start()
        if start and (text[start - 1].isalnum() or text[start - 1] == "_"):
            continue
        length = IBAN_LENGTHS.get(text[start : start + 2])
        if length is None:
            continue
        # Take exactly `length` characters, allowing one space between groups of four.
        chars: list[str] = []
        pos = start
        grouped = text[start + 4 : start + 5] == " "
        while pos < m.end() and len(chars) < length:
            ch = text[pos]
            if ch == " ":
                if not grouped or len(chars) % 4:
                    break
            else:
                chars.append(ch)
            pos += 1
        end = pos
        if len(chars) != length or (end < len(text) and (text[end].isalnum() or text[end] == "_")):
            continue
        if iban_valid("".join(chars)):
            hits.append(("iban", start, end))
    return hits


def digit_shape(text: str) -> bytes:
    """One byte per character: digits -> "0", A-Z -> "A", a-z -> "a", non-ASCII -> "?"."""
    return text.encode("ascii", "replace").translate(DIGIT_SHAPE_TABLE)


DIGIT_SHAPE_TABLE = bytes.maketrans(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", b"0" * 10 + b"A" * 26 + b"a" * 26
)


def find_pii(text: str, lowered: str, shape: bytes | None = None) -> list[PiiHit]:
    """All PII hits; `lowered` is `text.lower()` with the same length, `shape` its digit_shape()."""
    shape = digit_shape(text) if shape is None else shape
    hits = find_emails(text) if "@" in text else []
    hits += find_phones(text, lowered, shape)
    hits += find_cards(text, shape)
    hits += find_ibans(text, shape)
    return hits
