"""Real stdio LSP sessions against `ninetyten serve`, driven by pytest-lsp's client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

__all__ = ["lsp_session", "open_document", "inline", "served_notifications", "SERVED", "VSCODE_LIKE", "session_home"]

SERVED = "ninetyten/served"

# A client that speaks LSP 3.18 inline completion and shows progress, like VS Code.
VSCODE_LIKE = types.ClientCapabilities(
    text_document=types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities(),
        synchronization=types.TextDocumentSyncClientCapabilities(),
        completion=types.CompletionClientCapabilities(),
    ),
    window=types.WindowClientCapabilities(work_done_progress=True),
)


@pytest.fixture
def session_home(tmp_path: Path, ninetyten_test_home: Path) -> Path:
    """Where a test server keeps its files: the shared test home (models already there)."""
    return ninetyten_test_home


@contextlib.asynccontextmanager
async def lsp_session(
    *,
    model: Path | None,
    home: Path,
    options: dict[str, Any] | None = None,
    capabilities: types.ClientCapabilities = VSCODE_LIKE,
    root: Path | None = None,
    wait_ready: bool = True,
    extra_args: list[str] | None = None,
) -> AsyncIterator[LanguageClient]:
    command = [sys.executable, "-m", "lsp_server", "serve", *(extra_args or [])]
    if model is not None:
        command += ["--model", str(model)]
    env = {**os.environ, "NINETYTEN_HOME": str(home)}
    env.pop("NINETYTEN_MODEL", None)
    client = await ClientServerConfig(server_command=command, server_env=env).start()
    served_notifications(client)  # start recording before anything is served
    try:
        client.init_result = await client.initialize_session(  # type: ignore[attr-defined]
            types.InitializeParams(
                capabilities=capabilities,
                initialization_options=options or {},
                root_uri=root.as_uri() if root else None,
            )
        )
        if wait_ready:
            await asyncio.wait_for(_ready(client), 120)
        yield client
        await asyncio.wait_for(client.shutdown_session(), 30)
    finally:
        # A failed test must not leave a server waiting for `exit`.
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()
        await client.stop()


async def _ready(client: LanguageClient) -> None:
    while not any("ready" in m.message for m in client.log_messages):
        errors = [m.message for m in client.messages if m.type == types.MessageType.Error and "model" in m.message]
        if errors:
            raise AssertionError(f"server reported: {errors}")
        await asyncio.sleep(0.02)


def served_notifications(client: LanguageClient) -> list[dict[str, Any]]:
    """Every ninetyten/served notification this client received, as dicts."""
    existing = getattr(client, "_ninetyten_served", None)
    if existing is not None:
        return existing
    received: list[dict[str, Any]] = []
    client._ninetyten_served = received  # type: ignore[attr-defined]

    @client.feature(SERVED)
    def on_served(params: Any) -> None:
        received.append(params if isinstance(params, dict) else params._asdict())

    return received


def open_document(client: LanguageClient, path: Path, text: str, language: str = "python") -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )
    return uri


async def inline(client: LanguageClient, uri: str, line: int, character: int) -> types.InlineCompletionList | None:
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )


def dump(obj: Any) -> str:
    return json.dumps(obj, default=str)
