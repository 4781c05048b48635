"""Choosing local models from an editor, through a real stdio session against `ninetyten serve`
and a loopback Hugging Face hub (HF_ENDPOINT): what serves each task, what this machine should
run, pulling it with work-done progress (and cancelling), and switching to it.

The hub serves tiny generated GGUFs under the names of the models the catalog recommends for a
small machine (NINETYTEN_MACHINE=ram=4G,cores=2): a "base" model that writes "x" for ever for
completions, an "instruct" one that writes "y" for chat tasks, so each answer names its model.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tomllib
from pathlib import Path

import pytest
from lsprotocol import types

from local_models.embedded import stamp_path
from tests.loopback_hub import LoopbackHub, loopback_hub
from tests.lsp_session import inline, lsp_session, open_document

hub = pytest.fixture(loopback_hub)
pytestmark = pytest.mark.timeout(600)

COMPLETION = ("bartowski/Qwen2.5-Coder-0.5B-GGUF", "Qwen2.5-Coder-0.5B-Q4_K_M.gguf")
CHAT = ("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q8_0.gguf")
SMALL_MACHINE = "ram=4G,cores=2"


def fresh_home(tmp_path: Path, gemma: Path) -> Path:
    """A NINETYTEN_HOME of its own (pulled files are recorded there), with the embedded model
    linked in (its stamp says it was checked, so it is not assembled again)."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    os.link(gemma, home / "models" / gemma.name)
    shutil.copy(stamp_path(gemma), stamp_path(home / "models" / gemma.name))
    return home


