"""The policy in force and the remote backends it describes, swapped as a unit on reload."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lsp_server.backends.registry import RemoteSettings, build_remote
from lsp_server.routing.policy import LoadedPolicy, Policy, TierConfig
from lsp_server.routing.router import scanner_for
from lsp_server.sensitivity.scanner import SensitivityScanner
from lsp_server.tiers import REMOTE_TIERS, TierName

if TYPE_CHECKING:  # the registry imports a client (and httpx) only when a policy has a remote tier
    from lsp_server.backends.http.client import HttpBackend as RemoteBackend

log = logging.getLogger(__name__)

# A request that took the policy snapshot before a reload keeps using its clients: closing
# them at once made it fail as a lost connection. They are closed once the longest call that
# could have started on them is over, and never sooner than this.
MIN_GRACE_S = 30.0


def remote_for(config: TierConfig) -> RemoteBackend:
    """The client a remote tier describes, built by the backend registry."""
    assert config.base_url is not None  # validated by the policy model
    return build_remote(
        config.backend,
        RemoteSettings(
            base_url=config.base_url,
            model=config.model,
            api_key_env=config.api_key_env,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            max_concurrent=config.max_concurrent,
        ),
    )


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
        for tier in REMOTE_TIERS:
            config = policy.tier(tier)
            if config is not None:
                remote[tier] = remote_for(config)
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

    def close_soon(self, grace_s: float | None = None) -> None:
        """Close from synchronous code (old snapshots after a reload), once the requests that
        took this snapshot before the swap have had time to finish on it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if grace_s is None:
            grace_s = self.longest_call_s()
        loop.call_later(grace_s, lambda: loop.create_task(self.aclose()))

    def longest_call_s(self) -> float:
        """How long a call that started on this snapshot may still run: its retries' deadline
        and one more time box."""
        calls = [backend.retry.deadline_s + backend.timeout_s for backend in self.remote.values()]
        return max([MIN_GRACE_S, *calls])
