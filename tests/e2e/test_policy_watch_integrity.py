"""Policy hot reload when the file misbehaves: deleted, replaced atomically, written half-way,
rewritten many times in a burst. Real files, a real watchfiles watcher, a real server.

What the code defines (policy_watch.py, README "Where the policy comes from"): a change is
reloaded through the same precedence as at start, so deleting the workspace file hands over
to the next source (here: the built-in default); a file that does not parse or validate is an
error event and the last good policy stays in force; deleting a file named explicitly
(`--policy`) is such an error too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from lsp_server.ledger import LEDGER_FILENAME
from lsp_server.routing.policy import Policy, parse_policy
from lsp_server.routing.watch import PolicyEvent, PolicyWatcher
from tests.e2e.test_ledger_integrity import (  # a server that logs to a file
    _complete,
    _server,
)
from tests.lsp_session import open_document

TIMEOUT_S = 10.0


def policy_text(n: int) -> str:
    """A valid all-local policy; each n has its own digest (the deadline differs)."""
    return (
        f"version = 1\noffline = false\ndefault_route = \"local\"\n\n[tiers.local]\nbackend = \"llama_cpp\"\n"
        f"model = \"default\"\n\n[escalation]\ndeadline_ms = {1000 + n}\nmax_attempts = 2\n"
    )


def digest(n: int) -> str:
    return parse_policy(policy_text(n)).digest


BUILTIN = Policy().digest


def half_of(text: str) -> str:
    # Cut inside the deadline key: not valid TOML, the state of a file whose writer paused.
    return text[: text.index("deadline_ms") + 6]


def replace_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@pytest.fixture(autouse=True)
def no_user_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's own ~/.config/ninetyten/policy.toml would be the next source after a delete.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NINETYTEN_POLICY", raising=False)


class Watched:
    """A PolicyWatcher running on this loop, with every event it reported."""

    def __init__(self, explicit: str | None, workspace: Path | None) -> None:
        self.events: list[PolicyEvent] = []
        self.watcher = PolicyWatcher(explicit, workspace, self.events.append, debounce_ms=200)
        self.task: asyncio.Future[None] = asyncio.ensure_future(self.watcher.run())

    async def expect(self, check: Callable[[PolicyEvent], bool], what: str) -> PolicyEvent:
        """Wait for a new event that passes `check`; the watcher must still be running."""
        seen = len(self.events)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for event in self.events[seen:]:
                if check(event):
                    return event
            assert not self.task.done(), f"the watcher stopped: {self.task}"
            assert time.monotonic() < deadline, f"no event: {what}; got {self.events[seen:]}"
            await asyncio.sleep(0.02)

    async def settle(self, quiet_s: float = 0.8) -> None:
        """Wait until no event has arrived for quiet_s."""
        count, since = len(self.events), time.monotonic()
        while time.monotonic() - since < quiet_s:
            await asyncio.sleep(0.05)
            if len(self.events) != count:
                count, since = len(self.events), time.monotonic()


@contextlib.asynccontextmanager
async def watching(explicit: str | None, workspace: Path | None, first: Path) -> AsyncIterator[Watched]:
    watched = Watched(explicit, workspace)
    try:
        # watchfiles gives no "ready" signal: touch the file until a change comes through.
        deadline = time.monotonic() + TIMEOUT_S
        while not watched.events:
            assert time.monotonic() < deadline, "the watcher never reported a change"
            first.write_text(first.read_text())
            await asyncio.sleep(0.3)
        await watched.settle(0.4)
        yield watched
    finally:
        watched.watcher.stop()
        await asyncio.wait_for(watched.task, 10)


def loaded(n: int) -> Callable[[PolicyEvent], bool]:
    return lambda event: event.loaded is not None and event.loaded.digest == digest(n)


def is_error(event: PolicyEvent) -> bool:
    return event.error is not None and event.loaded is None


async def test_workspace_policy_deleted_replaced_half_written_and_flapping(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    path = workspace / ".ninetyten" / "policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text(policy_text(1))
    async with watching(None, workspace, path) as w:
        replace_atomically(path, policy_text(2))
        event = await w.expect(loaded(2), "atomic replace")
        assert event.loaded.source == "workspace" and event.loaded.path == path  # type: ignore[union-attr]

        # Half-way: an error naming the file, no policy (the server keeps the last good one).
        path.write_text(half_of(policy_text(3)))
        event = await w.expect(is_error, "half-written file")
        assert event.path == path and "not valid TOML" in str(event.error)
        assert not any(e.loaded for e in w.events[w.events.index(event) :])
        with path.open("a") as handle:
            handle.write(policy_text(3)[len(half_of(policy_text(3))) :])
        await w.expect(loaded(3), "the completed file")

        # Deleted: the next source in the precedence applies, which here is the built-in default.
        path.unlink()
        event = await w.expect(lambda e: e.loaded is not None and e.loaded.source == "builtin", "delete")
        assert event.loaded.path is None and event.loaded.digest == BUILTIN  # type: ignore[union-attr]
        path.write_text(policy_text(4))
        await w.expect(loaded(4), "recreated after delete")

        # A burst of saves (plain, atomic, broken ones in between): the last content wins.
        for n in range(10, 40):
            text = policy_text(n) if n % 3 else half_of(policy_text(n))
            replace_atomically(path, text) if n % 2 else path.write_text(text)
            await asyncio.sleep(0.005 * (n % 4))
        path.write_text(policy_text(99))
        await w.expect(loaded(99), "final content after the burst")
        await w.settle()
        assert loaded(99)(w.events[-1]), w.events[-1]

        # The whole folder removed, then created again with a policy in it.
        shutil.rmtree(path.parent)
        await w.expect(lambda e: e.loaded is not None and e.loaded.source == "builtin", "folder removed")
        path.parent.mkdir()
        await asyncio.sleep(0.1)  # a separate step, as `mkdir` and then an editor's save would be
        path.write_text(policy_text(5))
        await w.expect(loaded(5), "policy in the recreated folder")


async def test_explicit_policy_file_keeps_last_good_when_deleted(tmp_path: Path) -> None:
    # --policy / NINETYTEN_POLICY may name any file, not only "policy.toml".
    path = tmp_path / "team" / "routing.toml"
    path.parent.mkdir()
    path.write_text(policy_text(1))
    async with watching(str(path), tmp_path / "ws", path) as w:
        replace_atomically(path, policy_text(2))
        await w.expect(loaded(2), "atomic replace of an explicit file")
        path.unlink()
        event = await w.expect(is_error, "explicit file deleted")
        assert event.path == path and "does not exist" in str(event.error)
        path.write_text(policy_text(3))
        await w.expect(loaded(3), "explicit file back")


# --- the real server ------------------------------------------------------------------------


def _in_force(client, n: int | None) -> bool:  # type: ignore[no-untyped-def]
    wanted = BUILTIN if n is None else digest(n)
    return any(f"policy {wanted} in force" in m.message for m in client.log_messages)


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.05)


async def test_server_follows_a_misbehaving_policy_file_and_keeps_answering(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    path = workspace / ".ninetyten" / "policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text(policy_text(1))
    uri_of_policy = path.resolve().as_uri()
    home = tmp_path / "home"
    served_under: dict[str, str] = {}  # request id -> digest that should be on its ledger row
    async with _server(tiny_model_path, home, tmp_path / "server.log", root=workspace) as client:
        uri = open_document(client, workspace / "m.py", "def f(a):\n    return a\n\n\ndef g(b):\n    \n")

        async def served(n: int | None) -> None:
            request_id = await _complete(client, uri)
            assert request_id, "the server stopped answering"
            served_under[request_id] = BUILTIN if n is None else digest(n)

        await served(1)
        await asyncio.sleep(0.5)  # the watcher is up (it starts after `initialized`)

        replace_atomically(path, policy_text(2))
        await _until(lambda: _in_force(client, 2), "atomically replaced policy in force")
        await served(2)

        path.write_text(half_of(policy_text(3)))
        await _until(lambda: bool(client.diagnostics.get(uri_of_policy)), "diagnostics for the half-written file")
        await served(2)  # the last good policy routes meanwhile
        with path.open("a") as handle:
            handle.write(policy_text(3)[len(half_of(policy_text(3))) :])
        await _until(
            lambda: _in_force(client, 3) and not client.diagnostics.get(uri_of_policy),
            "completed policy in force, diagnostics cleared",
        )
        await served(3)

        path.unlink()
        await _until(lambda: _in_force(client, None), "built-in default after delete")
        await served(None)

        for n in range(10, 30):
            text = policy_text(n) if n % 3 else half_of(policy_text(n))
            replace_atomically(path, text) if n % 2 else path.write_text(text)
        replace_atomically(path, policy_text(77))
        await _until(
            lambda: _in_force(client, 77) and not client.diagnostics.get(uri_of_policy),
            "final policy of the burst in force",
        )
        await asyncio.sleep(0.8)  # nothing later may override it
        last = [m.message for m in client.log_messages if " in force " in m.message][-1]
        assert digest(77) in last, last
        await served(77)
        assert client._server is not None and client._server.returncode is None

    with contextlib.closing(sqlite3.connect(home / LEDGER_FILENAME)) as conn:
        recorded = dict(conn.execute("SELECT request_id, policy_hash FROM attempts"))
    # Each request was routed by the policy that was in force when it came in.
    assert {rid: recorded.get(rid) for rid in served_under} == served_under


async def test_other_files_do_not_wake_the_watcher_and_a_failed_swap_does_not_stop_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = tmp_path / "ws"
    path = workspace / ".ninetyten" / "policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text(policy_text(1))
    (workspace / ".ninetyten" / "notes.md").write_text("x")
    async with watching(None, workspace, path) as w:
        # A server log or build output next to the policy: no reload, no log line per write.
        caplog.clear()
        caplog.set_level("INFO", logger="watchfiles")
        before = len(w.events)
        for n in range(20):
            (workspace / ".ninetyten" / "notes.md").write_text(str(n))
            (workspace / "build.log").write_text(str(n))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.6)
        assert len(w.events) == before
        assert [r.getMessage() for r in caplog.records if r.name.startswith("watchfiles")] == []

        # The server's handler fails once (say, a backend cannot be built): the watch goes on.
        def fail_once(event: PolicyEvent) -> None:
            w.watcher.on_change = w.events.append
            raise ValueError("swap failed")

        w.watcher.on_change = fail_once
        path.write_text(policy_text(2))
        await asyncio.sleep(0.8)
        path.write_text(policy_text(3))
        await w.expect(loaded(3), "a change after a failed swap")


async def test_an_approval_and_an_edit_of_the_users_policy_reach_a_running_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository policy is laid over the user's own and trusted as far as approved: an
    approval from another process (`ninetyten policy trust`) and an edit of the user's policy
    change the policy in force without touching the repository's file."""
    from lsp_server.routing.policy_trust import TrustStore, file_digest

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("NINETYTEN_HOME", str(home))
    user = tmp_path / "config" / "ninetyten" / "policy.toml"
    user.parent.mkdir(parents=True)
    workspace = tmp_path / "ws"
    path = workspace / ".ninetyten" / "policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text(policy_text(1) + '\n[[rules]]\nname = "out"\nroute = "frontier"\n')
    async with watching(None, workspace, path) as w:
        assert w.events[-1].loaded is not None and w.events[-1].loaded.trust == "untrusted"
        TrustStore().approve(path, file_digest(path.read_bytes()))
        event = await w.expect(lambda e: e.loaded is not None and e.loaded.trust == "approved", "the approval")
        assert event.loaded.policy.rules[0].name == "out"  # type: ignore[union-attr]
        user.write_text("version = 1\noffline = true\n[tiers.local]\nbackend = \"llama_cpp\"\nmodel = \"default\"\n")
        event = await w.expect(lambda e: e.loaded is not None and e.loaded.base == user, "the user's policy")
        # Approved, the repository's `offline = false` wins over the user's `offline = true`.
        assert event.loaded.policy.offline is False  # type: ignore[union-attr]
        TrustStore().revoke(path)
        event = await w.expect(lambda e: e.loaded is not None and e.loaded.trust == "untrusted", "the revocation")
        assert event.loaded.policy.offline is True  # type: ignore[union-attr]
