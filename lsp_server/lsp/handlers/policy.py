"""The routing policy in the editor: hot reload, diagnostics for a broken file, and the
repository policy's trust (a request, a notification on change, trust/untrust commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types

from lsp_server.lsp.ids import POLICY_TRUST, TRUST_POLICY_COMMAND, UNTRUST_POLICY_COMMAND
from lsp_server.lsp.params import command_params
from lsp_server.lsp.server import NinetyTenServer
from lsp_server.routing.policy import LoadedPolicy, PolicyError, parse_policy
from lsp_server.routing.policy_trust import TrustStore, approve_policy, trust_state, untrusted_notice
from lsp_server.routing.watch import PolicyEvent, PolicyWatcher, initial_policy

DIAGNOSTIC_SOURCE = "ninetyten policy"


def policy_diagnostics(error: PolicyError) -> list[types.Diagnostic]:
    return [
        types.Diagnostic(
            range=types.Range(
                types.Position(max((line or 1) - 1, 0), 0), types.Position(max((line or 1) - 1, 0), 10_000)
            ),
            message=f"{key}: {message}" if key else message,
            severity=types.DiagnosticSeverity.Error,
            source=DIAGNOSTIC_SOURCE,
        )
        for line, key, message in error.problems
    ]


class PolicyFeature:
    """The policy in force for this client, its watcher, and what the user was told about it."""

    def __init__(self, ls: NinetyTenServer) -> None:
        self.ls = ls
        self.loaded: LoadedPolicy | None = None
        self.watcher: PolicyWatcher | None = None
        self.client_prompts = False  # the client asks the user about trust itself
        self.diagnostics_uri: str | None = None
        self._trust_key: tuple[object, ...] | None = None
        self._told_untrusted: set[str] = set()

    def start_watching(self) -> None:
        if self.loaded is not None:
            self.trust_changed(self.loaded)
        self.watcher = PolicyWatcher(self.ls.explicit_policy, self.ls.workspace_root, self.apply)
        self.ls.spawn(self.watcher.run())

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def apply(self, event: PolicyEvent) -> None:
        """A policy file changed (or its approval did): the new policy, or its errors."""
        ls = self.ls
        if event.error is not None:
            self.publish_error(event.error)
            ls.notify_user(
                types.MessageType.Warning,
                f"the policy file has errors; the last good policy stays in force ({event.error.path})",
            )
            return
        assert event.loaded is not None
        self.clear_diagnostics()
        if ls.engine is not None:
            ls.engine.set_policy(event.loaded)
        ls.policy_reloaded()
        self.trust_changed(event.loaded)
        where = event.loaded.path or "built-in default"
        ls.window_log_message(
            types.LogMessageParams(
                type=types.MessageType.Info, message=f"ninetyten: policy {event.loaded.digest} in force ({where})"
            )
        )
        if event.loaded.policy.offline:
            ls.notify_user(types.MessageType.Info, "offline policy: everything runs on the local model")

    async def report_initial_error(self, error: PolicyError) -> None:
        self.publish_error(error)
        self.ls.notify_user(
            types.MessageType.Error,
            "the policy file has errors; using the built-in default (everything local) until it is "
            f"fixed: {error.path}:{error.first_line or '?'}",
        )

    def trust_changed(self, loaded: LoadedPolicy) -> None:
        """Tell the client when the trust state changes; tell the user once per file content
        that a repository policy is partly ignored (unless the client asks them itself)."""
        self.loaded = loaded
        key = (loaded.source, loaded.path, loaded.sha256, loaded.trust, loaded.digest)
        if key == self._trust_key:
            return
        self._trust_key = key
        self.ls.protocol.notify(POLICY_TRUST, trust_state(loaded))
        if loaded.needs_approval and loaded.sha256 not in self._told_untrusted:
            self._told_untrusted.add(loaded.sha256 or "")
            if not self.client_prompts:
                where = self.ls.relative_path(loaded.path.resolve().as_uri()) if loaded.path else None
                self.ls.notify_user(types.MessageType.Warning, untrusted_notice(loaded, where))

    def reload(self) -> None:
        """Read the policy again now (after an approval), as the watcher would."""
        watcher = self.watcher
        self.apply(
            watcher.reload() if watcher is not None else initial_policy(self.ls.explicit_policy, self.ls.workspace_root)
        )

    def trust_state(self) -> dict[str, Any]:
        if self.loaded is None:
            return {"error": "the server is not initialized"}
        return trust_state(self.loaded)

    def set_trust(self, params: dict[str, Any], *, trust: bool) -> dict[str, Any]:
        """Record the user's approval of the repository policy they were shown (by its digest),
        or withdraw it; the policy in force follows at once."""
        loaded = self.loaded
        if loaded is None or loaded.source != "workspace" or loaded.path is None:
            return {"error": "there is no repository policy here to trust"}
        try:
            if trust:
                shown = params.get("sha256")
                if not isinstance(shown, str) or not shown:
                    return {"error": "trustPolicy needs the sha256 of the policy that was shown"}
                approve_policy(loaded.path, expected_sha256=shown)
            else:
                TrustStore().revoke(loaded.path)
        except (PolicyError, OSError) as error:
            return {"error": str(error)}
        self.reload()
        return self.trust_state()

    def publish_error(self, error: PolicyError, uri: str | None = None) -> None:
        if error.path is None and uri is None:
            return
        uri = uri or error.path.resolve().as_uri()  # type: ignore[union-attr]
        self.diagnostics_uri = uri
        self.ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=policy_diagnostics(error))
        )

    def clear_diagnostics(self, uri: str | None = None) -> None:
        uri = uri or self.diagnostics_uri
        if uri:
            self.ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        if uri == self.diagnostics_uri:
            self.diagnostics_uri = None

    def check_document(self, uri: str) -> None:
        """Validate an open policy.toml as the user types (applied only once saved)."""
        path = Path(unquote(urlparse(uri).path))
        document = self.ls.document(uri) if path.name == "policy.toml" else None
        if document is None:
            return
        try:
            parse_policy(document.source, path)
        except PolicyError as error:
            self.publish_error(error, uri)
            return
        self.clear_diagnostics(uri)


def register(server: NinetyTenServer) -> None:
    @server.feature(POLICY_TRUST)
    def policy_trust(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return ls.policy_feature.trust_state()

    @server.command(TRUST_POLICY_COMMAND)
    def trust_policy_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return ls.policy_feature.set_trust(command_params(args, "trust"), trust=True)

    @server.command(UNTRUST_POLICY_COMMAND)
    def untrust_policy_command(ls: NinetyTenServer, *args: Any) -> dict[str, Any]:
        return ls.policy_feature.set_trust(command_params(args, "trust"), trust=False)
