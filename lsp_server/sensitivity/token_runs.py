"""Detectors over long runs of token characters: vendor-prefixed tokens, named services'
credentials, random tokens alone on their line, and the secret half of a key pair given
next to its id."""

from __future__ import annotations

from lsp_server.sensitivity.entropy import ALONE_AFTER, ALONE_BEFORE, COMPANIONS, GLUED_KEY, HEX_RE
from lsp_server.sensitivity.resolution import GENERIC_TIER, PREFIXED_TIER, Hit
from lsp_server.sensitivity.secret_rules import (
    is_placeholder,
    mixed_token,
    shannon_entropy,
)
from lsp_server.sensitivity.service_secrets import assignment_anchor, prefixed_token, random_value, service_context


def find_service_tokens(text: str, runs: list[tuple[int, int]], shape: bytes, hits: list[Hit]) -> None:
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
        glued = GLUED_KEY.match(text, start, end) if ("=" in text[start:end] or ":" in text[start:end]) else None
        if glued:  # `KEY=value` in one run of token characters
            start = glued.end()
        value = text[start:end]
        if len(value) < 16 or (shape.find(b"0", start, end) < 0 and shape.count(b"aA", start, end) < 3):
            continue
        if start == 0:
            continue  # the text may start inside a longer token (a window cut mid-line)
        if prefixed_token(value):
            hits.append(Hit(PREFIXED_TIER, "secret", "prefixed-token", "token", start, end))
            continue
        line_start = text.rfind("\n", max(0, start - 90), start) + 1
        before = text[max(line_start, start - 90) : start]
        if glued:
            before += text[run_start:start]
        if (
            len(value) >= 24
            and line_start > 0  # a whole line, not the start of a window cut mid-line
            and not HEX_RE.fullmatch(value)
            and ALONE_BEFORE.fullmatch(before)
            and ALONE_AFTER.match(text, end)
            and random_value(value, strict=True)
        ):
            # A random token alone on its line (a pasted key, a secrets file).
            hits.append(Hit(PREFIXED_TIER, "secret", "high-entropy-token", "entropy", start, end))
            continue
        anchor = assignment_anchor(before) if before else None
        if anchor and random_value(value, strict=not anchor[1]):
            rule, family = ("service-credential", "service") if anchor[1] else ("generic-secret", "generic-assignment")
            hits.append(Hit(GENERIC_TIER, "secret", rule, family, start, end))
        elif (
            (not anchor or not anchor[1]) and service_context(text[max(0, start - 100) : start]) and random_value(value)
        ):
            # `amplitude:\n  secret: <value>`: the service named a line or two above.
            hits.append(Hit(GENERIC_TIER, "secret", "service-credential", "service", start, end))


def find_companions(text: str, hits: list[Hit]) -> None:
    """The secret half of a key pair given next to its id (`Client("AKIA...", "wJalr...")`):
    when an id is found, a value of its secret's shape nearby is that secret."""
    for h in list(hits):
        companion = COMPANIONS.get(h.rule)
        if companion is None:
            continue
        rule, family, shape = companion
        lo = text.rfind("\n", 0, h.start) + 1  # its own line and the next one
        hi = text.find("\n", text.find("\n", h.end) + 1)
        hi = len(text) if hi < 0 else hi
        for m in shape.finditer(text, max(lo, h.start - 400), min(hi, h.end + 400)):
            value = m.group("secret")
            if shannon_entropy(value) >= 4.0 and not is_placeholder(value) and mixed_token(value):
                hits.append(Hit(0, "secret", rule, family, m.start("secret"), m.end("secret")))
