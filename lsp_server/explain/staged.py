"""The commit message for what is staged, as the git hook writes it: the model's message
checked against the facts of the staged files (read whole from HEAD and the index), or, when
the model runs out of time, the message those facts write alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsp_server.engine.core import Engine
from lsp_server.explain.diff import git_diff_stream, iter_parse_diff
from lsp_server.explain.facts import ChangeFacts, FactsBuilder, GitTexts, ground_message
from lsp_server.explain.pipeline import ExplainResult, explain_changes
from lsp_server.routing.policy import LatencyClass


async def staged_commit_message(
    repo: Path,
    engine: Engine,
    *,
    grounded: bool = True,
    latency: LatencyClass | None = "background",
    timeout_s: float | None = None,
) -> ExplainResult:
    """What the git hook writes for the staged change: the commit message alone, grounded in
    the facts of the staged files (their whole texts read from HEAD and the index).

    With `timeout_s`, a model that has not answered by then is abandoned: once the facts of
    every staged file are in, the message is written from them alone (`timed_out`); before
    that, TimeoutError."""
    with git_diff_stream(repo, staged=True) as stream, GitTexts.staged(repo) as texts:
        builder = FactsBuilder(texts) if grounded else None
        work = explain_changes(
            engine,
            iter_parse_diff(stream),
            commit_message=True,
            explanation=False,
            latency=latency,
            grounded=grounded,
            facts_builder=builder,
        )
        if timeout_s is None:
            return await work
        try:
            return await asyncio.wait_for(work, max(timeout_s, 0.0))
        except TimeoutError:
            if builder is None or not builder.complete:
                raise
            return facts_only_result(builder.facts())


def facts_only_result(facts: ChangeFacts) -> ExplainResult:
    """The commit message the facts alone make, for when no model answered."""
    grounded = ground_message("", facts)
    result = ExplainResult(
        "", grounded.text, files=len(facts.files), facts=facts, subject_check=grounded.check, timed_out=True
    )
    return result


def generate_commit_message(repo: Path, engine: Engine, *, timeout_s: float) -> ExplainResult | None:
    """The commit message for the staged change (`result.commit_message`; `result.timed_out`
    when the model did not answer in time and the facts wrote it), or None when nothing is staged.
    TimeoutError when not even the facts were ready in time."""
    result = asyncio.run(staged_commit_message(repo, engine, timeout_s=timeout_s))
    return result if result.files else None
