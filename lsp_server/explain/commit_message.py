"""Commit messages as git wants them: the checks a model's message must pass, and the repair
that turns any answer into a conventional subject (<= 72 characters) and a wrapped body."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

COMMIT_TYPES = ("feat", "fix", "docs", "style", "refactor", "perf", "test", "build", "ci", "chore", "revert")
SUBJECT_MAX = 72
BODY_WIDTH = 72

_CONVENTIONAL = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)\s]{1,30})\))?(?P<bang>!)?: (?P<subject>\S.*)$")
_NOISE_PREFIX = re.compile(r"^(?:commit message|subject|title)\s*:\s*", re.I)
_NARRATION = re.compile(r"^(?:it|this (?:change|commit|diff|patch)|the (?:change|commit|diff|patch))\s+", re.I)


def check_commit_message(text: str) -> list[str]:
    """What is wrong with a commit message as the model wrote it (empty: nothing)."""
    lines = [line for line in text.strip().split("\n")]
    if not lines or not lines[0].strip():
        return ["subject_missing"]
    subject = lines[0].strip()
    failed = []
    if len(subject) > SUBJECT_MAX:
        failed.append("subject_too_long")
    if not _CONVENTIONAL.match(subject) or _CONVENTIONAL.match(subject).group("type") not in COMMIT_TYPES:  # type: ignore[union-attr]
        failed.append("not_conventional")
    if len(lines) > 1 and lines[1].strip():
        failed.append("no_blank_line")
    return failed


def guess_type(paths: Sequence[str], text: str = "") -> str:
    """A conventional-commit type from what the change touches, for repairs."""
    lowered = [p.lower() for p in paths]
    if lowered and all(p.endswith((".md", ".rst", ".txt", ".adoc")) or p.startswith("docs/") for p in lowered):
        return "docs"
    if lowered and all("test" in p for p in lowered):
        return "test"
    if lowered and all(p.startswith((".github/", ".ci/", ".gitlab")) for p in lowered):
        return "ci"
    if re.search(r"\b(fix|bug|crash|error|wrong)", text, re.I):
        return "fix"
    if re.search(r"\b(add|new|support|introduce)", text, re.I):
        return "feat"
    return "chore"


def _shorten(subject: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when there is one."""
    if len(subject) <= limit:
        return subject
    sentence = subject.split(". ", 1)[0]
    if len(sentence) <= limit:
        return sentence  # a whole first sentence reads better than a cut one
    head = subject[: limit + 1]
    if " " not in head:
        return subject[:limit]
    return head.rsplit(" ", 1)[0].rstrip(",;:- ") or subject[:limit]


def repair_commit_message(text: str, paths: Sequence[str]) -> str:
    """Make any model answer a well-formed message: conventional subject <= 72, wrapped body."""
    raw = [line.rstrip() for line in text.replace("\r\n", "\n").strip().strip("`").split("\n")]
    raw = [line for line in raw if not line.lstrip().startswith("#") and not line.strip().startswith("```")]
    while raw and not raw[0].strip():
        raw.pop(0)
    subject = _NOISE_PREFIX.sub("", raw[0].strip().strip("\"'*")) if raw else ""
    subject = _NARRATION.sub("", subject)  # "It adds x" / "This change adds x" -> "adds x"
    body_lines = [line for line in raw[1:]]
    match = _CONVENTIONAL.match(subject)
    if match and match.group("type") in COMMIT_TYPES:
        prefix = subject[: match.start("subject")]
        words = match.group("subject")
    else:
        words = subject or "update " + (", ".join(paths[:3]) if paths else "files")
        prefix = f"{guess_type(paths, text)}: "
    words = words.rstrip(".").strip()
    if words[:1].isupper() and not words[1:2].isupper():
        words = words[0].lower() + words[1:]
    subject = prefix + _shorten(words, SUBJECT_MAX - len(prefix))
    paragraphs = "\n".join(body_lines).strip()
    body = "\n\n".join(
        textwrap.fill(" ".join(block.split()), BODY_WIDTH)
        if not block.lstrip().startswith(("-", "*"))
        else "\n".join(
            textwrap.fill(item.strip(), BODY_WIDTH, subsequent_indent="  ")
            for item in block.split("\n")
            if item.strip()
        )
        for block in re.split(r"\n\s*\n", paragraphs)
        if block.strip()
    )
    return subject + ("\n\n" + body if body else "")
