"""Trust in a repository's policy: the user's approvals, and the policy a workspace gets.

Like an editor's workspace trust, or direnv's `allow`: a repository's `.ninetyten/policy.toml`
is untrusted until the user approves that exact file (its path and the SHA-256 of its bytes).
Until then it may only make routing stricter (see `policy_merge`); once approved, its other
settings apply as well. Any change to the file needs a new approval: the digest no longer
matches. Approvals live in the user's data dir (`NINETYTEN_HOME`), never in the repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from local_models.paths import ninetyten_home
from lsp_server.routing.policy import (
    LoadedPolicy,
    Policy,
    PolicyError,
    load_policy_file,
    parse_policy,
    user_policy_path,
)
from lsp_server.routing.policy_merge import IgnoredKey, merge_repository_policy

log = logging.getLogger(__name__)

TRUST_FILE = "trusted-policies.json"
MAX_POLICY_BYTES = 1_000_000  # a policy is a few KB; anything this big is not one


@dataclass(frozen=True)
class Approval:
    path: str  # absolute, symlinks resolved
    sha256: str  # of the file's bytes when the user approved it
    approved_at: str  # ISO 8601, UTC


def default_store_path() -> Path:
    """Where approvals are kept: the user's data dir (`NINETYTEN_HOME`), not created by asking."""
    return ninetyten_home(create=False) / TRUST_FILE


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def policy_key(path: Path) -> str:
    """How an approval names a file: its absolute path with symlinks resolved."""
    return str(path.expanduser().resolve())


class TrustStore:
    """The approved repository policies, one JSON file in the user's data dir.

    A missing or unreadable store approves nothing. Writes replace the file atomically, so a
    reader sees the old list or the new one, never half of one."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else default_store_path()

    def approvals(self) -> dict[str, Approval]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("the list of trusted policies (%s) is unreadable, so nothing is trusted: %s", self.path, error)
            return {}
        found: dict[str, Approval] = {}
        for item in raw.get("approved", []) if isinstance(raw, dict) else []:
            if isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("path", "sha256")):
                found[item["path"]] = Approval(item["path"], item["sha256"], str(item.get("approved_at", "")))
        return found

    def is_approved(self, path: Path, sha256: str) -> bool:
        approval = self.approvals().get(policy_key(path))
        return approval is not None and approval.sha256 == sha256

    def approve(self, path: Path, sha256: str) -> Approval:
        approval = Approval(policy_key(path), sha256, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        with self._locked():
            approvals = self.approvals()
            approvals[approval.path] = approval  # one digest per file: approving again replaces it
            self._write(approvals)
        return approval

    def revoke(self, path: Path) -> bool:
        with self._locked():
            approvals = self.approvals()
            removed = approvals.pop(policy_key(path), None)
            if removed is not None:
                self._write(approvals)
        return removed is not None

    def _write(self, approvals: dict[str, Approval]) -> None:
        target = self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": 1, "approved": [vars(a) for a in sorted(approvals.values(), key=lambda a: a.path)]}
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle, indent=2)
                handle.write("\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write across processes (two editors approving at once)."""
        try:
            import fcntl
        except ImportError:  # Windows: the atomic replace still keeps the file whole
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RepositoryPolicy:
    """A repository policy file as read once: its bytes' digest and what they parse to."""

    path: Path
    sha256: str
    policy: Policy


