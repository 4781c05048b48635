"""Which policy applies here, loaded: --policy, NINETYTEN_POLICY, the repository's
.ninetyten/policy.toml (laid over the user's own, trusted only as far as approved), the
user's own, or the built-in default (everything local)."""

from __future__ import annotations

import os
from pathlib import Path

from lsp_server.routing.policy import (
    POLICY_ENV,
    WORKSPACE_POLICY,
    LoadedPolicy,
    Policy,
    PolicyError,
    load_policy_file,
    user_policy_path,
)
from lsp_server.routing.policy_trust import load_workspace_policy


def find_policy(explicit: str | Path | None = None, workspace: Path | None = None) -> tuple[str, Path | None]:
    """Which policy file applies: (source, path); path None means the built-in default."""
    if explicit:
        return "flag", Path(explicit)
    env = os.environ.get(POLICY_ENV, "").strip()
    if env:
        return "env", Path(env)
    if workspace is not None:
        candidate = workspace / WORKSPACE_POLICY
        if candidate.is_file():
            return "workspace", candidate
    user = user_policy_path()
    if user.is_file():
        return "user", user
    return "builtin", None


def load_policy(explicit: str | Path | None = None, workspace: Path | None = None) -> LoadedPolicy:
    """Find and load the policy that applies; PolicyError when that file is broken.

    A workspace's policy comes laid over the user's own and trusted only as far as the user
    approved it."""
    source, path = find_policy(explicit, workspace)
    if path is None:
        return LoadedPolicy(Policy(), "builtin", None)
    if not path.is_file():
        raise PolicyError(path, [(None, "", "the policy file does not exist")])
    if source == "workspace":
        return load_workspace_policy(path)
    return LoadedPolicy(load_policy_file(path), source, path)  # type: ignore[arg-type]
