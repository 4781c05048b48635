"""Explain a change: diff -> chunks -> one routed explanation per chunk -> merged answer.

Used by `ninetyten explain`, the git hook and the editor's "Explain this change". Every
model call goes through the engine (routing policy, sensitivity gate, ledger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lsp_server.backends.base import CancelToken
from lsp_server.engine.core import Engine
from lsp_server.engine.jobs import ChatJob
from lsp_server.engine.results import AssistResult
from lsp_server.explain.commit_message import check_commit_message, repair_commit_message
from lsp_server.explain.diff import DiffChunk, DiffTally, FileChange, chunk_diff
from lsp_server.explain.document_prompts import (
    COMMIT_DOCUMENT_CHARS,
    commit_document,
    commit_from_explanation_document,
    explain_document,
    merge_document,
)
from lsp_server.explain.facts import (
    ChangeFacts,
    FactsBuilder,
    SubjectCheck,
    TextSource,
    fact_bullets,
    ground_message,
    prompt_facts,
)
from lsp_server.explain.facts.message import PROMPT_FACTS_CHARS
from lsp_server.explain.prompts import (
    commit_message_from_diff_messages,
    commit_message_messages,
    explain_messages,
    merge_messages,
)
from lsp_server.routing.policy import LatencyClass
from lsp_server.token_estimate import chars_for_tokens, estimate_tokens

Progress = Callable[[int, int, str], None]  # (done, total, what)

# Room left in the local context for the instructions and the answer.
PROMPT_OVERHEAD_TOKENS = 300
# The facts take what room the prompt has left (chunks are cut as without them), up to
# `PROMPT_FACTS_CHARS`; with less room than a few lines, a prompt goes without them.
MIN_FACTS_CHARS = 120
# The explanation ends with the facts, so that it says at least what they say.
EXPLANATION_FACT_LINES = 8
# Answer lengths: explanations are short sections, a commit message a few lines.
EXPLAIN_MAX_TOKENS = 320
COMMIT_MAX_TOKENS = 96


@dataclass
class ExplainResult:
    explanation: str
    commit_message: str | None
    results: list[AssistResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    chunks: int = 0
    files: int = 0
    facts: ChangeFacts | None = None  # None: grounding was off
    subject_check: SubjectCheck | None = None  # how the model's subject fared against the facts
    model_message: str | None = None  # the model's commit message, well-formed, before the check
    timed_out: bool = False  # no model answered in time: the commit message is the facts' alone

    @property
    def decision(self) -> dict[str, Any] | None:
        """The first call's decision: the same object `ninetyten route --json` prints."""
        return self.results[0].decision.model_dump(mode="json") if self.results else None

    def usage(self) -> dict[str, Any]:
        attempts = [a for r in self.results for a in r.attempts]
        return {
            "calls": len(self.results),
            "chunks": self.chunks,
            "prompt_tokens": sum(a.usage.prompt_tokens for a in attempts),
            "completion_tokens": sum(a.usage.completion_tokens for a in attempts),
            "latency_ms": round(sum(a.latency_ms for a in attempts), 1),
            "cost_usd": round(sum(a.cost_usd for a in attempts), 6),
            "tiers": sorted({a.tier for a in attempts if a.outcome in ("ok", "low_confidence", "escalated")}),
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "explanation": self.explanation,
            "decision": self.decision,
            "usage": self.usage(),
            "skipped": self.skipped,
        }
        if self.commit_message is not None:
            data["commit_message"] = self.commit_message
        if self.facts is not None:
            data["facts"] = self.facts.lines()
        if self.subject_check is not None:
            check = self.subject_check
            data["subject_check"] = {
                "model_subject": check.model_subject,
                "replaced": check.replaced,
                "reason": check.reason,
                "ungrounded": list(check.ungrounded),
                "contradicted": list(check.contradicted),
                "type_fixed": check.type_fixed,
            }
        return data


def chunk_budget(engine: Engine, max_tokens: int) -> int:
    return max(256, engine.chat_local.n_ctx - max_tokens - PROMPT_OVERHEAD_TOKENS)


