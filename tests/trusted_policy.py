"""Approve a repository policy for a test, as `ninetyten policy trust --yes` would.

A workspace's `.ninetyten/policy.toml` is untrusted until the user approves its digest;
tests that mean the team's policy to apply in full approve it in the data dir
(`NINETYTEN_HOME`) of the server, CLI or hook they run.
"""

from __future__ import annotations

from pathlib import Path

from lsp_server.routing.policy_trust import TRUST_FILE, TrustStore, file_digest

__all__ = ["trust_policy"]


def trust_policy(path: Path, home: Path) -> Path:
    """Record the approval of `path` as it is now in `home`; returns the path."""
    TrustStore(home / TRUST_FILE).approve(path, file_digest(path.read_bytes()))
    return path