def read_repository_policy(path: Path) -> RepositoryPolicy:
    """Read the file once, so the digest approved is the digest of what was parsed."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as error:
        raise PolicyError(path, [(None, "", f"cannot read the file: {error}")]) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(path, [(None, "", f"the file is over {MAX_POLICY_BYTES} bytes: not a policy")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PolicyError(path, [(None, "", f"cannot read the file: {error}")]) from None
    return RepositoryPolicy(path, file_digest(data), parse_policy(text, path))


def user_or_builtin_policy() -> LoadedPolicy:
    """The user's own policy (config dir), or the built-in default: what a repository's sits on."""
    user = user_policy_path()
    if user.is_file():
        return LoadedPolicy(load_policy_file(user), "user", user)
    return LoadedPolicy(Policy(), "builtin", None)


def load_workspace_policy(
    path: Path, *, base: LoadedPolicy | None = None, store: TrustStore | None = None
) -> LoadedPolicy:
    """A repository's policy over the user's: trusted only as far as the user approved it."""
    repo = read_repository_policy(path)
    base = base if base is not None else user_or_builtin_policy()
    approved = (store or TrustStore()).is_approved(path, repo.sha256)
    try:
        merged = merge_repository_policy(base.policy, repo.policy, trusted=approved)
    except ValidationError as error:  # each is valid alone; say so rather than fail obscurely
        raise PolicyError(
            path,
            [
                (
                    None,
                    "",
                    f"cannot be laid over {base.path or 'the built-in default'}: "
                    f"{error.errors()[0]['msg'] if error.errors() else error}",
                )
            ],
        ) from None
    return LoadedPolicy(
        merged.policy,
        "workspace",
        path,
        trust="approved" if approved else "untrusted",
        ignored=merged.ignored,
        sha256=repo.sha256,
        base=base.path,
    )


def approve_policy(
    path: Path, *, expected_sha256: str | None = None, store: TrustStore | None = None
) -> tuple[LoadedPolicy, Approval]:
    """Approve a repository policy as it is now; with `expected_sha256`, only if it is still the
    file the user was shown (it may have changed since)."""
    repo = read_repository_policy(path)
    if expected_sha256 is not None and repo.sha256 != expected_sha256:
        raise PolicyError(
            path, [(None, "", "the file changed since it was shown; look at it again before trusting it")]
        )
    store = store or TrustStore()
    approval = store.approve(path, repo.sha256)
    return load_workspace_policy(path, store=store), approval


def trust_summary(loaded: LoadedPolicy) -> list[str]:
    """Plain lines for `doctor`, `policy show` and the CLI: the trust state, what is ignored."""
    if loaded.source != "workspace":
        where = {"flag": "--policy", "env": "NINETYTEN_POLICY", "user": "your config dir", "builtin": "built in"}[
            loaded.source
        ]
        return [f"trusted: your own policy ({where})"]
    under = f"your policy {loaded.base}" if loaded.base else "the built-in default (everything local)"
    if loaded.trust == "approved":
        lines = [
            f"approved: this repository policy (sha256 {loaded.sha256[:12] if loaded.sha256 else '?'}) "
            f"is laid over {under}"
        ]
        lines += [f"  allowed by your approval: {item}" for item in loaded.ignored]
        return lines
    if not loaded.ignored:
        return [f"not approved, and it needs no approval: it only makes {under} stricter"]
    lines = [
        f"NOT TRUSTED: {len(loaded.ignored)} setting(s) of this repository policy are ignored; "
        f"in force: {under} plus the policy's stricter parts"
    ]
    lines += [f"  ignored: {item}" for item in loaded.ignored]
    lines.append(f"  to allow them: ninetyten policy trust {loaded.path}")
    return lines


def ignored_json(items: tuple[IgnoredKey, ...]) -> list[dict[str, str]]:
    return [item.to_json() for item in items]


def trust_state(loaded: LoadedPolicy) -> dict[str, object]:
    """What editors are told (`ninetyten/policyTrust`): enough to show what approval allows and
    to approve exactly the file that was shown (its digest)."""
    return {
        "source": loaded.source,
        "path": str(loaded.path) if loaded.path else None,
        "trust": loaded.trust,
        "sha256": loaded.sha256,
        "base": str(loaded.base) if loaded.base else None,
        "needsApproval": loaded.needs_approval,
        "ignored": ignored_json(loaded.ignored),
        "policyHash": loaded.digest,
    }


def untrusted_notice(loaded: LoadedPolicy, shown_path: str | None = None) -> str:
    """One sentence for the user: what is ignored and how to allow it."""
    keys = [item.key for item in loaded.ignored]
    listed = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    under = "your own policy" if loaded.base else "the built-in all-local default"
    return (
        f"the repository's policy {shown_path or loaded.path} is not trusted: {len(keys)} setting(s) that could "
        f"send code, keys or money elsewhere are ignored ({listed}); {under} is in force with the policy's "
        f"stricter parts. `ninetyten policy trust` shows them and allows them."
    )