async def explain_changes(
    engine: Engine,
    changes: Iterable[FileChange],
    *,
    commit_message: bool = False,
    explanation: bool = True,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    latency: LatencyClass | None = None,
    texts: TextSource | None = None,
    grounded: bool = True,
    facts_builder: FactsBuilder | None = None,
) -> ExplainResult:
    """Map (explain each chunk) then reduce (merge), then optionally the commit message.

    With `explanation=False` (the git hook) a diff that fits one chunk gets its commit
    message in a single call, straight from the diff.

    Grounded (the default): the change's facts are extracted as the diff streams past (with
    whole file texts from `texts` when given, else from the hunks), every prompt carries the
    facts of what it is about, the commit message is checked against them (`ground_message`)
    and the explanation ends with them. `grounded=False` is the pipeline without facts (the
    eval's baseline). `facts_builder` is the one to collect them in (the caller keeps it: when the
    model runs out of time, the facts can still make the message).
    """
    await engine.wait_chat_ready()  # the chat model writes explanations (its context sizes the chunks)
    # Streamed: one file's hunks and one chunk at a time; only names and counts accumulate.
    tally = DiffTally()
    paths: list[str] = []
    every_path: dict[str, None] = {}  # old and new names of every file, sent or summarized
    builder = (facts_builder or FactsBuilder(texts)) if grounded else None

    def sendable() -> Iterable[FileChange]:
        for change in tally.watch(changes):
            paths.append(change.path)
            every_path.update((path, None) for path in (change.old_path, change.new_path) if path)
            if builder is not None:
                builder.add(change)  # before the chunk that holds it is yielded
            if not change.summarized_only:
                yield change
        if builder is not None:
            builder.complete = True

    max_tokens = min(engine.config.assist.max_tokens, EXPLAIN_MAX_TOKENS)
    budget = chunk_budget(engine, max_tokens)

    whole: ChangeFacts | None = None

    def change_facts() -> ChangeFacts | None:
        """The whole change's facts (None: grounding is off), built once: asked for only after
        the stream is drained, when no file can be added to them any more."""
        nonlocal whole
        if whole is None and builder is not None:
            whole = builder.facts()
        return whole

    def facts_of(alongside: str, chunk: DiffChunk | None = None) -> list[str]:
        """The facts of `chunk` (else of the whole change), in the room `alongside` leaves."""
        if builder is None:
            return []
        room = min(PROMPT_FACTS_CHARS, chars_for_tokens(budget - estimate_tokens(alongside)))
        if room < MIN_FACTS_CHARS:
            return []
        facts = builder.facts(chunk.paths) if chunk is not None else change_facts()
        return prompt_facts(facts, room) if facts is not None else []

    chunk_stream = chunk_diff(sendable(), budget)
    first = next(chunk_stream, None)
    second = next(chunk_stream, None) if first is not None else None
    result = ExplainResult("", None)
    step = 0

    def advance(what: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, 0, what)  # the total is unknown until the stream ends

    if commit_message and not explanation and second is None:
        list(chunk_stream)  # drain: the tally needs every file (summarized ones too)
        stats = tally.stats
        stats_line = f"{stats.files} files, +{stats.added} -{stats.removed}"
        skipped = tally.skipped
        result.skipped, result.files, result.chunks = skipped, stats.files, 1 if first else 0
        diff_text = first.text if first else "\n".join(skipped)
        prompt_lines = facts_of(diff_text)
        answer = await engine.run_chat(
            ChatJob(
                task="commit_message",
                messages=commit_message_from_diff_messages(diff_text, stats_line, prompt_lines),
                # A base model reads the diff's head only: more room for the facts.
                document=commit_document(diff_text, facts_of(diff_text[:COMMIT_DOCUMENT_CHARS])),
                path=first.files[0] if first and first.files else None,
                # The facts name every file, summarized ones too: every path is judged then.
                paths=tuple(every_path) if builder is not None or first is None else first.paths,
                kind="prose",
                extra_check=check_commit_message,
                latency=latency,
                max_tokens=min(engine.config.assist.max_tokens, COMMIT_MAX_TOKENS),
            ),
            cancel=cancel,
        )
        result.results.append(answer)
        _finish_message(result, repair_commit_message(answer.text or "", paths), change_facts())
        result.explanation = ""
        advance("wrote the commit message")
        return result

    parts: list[_Part] = []
    several = second is not None
    for chunk in _chain(first, second, chunk_stream):
        # Routed by every file in the chunk, old names of renames included; its facts are of those files only.
        chunk_facts = facts_of(chunk.text, chunk)
        answer = await engine.run_chat(
            ChatJob(
                task="explain",
                messages=explain_messages(
                    chunk.text, part=chunk.index + 1, parts=2 if several else 1, facts=chunk_facts
                ),
                document=explain_document(chunk.text, chunk_facts),
                path=chunk.files[0] if chunk.files else None,
                paths=chunk.paths,
                kind="prose",
                latency=latency,
                max_tokens=max_tokens,
            ),
            cancel=cancel,
        )
        result.results.append(answer)
        # Long chunk answers are cut so the merge prompt stays within the local context.
        parts.append(_Part((answer.text or "")[:2000], chunk.paths, answer.kept_home))
        result.chunks += 1
        advance(f"explained {', '.join(chunk.files[:3])}")
    stats = tally.stats
    skipped = tally.skipped
    result.skipped, result.files = skipped, stats.files
    stats_line = f"{stats.files} files, +{stats.added} -{stats.removed}"
    # Reduce in rounds of groups that fit the local context, until one answer is left.
    group_chars = chars_for_tokens(chunk_budget(engine, max_tokens))
    while len(parts) > 1:
        groups: list[list[_Part]] = [[]]
        for part in parts:
            if groups[-1] and sum(len(p.text) for p in groups[-1]) + len(part.text) > group_chars:
                groups.append([])
            groups[-1].append(part)
        merged_parts = []
        for group in groups:
            if len(group) == 1:
                merged_parts.append(group[0])
                continue
            part_texts = [part.text for part in group]
            joined = _Part.join(group)
            # What the local model wrote about a chunk that was kept home is as sensitive as the chunk.
            merged = await engine.run_chat(
                ChatJob(
                    task="explain",
                    messages=merge_messages(part_texts),
                    kind="prose",
                    document=merge_document(part_texts),
                    latency=latency,
                    max_tokens=max_tokens,
                    paths=joined.paths,
                    derived_from_kept_home=joined.kept_home,
                ),
                cancel=cancel,
            )
            result.results.append(merged)
            merged_parts.append(
                _Part((merged.text or joined.text)[:2000], joined.paths, joined.kept_home or merged.kept_home)
            )
            advance("merged explanations")
        if len(merged_parts) == len(parts):  # nothing could be combined: stop rather than loop
            parts = [_Part.join(parts)]
            break
        parts = merged_parts
    final = parts[0] if parts else _Part("", (), False)
    written = final.text
    if skipped:
        written = (
            (written.rstrip() + "\n\n" if written.strip() else "")
            + "Also changed (not sent to a model): "
            + "; ".join(skipped)
        )
    result.explanation = written.strip() or f"{stats.files} file(s) changed."
    if commit_message:
        prompt_lines = facts_of(result.explanation)
        answer = await engine.run_chat(
            ChatJob(
                task="commit_message",
                messages=commit_message_messages(result.explanation, stats_line, prompt_lines),
                document=commit_from_explanation_document(result.explanation, prompt_lines),
                kind="prose",
                extra_check=check_commit_message,
                latency=latency,
                max_tokens=min(engine.config.assist.max_tokens, COMMIT_MAX_TOKENS),
                paths=tuple(every_path),
                derived_from_kept_home=final.kept_home,
            ),
            cancel=cancel,
        )
        result.results.append(answer)
        _finish_message(result, repair_commit_message(answer.text or "", paths), change_facts())
        advance("wrote the commit message")
    if (facts := change_facts()) is not None:
        result.facts = facts
        bullets = fact_bullets(facts, EXPLANATION_FACT_LINES)
        if bullets:
            result.explanation += "\n\nChanged (from the diff):\n" + "\n".join(bullets)
    return result


def _finish_message(result: ExplainResult, message: str, facts: ChangeFacts | None) -> None:
    """The commit message: the model's, checked against the facts when there are any."""
    result.model_message = message
    if facts is None:
        result.commit_message = message
        return
    result.facts = facts
    grounded = ground_message(message, result.facts)
    result.commit_message = grounded.text
    result.subject_check = grounded.check


@dataclass(frozen=True)
class _Part:
    """An explanation on its way to the merge: its text, the files it is about, and whether it
    was written at home from content that had to stay home."""

    text: str
    paths: tuple[str, ...]
    kept_home: bool

    @staticmethod
    def join(parts: list["_Part"]) -> "_Part":
        return _Part(
            "\n\n".join(part.text for part in parts),
            tuple(dict.fromkeys(path for part in parts for path in part.paths)),
            any(part.kept_home for part in parts),
        )


def _chain(first: DiffChunk | None, second: DiffChunk | None, rest: Iterator[DiffChunk]) -> Iterator[DiffChunk]:
    for chunk in (first, second):
        if chunk is not None:
            yield chunk
    yield from rest
