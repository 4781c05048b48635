"""Explain, refactor or ask about a piece of code: the feature's prompts as an engine chat job."""

from __future__ import annotations

from lsp_server.assist.prompts import AssistInput, messages_for, postprocess
from lsp_server.backends.base import CancelToken
from lsp_server.engine.core import Engine
from lsp_server.engine.jobs import ChatJob
from lsp_server.engine.results import AssistResult
from lsp_server.routing.policy import LatencyClass


def assist_job(
    inp: AssistInput, *, auto_apply: bool = False, latency: LatencyClass | None = None, max_tokens: int | None = None
) -> ChatJob:
    return ChatJob(
        task=inp.task,
        messages=messages_for(inp),
        path=inp.path,
        kind="code" if inp.task == "refactor" else "prose",  # a refactor's answer must parse
        language=inp.language,
        original_length=len(inp.code),
        postprocess=lambda text: postprocess(inp, text),
        auto_apply=auto_apply,
        latency=latency,
        max_tokens=max_tokens,
    )


async def assist(
    engine: Engine,
    inp: AssistInput,
    *,
    cancel: CancelToken | None = None,
    auto_apply: bool = False,
    latency: LatencyClass | None = None,
    max_tokens: int | None = None,
) -> AssistResult:
    job = assist_job(inp, auto_apply=auto_apply, latency=latency, max_tokens=max_tokens)
    return await engine.run_chat(job, cancel=cancel)
