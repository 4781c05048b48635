"""A whole commit message checked against a change's facts, and the facts as a model reads
them in a prompt.

`ground_message(message, facts)` keeps the model's subject only if it survives
`grounded_subject` (else the factual subject), drops body lines that name something the diff
lacks or claim what the facts refute, and, when the factual subject could not say everything,
lists the facts in the body. Whatever the model wrote, the message says nothing the facts do
not allow, and it says at least what the facts alone would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsp_server.explain.facts.claims import contradictions
from lsp_server.explain.facts.facts import ChangeFacts
from lsp_server.explain.facts.names import ungrounded_names
from lsp_server.explain.facts.subject import SubjectCheck, factual_subject, grounded_subject, reported_symbols

# A prompt's facts: enough for a small model to name the right things, short enough to leave
# the diff its room.
PROMPT_FACTS_CHARS = 700
BODY_FACT_LINES = 6


def prompt_facts(facts: ChangeFacts, max_chars: int = PROMPT_FACTS_CHARS) -> list[str]:
    """`facts.lines()` cut to `max_chars`, with a last line saying how many were left out."""
    lines = facts.lines()
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > max_chars and i < len(lines) - 1:
            out.append(f"... and {len(lines) - i - 1} more")
            out.append(lines[-1])  # the commit type is the last line: always keep it
            break
        out.append(line)
        used += len(line) + 1
    return out


def fact_bullets(facts: ChangeFacts, limit: int = BODY_FACT_LINES) -> list[str]:
    """The facts as a commit body: one bullet per symbol change, then per file not covered."""
    bullets: list[str] = []
    covered: set[str] = set()
    for s in facts.symbols:
        was = f" (was {s.old_name})" if s.old_name else ""
        details = f": {', '.join(s.details)}" if s.details else ""
        bullets.append(f"- {s.path}: {s.kind} {s.name}{was} {s.change}{details}")
        covered.add(s.path)
    for d in facts.dependencies:
        bullets.append(f"- {d.path}: {d.name} {d.change} {d.label}".rstrip())
        covered.add(d.path)
    for f in facts.files:
        if f.path in covered:
            continue
        where = f" (from {f.old_path})" if f.old_path else ""
        bullets.append(f"- {f.path}{where}: {f.status}, +{f.added} -{f.removed}")
    if len(bullets) > limit:
        bullets = bullets[: limit - 1] + [f"- and {len(bullets) - limit + 1} more"]
    return bullets


@dataclass(frozen=True)
class GroundedMessage:
    text: str
    check: SubjectCheck
    dropped_lines: int  # body lines that named something the diff lacks, or claimed what the facts refute
    facts_body: bool  # the body lists the facts (the factual subject could not name them all)


def _subject_covers(subject: str, facts: ChangeFacts) -> bool:
    """Whether the factual subject names every symbol and file the facts have."""
    names = [s.short_name for s in reported_symbols(facts)] + [d.name for d in facts.dependencies]
    names = names or [f.path.rsplit("/", 1)[-1] for f in facts.files]
    return " more" not in subject and all(re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", subject) for n in names)


def ground_message(message: str, facts: ChangeFacts) -> GroundedMessage:
    lines = message.strip().split("\n")
    check = grounded_subject(lines[0] if lines else "", facts)
    kept: list[str] = []
    dropped = 0
    for line in lines[1:]:
        if line.strip() and (ungrounded_names(line, facts) or contradictions(line, facts)):
            dropped += 1
            continue
        kept.append(line)
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    facts_body = False
    if check.replaced and not body and not _subject_covers(check.subject, facts):
        body = "\n".join(fact_bullets(facts))
        facts_body = bool(body)
    text = check.subject + ("\n\n" + body if body else "")
    return GroundedMessage(text, check, dropped, facts_body)


__all__ = ["GroundedMessage", "fact_bullets", "factual_subject", "ground_message", "prompt_facts"]
