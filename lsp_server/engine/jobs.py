"""What a feature hands the engine: a chat job, or a completion job.

The engine knows how to route, run, check, escalate and record; the feature knows its
prompts. A job carries the feature's side as plain values and callables, so the engine
imports no feature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from lsp_server.backends.base import CancelToken, ChatMessage, Generation
from lsp_server.engine.document import DocumentPrompt
from lsp_server.routing.policy import LatencyClass, TaskType
from lsp_server.tiers import TierName


@dataclass
class ChatJob:
    """A chat task as the engine runs it: messages plus what a good answer means."""

    task: TaskType
    messages: list[ChatMessage]
    path: str | None = None
    kind: Literal["code", "prose"] = "prose"
    language: str | None = None
    original_length: int | None = None
    postprocess: Callable[[str], str] = str.strip
    # Messages for the next tier after a draft failed its checks (the draft goes along).
    retry_messages: Callable[[str, list[str]], list[ChatMessage]] | None = None
    extra_check: Callable[[str], list[str]] | None = None  # task-specific format checks
    # For a local base model without a chat template: a document it continues instead.
    document: DocumentPrompt | None = None
    auto_apply: bool = False
    latency: LatencyClass | None = None
    max_tokens: int | None = None
    # Every file the content comes from (a diff chunk: old and new names too); `path` is one of them.
    paths: tuple[str, ...] = ()
    # Made from answers that were kept home (see AssistResult.kept_home): it stays home.
    derived_from_kept_home: bool = False

    @property
    def all_paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in (self.path, *self.paths) if p))

    def retry(self, draft: str, failed: list[str]) -> list[ChatMessage]:
        if self.retry_messages is not None:
            return self.retry_messages(draft, failed)
        note = ", ".join(failed) or "low confidence"
        return [
            *self.messages,
            ChatMessage("assistant", draft),
            ChatMessage("user", f"That answer failed automatic checks ({note}). Please answer again, correctly."),
        ]


class LocalCompletion(Protocol):
    """What the local model made of a completion prompt, after the feature's post-processing."""

    @property
    def text(self) -> str | None: ...  # None: nothing worth showing

    @property
    def generation(self) -> Generation: ...

    @property
    def mode(self) -> str: ...  # the prompt's shape: "fim" or "prefix"

    @property
    def build_ms(self) -> float: ...

    @property
    def alternatives(self) -> list[str]: ...  # other suggestions where the model was unsure


@dataclass(frozen=True)
class RemoteCompletionPrompt:
    """What a stronger tier gets for a completion, and what of the context stayed home."""

    messages: list[ChatMessage]
    # A content-free reason for the remote attempt's ledger row ("context_withheld: ...").
    withheld: str | None = None


@dataclass(frozen=True)
class CompletionJob:
    """An inline completion as the engine runs it (see lsp_server.completion.complete)."""

    path: str
    # Runs the local model on the feature's prompt, with its stop rules and post-processing.
    run_local: Callable[[CancelToken | None], Awaitable[LocalCompletion]]
    # The text around the cursor a routing scan reads, asked for only when content could leave.
    route_window: Callable[[], str]
    # The prompt the stronger tier `target` gets when the local answer is not confident enough
    # (context from other files goes only where the sensitivity gate lets it).
    remote_prompt: Callable[[TierName], RemoteCompletionPrompt]
