"""Local models from the editor: ninetyten/models, ninetyten/pullModel (with work-done
progress, cancellable) and ninetyten/useModel. The work is engine/model_choice.py's."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from typing import Any

from lsprotocol import types
from pydantic import ValidationError

from lsp_server.engine.model_choice import (
    PullCancelled,
    models_state,
    pull_models,
    recommended_pulls,
    task_of,
    use_models,
    use_value,
)
from lsp_server.lsp.handlers.lifecycle import report_loading
from lsp_server.lsp.ids import MODELS_REQUEST, PULL_MODEL_REQUEST, USE_MODEL_REQUEST
from lsp_server.lsp.params import PullModelParams, UseModelParams, plain
from lsp_server.lsp.server import NinetyTenServer


class Progress:
    """Bytes of a download as work-done progress, on the client's token or one the server
    creates (none for a client without progress); the client's cancel button sets `cancel`."""

    def __init__(self, ls: NinetyTenServer, token: str | int | None) -> None:
        self.ls = ls
        self.token = token

    @classmethod
    async def begin(cls, ls: NinetyTenServer, token: str | int | None, title: str, cancel: threading.Event) -> Progress:
        window = ls.client_capabilities.window
        if token is None and window is not None and window.work_done_progress:
            token = f"ninetyten-pull-{uuid.uuid4().hex[:8]}"
            try:
                await ls.work_done_progress.create_async(token)
            except Exception:  # a client may refuse the token; the work goes on regardless
                token = None
        if token is not None:
            begin = types.WorkDoneProgressBegin(title=title, percentage=0, cancellable=True)
            ls.work_done_progress.begin(token, begin)
            registered = ls.work_done_progress.tokens.get(token)
            if registered is not None:
                registered.add_done_callback(lambda _future: cancel.set())
        return cls(ls, token)

    def report(self, what: str, done: int, total: int | None) -> None:
        if self.token is None:
            return
        size = f"{done / 1e6:.0f} of {total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB"
        percentage = int(100 * done / total) if total else None
        value = types.WorkDoneProgressReport(message=f"{what}: {size}", percentage=percentage)
        self.ls.work_done_progress.report(self.token, value)

    def end(self, message: str) -> None:
        if self.token is not None:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.ls.work_done_progress.tokens.pop(self.token, None)
            self.token = None


async def models(ls: NinetyTenServer) -> dict[str, Any]:
    if ls.engine is None:
        return {"error": "the server is not initialized"}
    with contextlib.suppress(Exception):  # which file is in use is known once it is loaded (or failed)
        await ls.engine.wait_ready()
    return await asyncio.to_thread(models_state, ls.engine)


async def switched(ls: NinetyTenServer, changed: list[Any]) -> None:
    """After a switch: the old model's suggestions go, the new one's loading is reported."""
    ls.completion_feature.model_changed()
    if changed:
        ls.spawn(report_loading(ls))


async def pull(ls: NinetyTenServer, raw: Any) -> dict[str, Any]:
    """Pull models (default: the recommended ones) with work-done progress, then use them."""
    from local_models import ModelError

    try:
        params = PullModelParams.model_validate(plain(raw) or {})
    except ValidationError as error:
        return {"error": f"invalid pullModel request: {error}"}
    engine = ls.engine
    if engine is None:
        return {"error": "the server is not initialized"}
    # Only the recommendation is needed here, not the whole state (pulled records, the saved choice).
    specs = params.models or await asyncio.to_thread(recommended_pulls)
    if not specs:
        return {"error": "no catalog model runs well enough on this machine: the built-in model stays"}
    cancel = threading.Event()
    progress = await Progress.begin(ls, params.work_done_token, "ninetyten: pulling " + ", ".join(specs), cancel)
    loop = asyncio.get_running_loop()

    def report(what: str, done: int, total: int | None) -> None:
        loop.call_soon_threadsafe(progress.report, what, done, total)

    used: dict[str, str] = {}
    try:
        records = await asyncio.to_thread(pull_models, specs, report, cancel)
        if params.use:
            for record in records:
                used.setdefault(task_of(record), use_value(record))
            await switched(ls, await asyncio.to_thread(use_models, engine, used))  # type: ignore[arg-type]
    except asyncio.CancelledError:
        cancel.set()
        progress.end("cancelled")
        raise
    except PullCancelled:
        progress.end("cancelled")
        return {"error": "cancelled", "cancelled": True}
    except ModelError as error:
        progress.end("failed")
        return {"error": str(error)}
    progress.end("done")
    pulled = [
        {
            "spec": r.spec,
            "model_id": r.model_id,
            "quant": r.quant,
            "size": r.size,
            "path": str(r.path),
            "task": task_of(r),
            "use": use_value(r),
        }
        for r in records
    ]
    return {"pulled": pulled, "used": used, "models": await asyncio.to_thread(models_state, engine)}


async def use(ls: NinetyTenServer, raw: Any) -> dict[str, Any]:
    """Switch the model of a task (saved in the user's model choice, loaded in the background)."""
    from local_models import ModelError

    try:
        params = UseModelParams.model_validate(plain(raw) or {})
    except ValidationError as error:
        return {"error": f"invalid useModel request: {error}"}
    engine = ls.engine
    if engine is None:
        return {"error": "the server is not initialized"}
    choices = {task: value for task, value in (("completion", params.completion), ("chat", params.chat)) if value}
    if not choices:
        return {"error": "useModel needs `completion` and/or `chat`"}
    try:
        changed = await asyncio.to_thread(use_models, engine, choices)  # type: ignore[arg-type]
    except ModelError as error:
        return {"error": str(error)}
    await switched(ls, changed)
    return {"changed": changed, "models": await asyncio.to_thread(models_state, engine)}


def register(server: NinetyTenServer) -> None:
    @server.feature(MODELS_REQUEST)
    async def models_request(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return await models(ls)

    @server.feature(PULL_MODEL_REQUEST)
    async def pull_model_request(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return await pull(ls, params)

    @server.feature(USE_MODEL_REQUEST)
    async def use_model_request(ls: NinetyTenServer, params: Any) -> dict[str, Any]:
        return await use(ls, params)
