"""Which local model serves which task: a completion model and, optionally, a chat model.

Completions want a fill-in-the-middle base model (Qwen2.5-Coder); explain, refactor, ask and
commit messages want an instruct model that follows a chat. The local tier may name both; a
request's task decides which one answers it. Without a chat model, the completion model
serves every task (a base model without a chat template then continues a document instead of
following a chat, see tasks/document.py).

Where each name comes from, first found wins:

| completion model         | chat model                    |
|--------------------------|-------------------------------|
| `--model`                | `--chat-model`                |
| `NINETYTEN_MODEL`        | `NINETYTEN_CHAT_MODEL`        |
| settings `model`         | settings `chat_model`         |
| the user's choice (`ninetyten models use`, local_models/choice.py)      |
| policy `tiers.local.model` | policy `tiers.local.chat_model` |
| the embedded default     | the completion model          |

The first two are read by `local_models.resolve_model`; this module supplies the rest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from local_models.choice import ModelChoice, Task, read_choice
from local_models.errors import ModelError
from local_models.resolve import CHAT_MODEL_ENV, MODEL_ENV
from lsp_server.config import ServerConfig
from lsp_server.routing.policy import TierConfig

log = logging.getLogger(__name__)


def user_choice() -> ModelChoice:
    """The user's saved choice; a broken file is logged and ignored (the other sources still apply)."""
    try:
        return read_choice()
    except ModelError as error:
        log.warning("%s", error)
        return ModelChoice()


def configured_model(task: Task, config: ServerConfig, choice: ModelChoice, local: TierConfig | None) -> str | None:
    """The model named for `task` below `--model` and the environment: settings, choice, policy."""
    if task == "completion":
        from_policy = local.model if local is not None and local.model != "default" else None
        return config.model or choice.completion or from_policy
    return config.chat_model or choice.chat or (local.chat_model if local is not None else None)


@dataclass(frozen=True)
class LocalModelNames:
    """What names each local model, as far as it can be told without touching a file."""

    completion: str | None  # None: the embedded default (after --model and NINETYTEN_MODEL)
    explicit_completion: str | None
    chat: str | None  # None: no chat model of its own, the completion model serves chat tasks
    explicit_chat: str | None
    draft: str | None

    def pinned(self, task: Task) -> str | None:
        """The model `--model` / `--chat-model` or the environment names for `task`: it wins over
        every other name."""
        if task == "completion":
            return self.explicit_completion or os.environ.get(MODEL_ENV, "").strip() or None
        return self.explicit_chat or os.environ.get(CHAT_MODEL_ENV, "").strip() or None

    @property
    def separate_chat(self) -> bool:
        chat = self.pinned("chat") or self.chat
        if not chat:
            return False
        return chat != (self.pinned("completion") or self.completion)


def local_model_names(
    config: ServerConfig,
    local: TierConfig | None,
    *,
    explicit_completion: str | None = None,
    explicit_chat: str | None = None,
    choice: ModelChoice | None = None,
) -> LocalModelNames:
    choice = choice if choice is not None else user_choice()
    return LocalModelNames(
        completion=configured_model("completion", config, choice, local),
        explicit_completion=explicit_completion,
        chat=configured_model("chat", config, choice, local),
        explicit_chat=explicit_chat,
        draft=config.draft_model or (local.draft_model if local is not None else None),
    )


__all__ = ["LocalModelNames", "Task", "configured_model", "local_model_names", "user_choice"]
