"""Who and where, as the team ledger records them: pseudonymous by default.

- The user is a keyed hash of the user name (HMAC-SHA-256, 16 hex digits): the same person
  gets the same key on every machine and in every report, and someone holding an export of
  the ledger cannot look names up without the key. The key is the team's own secret when
  `team_ledger.pseudonym_key_env` names one, otherwise a random key the database made at its
  first migration (then anyone who can read the database can test names against it, which
  is why a team secret is better). `team_ledger.user = "name"` records the plain name.
- The repository is `team_ledger.project` when set, otherwise `r-` and 16 hex digits of the
  SHA-256 of its normalised remote URL (without credentials, scheme or `.git`), so every
  clone of one repository gets the same key, and the key says nothing a teammate could not
  compute from the URL. A workspace that is not a git repository with a remote has none.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import re
import subprocess
from pathlib import Path

from lsp_server.ledger.errors import TeamLedgerError
from lsp_server.ledger.settings import TeamLedgerSettings


def user_key(settings: TeamLedgerSettings, database_key: str, user_name: str | None = None) -> str:
    name = user_name if user_name is not None else _user_name()
    if settings.user == "name":
        return name
    key = database_key
    if settings.pseudonym_key_env:
        key = os.environ.get(settings.pseudonym_key_env, "")
        if not key:
            raise TeamLedgerError(
                f"team_ledger.pseudonym_key_env names ${settings.pseudonym_key_env}, which is not set"
            )
    if not key:
        raise TeamLedgerError("the team ledger has no pseudonym key")
    return "u-" + hmac.new(key.encode(), name.encode(), hashlib.sha256).hexdigest()[:16]


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.*)$")  # git@host:org/repo.git


def normalise_remote(url: str) -> str:
    """host/path of a git remote, the same for its https, ssh and scp-like spellings."""
    url = url.strip()
    match = _SCP_LIKE.match(url)
    if match and "://" not in url:
        host, path = match.groups()
    else:
        rest = url.split("://", 1)[-1]
        rest = rest.rsplit("@", 1)[-1] if "@" in rest.split("/", 1)[0] else rest  # drop user:password@
        host, _, path = rest.partition("/")
        host = host.split(":", 1)[0]  # drop the port
    path = path.strip("/")
    path = path[:-4] if path.endswith(".git") else path
    return f"{host.lower()}/{path}"


def repo_key(workspace: Path | None, settings: TeamLedgerSettings) -> str | None:
    if settings.project:
        return settings.project
    if workspace is None:
        return None
    remote = _git_remote(workspace)
    if remote is None:
        return None
    return "r-" + hashlib.sha256(normalise_remote(remote).encode()).hexdigest()[:16]


def _git_remote(workspace: Path) -> str | None:
    """origin's URL, or the first remote's; None outside a git repository."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(workspace), *args], capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    url = git("config", "--get", "remote.origin.url")
    if url:
        return url
    first = git("remote").splitlines()
    return (git("config", "--get", f"remote.{first[0]}.url") or None) if first else None


__all__ = ["normalise_remote", "repo_key", "user_key"]
