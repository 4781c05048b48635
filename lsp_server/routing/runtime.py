"""The policy in force and the remote backends it describes, swapped as a unit on reload."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from lsp_server.backends.anthropic import AnthropicBackend
from lsp_server.backends.http.client import Cooldown, RetryPolicy
from lsp_server.backends.openai import OpenAICompatBackend
from lsp_server.routing.policy import LoadedPolicy, Policy, TierConfig, TierName
from lsp_server.routing.router import scanner_for
from lsp_server.sensitivity.scanner import SensitivityScanner

log = logging.getLogger(__name__)

RemoteBackend = OpenAICompatBackend | AnthropicBackend


def build_remote(config: TierConfig) -> RemoteBackend:
    assert config.base_url is not None  # validated by the policy model
    kwargs: dict[str, Any] = {
        "api_key_env": config.api_key_env,
        "timeout_s": config.timeout_s,
        "connect_timeout_s": config.connect_timeout_s,
        "retry": RetryPolicy(max_attempts=config.max_retries + 1, deadline_s=max(config.timeout_s, 5.0) * 2),
        "cooldown": Cooldown(failures=3, cooldown_s=30.0),
        "max_concurrent": config.max_concurrent,
    }
    if config.backend == "anthropic":
        return AnthropicBackend(config.base_url, config.model, **kwargs)
    return OpenAICompatBackend(config.base_url, config.model, **kwargs)


@dataclass
class PolicyState:
    """One consistent snapshot: policy, its scanner and its remote backends."""

    loaded: LoadedPolicy
    scanner: SensitivityScanner
    remote: dict[TierName, RemoteBackend] = field(default_factory=dict)

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @classmethod
    def build(cls, loaded: LoadedPolicy) -> "PolicyState":
        policy = loaded.policy
        remote: dict[TierName, RemoteBackend] = {}
        for tier in ("in_house", "frontier"):
            config = policy.tier(tier)  # type: ignore[arg-type]
            if config is not None:
                remote[tier] = build_remote(config)  # type: ignore[index]
        return cls(loaded=loaded, scanner=scanner_for(policy), remote=remote)

    def unavailable(self) -> set[TierName]:
        """Remote tiers resting after repeated failures (their cooldown is open)."""
        return {tier for tier, backend in self.remote.items() if backend.cooldown.is_open}

    async def aclose(self) -> None:
        for backend in self.remote.values():
            try:
                await backend.aclose()
            except Exception:  # closing must never take the server down
                log.debug("closing a backend failed", exc_info=True)

    def close_soon(self) -> None:
        """Close from synchronous code (old snapshots after a reload)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.create_task(self.aclose())
