"""Content guards: the string types a ledger row may hold, so that no content can get in.

Every string in a row is a short code, checked against a character whitelist, a length
limit and a few secret, personal-data and path patterns. Reason strings may be readable
("rule 3: task=completion -> local") but stay one short line without code punctuation;
`safe_reason()` turns any router message into one.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints, TypeAdapter

# Known credential shapes at a token boundary (OpenAI/Anthropic, Stripe, GitHub, GitLab,
# Slack, AWS, Google, JWT).
_SECRET_PREFIX = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-|sk_live_|sk_test_|rk_live_|gh[pousr]_|github_pat_|glpat-|xox[abprs]-"
    r"|AKIA|ASIA|AIza|eyJ)[A-Za-z0-9_\-]{8,}"
)
# A long run of letters and digits mixed together looks like a key or a hash, not a code.
_LONG_ALNUM = re.compile(r"[A-Za-z0-9]{20,}")
_LONG_DIGITS = re.compile(r"[0-9]{12,}")  # card / account / phone numbers
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


def _no_secret_prefix(value: str) -> str:
    if _SECRET_PREFIX.search(value):
        raise ValueError("looks like a credential; the ledger stores codes only")
    return value


def _no_secrets(value: str) -> str:
    _no_secret_prefix(value)
    for run in _LONG_ALNUM.findall(value):
        if re.search(r"[0-9]", run) and re.search(r"[A-Za-z]", run):
            raise ValueError("contains a long random-looking token; the ledger stores codes only")
    if _LONG_DIGITS.search(value) or _EMAIL.search(value):
        raise ValueError("looks like personal data; the ledger stores codes only")
    return value


# A token that looks like a file path: rooted ("/x", "~/x", "./x"), two or more separators, or a
# separator and a file extension ("src/app.py"). "4.80/5.00" and "org/model-7B" are not paths.
_PATH_TOKEN = re.compile(r"(?<!\S)(?:[~.]*/[^\s/]\S*|\S*/\S*/\S*|\S*/\S*\.[A-Za-z][A-Za-z0-9]{0,7})(?!\S)")


def _no_paths(value: str) -> str:
    if _PATH_TOKEN.search(value):
        raise ValueError("looks like a file path; the ledger stores codes only")
    return value


def _not_a_path(value: str) -> str:
    # HF-style ids ("org/model") are fine; absolute or parent-relative paths are not.
    if ".." in value or "//" in value or re.match(r"^[A-Za-z]:/", value):
        raise ValueError("looks like a file path; record the model id or file name")
    return value


# Short machine codes: task, tier, backend, outcome, escalation_reason, error_kind, repo.
Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
    AfterValidator(_no_secrets),
]
ModelName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+@/\-]*$"),
    AfterValidator(_not_a_path),
    AfterValidator(_no_secrets),
]
_REASON_PUNCT = " _.,:=<>()/%+#-"
Reason = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.,:=<>()/%+#\-][A-Za-z0-9 _.,:=<>()/%+#\-]*$"
    ),
    AfterValidator(_no_secrets),
    AfterValidator(_no_paths),
]
# Request ids are often uuid hex, so they skip the long-token check but not the credential check.
RequestId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
    AfterValidator(_no_secret_prefix),
]
PolicyHash = Annotated[str, StringConstraints(pattern=r"^(?:[a-z0-9]{1,16}:)?[0-9a-fA-F]{6,128}$")]
# A repository's key in the ledger: a configured project name or `r-` and a hash of its remote.
RepoKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
    AfterValidator(_no_secret_prefix),
]

request_id_adapter: TypeAdapter[str] = TypeAdapter(RequestId)
code_adapter: TypeAdapter[str] = TypeAdapter(Code)
_reason_adapter: TypeAdapter[str] = TypeAdapter(Reason)


def safe_reason(text: str) -> str:
    """Turn any router message into a valid reason: other characters become spaces, anything
    credential- or PII-shaped becomes "redacted", and it is cut to 200 characters."""
    cleaned = _EMAIL.sub("redacted", text)  # before "@" turns into a space
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in _REASON_PUNCT) else " " for ch in cleaned)
    cleaned = " ".join(cleaned.split())
    cleaned = _SECRET_PREFIX.sub("redacted", cleaned)
    cleaned = _LONG_ALNUM.sub(
        lambda m: "redacted" if re.search(r"[0-9]", m[0]) and re.search(r"[A-Za-z]", m[0]) else m[0], cleaned
    )
    cleaned = _LONG_DIGITS.sub("redacted", cleaned)
    cleaned = _PATH_TOKEN.sub("path", cleaned)
    cleaned = cleaned[:200].strip()
    try:
        return _reason_adapter.validate_python(cleaned)
    except ValueError:  # e.g. a cut left a fragment that still trips a check
        return "unspecified"


__all__ = [
    "Code",
    "ModelName",
    "PolicyHash",
    "Reason",
    "RepoKey",
    "RequestId",
    "code_adapter",
    "request_id_adapter",
    "safe_reason",
]
