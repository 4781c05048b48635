"""The language server put together: the server, each feature's state, every handler."""

from __future__ import annotations

from lsp_server.config import ServerConfig
from lsp_server.lsp.handlers import (
    assist,
    commands,
    completion,
    context,
    documents,
    explain,
    lifecycle,
    models,
    policy,
)
from lsp_server.lsp.server import NinetyTenServer


def create_server(
    config: ServerConfig | None = None,
    explicit_model: str | None = None,
    policy_path: str | None = None,
    explicit_chat_model: str | None = None,
) -> NinetyTenServer:
    server = NinetyTenServer(config or ServerConfig(), explicit_model, policy_path, explicit_chat_model)
    server.completion_feature = completion.CompletionFeature(server)
    server.policy_feature = policy.PolicyFeature(server)
    for handlers in (lifecycle, documents, completion, context, assist, explain, policy, commands, models):
        handlers.register(server)
    return server
