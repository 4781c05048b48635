"""Hot reload of the routing policy: watch, validate, swap or keep the last good one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from lsp_server.routing.policy import WORKSPACE_POLICY, LoadedPolicy, Policy, PolicyError, user_policy_path
from lsp_server.routing.policy_lookup import find_policy, load_policy
from lsp_server.routing.policy_trust import TRUST_FILE, default_store_path

log = logging.getLogger(__name__)


@dataclass
class PolicyEvent:
    """What a reload produced: a new policy, or the error that kept the old one."""

    loaded: LoadedPolicy | None
    error: PolicyError | None
    path: Path | None


def initial_policy(explicit: str | None, workspace: Path | None) -> PolicyEvent:
    """The policy to start with; a broken file means the built-in default (everything local)."""
    try:
        loaded = load_policy(explicit, workspace)
        return PolicyEvent(loaded, None, loaded.path)
    except PolicyError as error:
        return PolicyEvent(LoadedPolicy(Policy(), "builtin", None), error, error.path)


class PolicyWatcher:
    """Watches where the policy can come from and reports every change."""

    def __init__(
        self,
        explicit: str | None,
        workspace: Path | None,
        on_change: Callable[[PolicyEvent], Awaitable[None] | None],
        debounce_ms: int = 200,
    ) -> None:
        self.explicit = explicit
        self.workspace = workspace
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self._stop = asyncio.Event()

    def watch_dirs(self) -> list[Path]:
        """Parent folders, watched non-recursively: files may be replaced atomically or deleted."""
        dirs: list[Path] = []
        source, path = find_policy(self.explicit, self.workspace)
        if path is not None:
            dirs.append(path.parent)
        if source == "workspace":
            # A repository policy is laid over the user's own and trusted as far as approved:
            # an edit of the user's policy or an approval (`ninetyten policy trust`) changes it.
            dirs += [user_policy_path().parent, default_store_path().parent]
        if self.workspace is not None:
            policy_dir = self.workspace / WORKSPACE_POLICY.parent
            dirs.append(policy_dir if policy_dir.is_dir() else self.workspace)
        return [d for d in dict.fromkeys(dirs) if d.is_dir()]

    def reload(self) -> PolicyEvent:
        try:
            loaded = load_policy(self.explicit, self.workspace)
            return PolicyEvent(loaded, None, loaded.path)
        except PolicyError as error:
            return PolicyEvent(None, error, error.path)

    def watch_names(self) -> set[str]:
        """Names in the watched folders whose change can change the policy in force."""
        names = {WORKSPACE_POLICY.name, WORKSPACE_POLICY.parent.name}
        source, path = find_policy(self.explicit, self.workspace)
        if path is not None:
            names.add(path.name)  # --policy / NINETYTEN_POLICY may name any file
        if source == "workspace":
            names |= {user_policy_path().name, TRUST_FILE}
        return names

    async def run(self) -> None:
        while not self._stop.is_set():
            dirs = self.watch_dirs()
            if not dirs:
                return
            watched = set(dirs)
            names = self.watch_names()

            # Only those names: other files in the workspace root (a log, build output) must not
            # wake the watcher, nor write a "change detected" log line each time.
            def relevant(_change: watchfiles.Change, changed: str, names: set[str] = names) -> bool:
                return Path(changed).name in names

            try:
                async for _changes in watchfiles.awatch(
                    *dirs, recursive=False, debounce=self.debounce_ms, stop_event=self._stop, watch_filter=relevant
                ):
                    try:
                        result = self.on_change(self.reload())
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:  # one failed swap must not end hot reload for the session
                        log.exception("applying the reloaded policy failed; still watching")
                    if set(self.watch_dirs()) != watched or self.watch_names() != names:
                        break  # e.g. .ninetyten/ was created: watch it instead
            except (FileNotFoundError, RuntimeError, OSError):
                log.debug("policy watch restarted", exc_info=True)
                await asyncio.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
