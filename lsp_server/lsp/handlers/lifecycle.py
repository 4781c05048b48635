"""initialize, initialized, shutdown: settings, the engine, loading progress, the policy watcher."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from lsprotocol import types
from pydantic import ValidationError

from lsp_server.backends.local import LocalBackend
from lsp_server.config import describe_validation_error
from lsp_server.engine.core import Engine
from lsp_server.engine_host.connection import EngineCrashed, ModelMarkedBad
from lsp_server.ledger import Ledger
from lsp_server.ledger.outlets import attach as attach_ledger_outlets
from lsp_server.lsp.params import plain
from lsp_server.lsp.server import NinetyTenServer
from lsp_server.routing.watch import initial_policy


def apply_settings(ls: NinetyTenServer, options: Any) -> None:
    """The client's initializationOptions (under "ninetyten" or at the top) over the CLI's settings."""
    if not isinstance(options, dict) or not options:
        return
    try:
        ls.config = ls.config.merged(options.get("ninetyten", options))
    except ValidationError as error:
        ls.notify_user(
            types.MessageType.Error, f"ignoring invalid initializationOptions ({describe_validation_error(error)})"
        )
    ls.completion_feature.reconfigure(ls.config.completion)


def client_prompts_for_trust(params: types.InitializeParams) -> bool:
    """A client that asks the user itself (VS Code's Trust / Keep local) gets no showMessage."""
    experimental = plain(params.capabilities.experimental)
    ours = experimental.get("ninetyten") if isinstance(experimental, dict) else None
    return isinstance(ours, dict) and ours.get("policyTrustPrompt") is True


def start_engine(ls: NinetyTenServer) -> None:
    """The engine on the policy that applies here; the model loads on its own thread."""
    event = initial_policy(ls.explicit_policy, ls.workspace_root)
    ls.policy_feature.loaded = event.loaded
    ls.event_loop = asyncio.get_running_loop()
    ls.engine = Engine(
        ls.config,
        explicit_model=ls.explicit_model,
        explicit_chat_model=ls.explicit_chat_model,
        policy=event.loaded,
        ledger=Ledger(),
        on_remote_unreachable=ls.tier_unreachable,
        on_local_notice=ls.local_notice,
    )
    loop = asyncio.get_running_loop()

    def warn(message: str) -> None:  # the team ledger's warnings come from its own threads
        loop.call_soon_threadsafe(ls.notify_user, types.MessageType.Warning, message)

    attach_ledger_outlets(ls.engine.sink, workspace=ls.workspace_root, notify=warn)
    ls.engine.start()  # resolve and load on the model thread; initialize answers now
    if event.error is not None:
        ls.spawn(ls.policy_feature.report_initial_error(event.error))


async def begin_progress(
    ls: NinetyTenServer, kind: str, title: str, message: str | None = None, percentage: int | None = None
) -> str | None:
    """A work-done progress token, or None when the client has none (or refuses it)."""
    window = ls.client_capabilities.window
    if window is None or not window.work_done_progress:
        return None
    token = f"ninetyten-{kind}-{uuid.uuid4().hex[:8]}"
    try:
        await ls.work_done_progress.create_async(token)
        ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=title, message=message, percentage=percentage, cancellable=False)
        )
    except Exception:  # a client may refuse the token; the work goes on regardless
        return None
    return token


async def wait_for_engine(engine: Engine) -> None:
    """Until the completion model is ready; an engine that crashes while loading is restarted by
    its supervisor (the user was told), and the next attempt attaches to the new one."""
    while True:
        try:
            await engine.wait_ready(timeout=None)
            return
        except EngineCrashed:
            continue


async def report_loading(ls: NinetyTenServer) -> None:
    """Work-done progress while the model loads, then one log line (or one error)."""
    engine = ls.engine
    if engine is None:
        return
    token = await begin_progress(ls, "load", "ninetyten", "loading the local model")
    started = time.perf_counter()
    try:
        await wait_for_engine(engine)
    except Exception as error:
        if token:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="model failed to load"))
        if not isinstance(error, ModelMarkedBad):  # that one the engine's client told already
            ls.notify_user(types.MessageType.Error, str(error))
        return
    if token:
        ls.work_done_progress.end(
            token, types.WorkDoneProgressEnd(message=f"ready in {time.perf_counter() - started:.1f}s")
        )
    backend = engine.local
    mode = "fill-in-the-middle" if backend.fim is not None else "prefix-only"
    ls.window_log_message(
        types.LogMessageParams(
            type=types.MessageType.Info,
            message=(f"ninetyten: local model {backend.model_name} ready ({mode}, context {backend.n_ctx} tokens)"),
        )
    )
    chat = engine.chat_local
    if chat is not backend:
        await report_chat_loading(ls, chat)


async def report_chat_loading(ls: NinetyTenServer, chat: LocalBackend) -> None:
    """The chat model loads after the completion model: one log line when it is ready."""
    try:
        await chat.wait_ready(timeout=None)
    except Exception as error:
        ls.notify_user(types.MessageType.Error, f"the chat model failed to load: {error}")
        return
    template = "its chat template" if chat.has_chat_template else "no chat template"
    ls.window_log_message(
        types.LogMessageParams(
            type=types.MessageType.Info,
            message=f"ninetyten: chat model {chat.model_name} ready for explain, refactor and ask ({template})",
        )
    )


def register(server: NinetyTenServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: NinetyTenServer, params: types.InitializeParams) -> None:
        apply_settings(ls, params.initialization_options)
        ls.policy_feature.client_prompts = client_prompts_for_trust(params)
        start_engine(ls)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: NinetyTenServer, params: types.InitializedParams) -> None:
        ls.spawn(report_loading(ls))
        ls.completion_feature.start_context()
        if ls.engine is not None and ls.engine.policy.offline:
            ls.notify_user(types.MessageType.Info, "offline policy: everything runs on the local model")
        ls.policy_feature.start_watching()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: NinetyTenServer, params: Any) -> None:
        ls.policy_feature.stop_watching()
        ls.completion_feature.shutdown()
        if ls.engine is not None:
            await ls.engine.aclose()
