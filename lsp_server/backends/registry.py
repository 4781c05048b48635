"""Every backend by the name a policy uses for it (`tiers.<tier>.backend`).

The policy validates its `backend` names against this table and the routing runtime
builds a tier's backend from it. Adding a backend is one new module plus one entry here.
Modules are imported only when a backend is built: reading a policy loads no client.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str  # where the class lives
    cls: str
    remote: bool  # an HTTP client for a server elsewhere; otherwise the local model


REGISTRY: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry("llama_cpp", "lsp_server.backends.llama_cpp.backend", "LlamaCppBackend", remote=False),
        BackendEntry("openai", "lsp_server.backends.openai", "OpenAICompatBackend", remote=True),
        BackendEntry("anthropic", "lsp_server.backends.anthropic", "AnthropicBackend", remote=True),
    )
}


def backend_names(*, remote: bool | None = None) -> tuple[str, ...]:
    return tuple(name for name, entry in REGISTRY.items() if remote is None or entry.remote == remote)


def is_remote(name: str) -> bool:
    return REGISTRY[name].remote


def backend_class(name: str) -> Any:
    entry = REGISTRY[name]
    return getattr(importlib.import_module(entry.module), entry.cls)


@dataclass(frozen=True)
class RemoteSettings:
    """How to reach a remote backend: what a policy tier says about it."""

    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_retries: int = 2
    max_concurrent: int = 4


def build_remote(name: str, settings: RemoteSettings) -> Any:
    from lsp_server.backends.http.cooldown import Cooldown
    from lsp_server.backends.http.retry import RetryPolicy

    if not is_remote(name):
        raise ValueError(f"{name} is not a remote backend")
    return backend_class(name)(
        settings.base_url,
        settings.model,
        api_key_env=settings.api_key_env,
        timeout_s=settings.timeout_s,
        connect_timeout_s=settings.connect_timeout_s,
        retry=RetryPolicy(max_attempts=settings.max_retries + 1, deadline_s=max(settings.timeout_s, 5.0) * 2),
        cooldown=Cooldown(failures=3, cooldown_s=30.0),
        max_concurrent=settings.max_concurrent,
    )