@pytest.fixture
def small_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub: LoopbackHub) -> Path:
    """The server's environment: the loopback hub, a described machine, a config dir of its own."""
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("NINETYTEN_MACHINE", SMALL_MACHINE)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("NINETYTEN_CHAT_MODEL", "NINETYTEN_POLICY", "HF_HUB_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "config" / "ninetyten" / "models.toml"


def _plain(value):  # type: ignore[no-untyped-def]
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def request(client, method: str, params: dict) -> dict:  # type: ignore[no-untyped-def]
    return _plain(await client.protocol.send_request_async(method, params))


async def wait_for_log(client, text: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    async def seen() -> None:
        while not any(text in m.message for m in client.log_messages):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(seen(), timeout)


@pytest.mark.gemma
async def test_first_run_pull_with_progress_then_each_task_on_its_model(
    hub: LoopbackHub,
    small_machine: Path,
    base_endless_model_path: Path,
    chat_endless_model_path: Path,
    gemma_model_path: Path,
    tmp_path: Path,
):
    # Slow enough that progress is reported more than once.
    hub.add_file(*COMPLETION, base_endless_model_path.read_bytes(), chunk_size=64 * 1024, chunk_delay_s=0.05)
    hub.add_file(*CHAT, chat_endless_model_path.read_bytes(), chunk_size=64 * 1024, chunk_delay_s=0.05)
    home = fresh_home(tmp_path, gemma_model_path)
    options = {"completion": {"max_tokens": 8, "time_limit_ms": 600_000}, "assist": {"max_tokens": 6}}
    async with lsp_session(model=None, home=home, options=options) as client:
        state = await request(client, "ninetyten/models", {})
        assert state["embedded"] is True and state["completion"]["source"] == "embedded"
        assert state["chat"]["same_as_completion"] is True
        recommendation = state["recommendation"]
        assert recommendation["pull"] == ["qwen2.5-coder-0.5b:q4_k_m", "qwen2.5-coder-0.5b-instruct"]
        assert recommendation["download_bytes"] > 1_000_000_000  # the catalog's sizes: what the user is told
        assert state["choice"]["path"] == str(small_machine)

        token = "pull-1"
        client.progress_reports[token] = []  # the client's own token (as VS Code sends it)
        result = await request(client, "ninetyten/pullModel", {"workDoneToken": token})
        assert "error" not in result, result
        assert [(p["spec"], p["task"]) for p in result["pulled"]] == [
            (f"{COMPLETION[0]}:{COMPLETION[1]}", "completion"),
            (f"{CHAT[0]}:{CHAT[1]}", "chat"),
        ]
        reports = client.progress_reports[token]
        assert reports[0].kind == "begin" and reports[0].cancellable is True
        percentages = [r.percentage for r in reports if r.kind == "report" and r.percentage is not None]
        assert len(percentages) >= 4 and max(percentages) == 100, percentages
        assert reports[-1].kind == "end" and reports[-1].message == "done"

        # Used at once, and saved in the user's config dir (the q4_k_m file by name: the id alone
        # would mean the catalog's default quantisation).
        saved = tomllib.loads(small_machine.read_text())
        assert saved == {"completion": f"{COMPLETION[0]}:{COMPLETION[1]}", "chat": "qwen2.5-coder-0.5b-instruct"}
        assert result["used"] == saved
        await wait_for_log(client, "chat model qwen2.5-coder-0.5b-instruct-q8_0.gguf ready")

        sample = tmp_path / "calc.py"
        uri = open_document(client, sample, "total = ")
        completion = await inline(client, uri, 0, 8)
        assert completion is not None and completion.items[0].insert_text == "x" * 8
        answer = await request(client, "ninetyten/explain", {"textDocument": {"uri": uri}})
        assert answer["text"] == "y" * 6 and answer["model"] == CHAT[1]

        state = await request(client, "ninetyten/models", {})
        assert state["embedded"] is False and state["completion"]["path"].endswith(COMPLETION[1])
        assert state["chat"]["model_id"] == "qwen2.5-coder-0.5b-instruct" and state["chat"]["chat_template"] is True
        assert {p["spec"] for p in state["pulled"]} == {f"{COMPLETION[0]}:{COMPLETION[1]}", f"{CHAT[0]}:{CHAT[1]}"}

        # Back to the built-in model for completions; the chat model stays.
        back = await request(client, "ninetyten/useModel", {"completion": "default"})
        assert back["changed"] == ["completion", "chat"] and "error" not in back
        assert tomllib.loads(small_machine.read_text()) == {"chat": "qwen2.5-coder-0.5b-instruct"}
        refused = await request(client, "ninetyten/useModel", {"chat": "qwen2.5-coder-7b-instruct"})
        assert "not pulled" in refused["error"]
        assert tomllib.loads(small_machine.read_text()) == {"chat": "qwen2.5-coder-0.5b-instruct"}  # unchanged


async def test_a_cancelled_pull_keeps_nothing(
    hub: LoopbackHub, small_machine: Path, endless_model_path: Path, download_model_path: Path, tmp_path: Path
):
    hub.add_file(*COMPLETION, download_model_path.read_bytes(), chunk_size=256 * 1024, chunk_delay_s=0.2)
    home = tmp_path / "home"
    async with lsp_session(model=endless_model_path, home=home) as client:
        token = "pull-2"
        client.progress_reports[token] = []
        pending = asyncio.ensure_future(
            request(client, "ninetyten/pullModel", {"models": ["qwen2.5-coder-0.5b:q4_k_m"], "workDoneToken": token})
        )

        async def some_progress() -> None:
            while not any(r.kind == "report" and (r.percentage or 0) > 0 for r in client.progress_reports[token]):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(some_progress(), 60)
        client.protocol.notify(types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token))
        result = await asyncio.wait_for(pending, 60)
        assert result == {"error": "cancelled", "cancelled": True}
        assert client.progress_reports[token][-1].message == "cancelled"
        state = await request(client, "ninetyten/models", {})
        assert state["pulled"] == [] and not small_machine.exists()
        # The server's pinned model (--model) is what serves, whatever is chosen.
        assert state["pinned"]["completion"] == str(endless_model_path)
