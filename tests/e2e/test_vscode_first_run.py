"""The first run in a real VS Code (code-server in headless Chromium): on the small built-in
model the extension offers once to pull what this machine runs well, shows the download's
progress, and keeps the choice in the user's settings, never in the repository.

A loopback Hugging Face hub (HF_ENDPOINT) serves tiny generated GGUFs under the names of the
models recommended for a small machine (NINETYTEN_MACHINE): the completion one writes "x" for
ever, the chat one "y", so the ghost text and the explanation say which model wrote them.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.test_model_requests import CHAT, COMPLETION, SMALL_MACHINE, fresh_home
from tests.e2e.test_vscode import extension_logs, select_function, vsix, wait_until  # noqa: F401 (fixture)
from tests.loopback_hub import LoopbackHub
from tests.vscode_harness import VSCode, Workbench, browser_page

pytestmark = [pytest.mark.timeout(900), pytest.mark.gemma]

OFFER = "small built-in model"
SOURCE = "def add(a, b):\n    return a + b\n"


def workspace_with_file(root: Path) -> Path:
    workspace = root / "project"
    workspace.mkdir(parents=True)
    (workspace / "calc.py").write_text(SOURCE)
    return workspace


def machine_settings() -> dict[str, object]:
    """The user's settings that start the server: no model, so the built-in one serves."""
    return {
        "ninetyten.server.path": str(Path(sys.prefix) / "bin" / "ninetyten"),
        "ninetyten.serverSettings": {
            "completion": {"max_tokens": 8, "time_limit_ms": 600000},
            "assist": {"max_tokens": 6},
        },
        "ninetyten.debounceMs": 30,
    }


def user_settings(vscode: VSCode) -> dict[str, object]:
    """The user's settings: the user's own file and, in code-server's remote window, the machine's,
    where VS Code keeps machine-scoped settings such as the model."""
    merged: dict[str, object] = {}
    for scope in ("User", "Machine"):
        path = vscode.root / "user-data" / scope / "settings.json"
        if path.exists():
            merged.update(json.loads(path.read_text()))
    return merged


def session(tmp_path: Path, hub: LoopbackHub, gemma: Path) -> VSCode:
    env = {
        "NINETYTEN_HOME": str(fresh_home(tmp_path, gemma)),
        "HF_ENDPOINT": hub.endpoint,
        "NINETYTEN_MACHINE": SMALL_MACHINE,
    }
    return VSCode(tmp_path / "vscode", workspace_with_file(tmp_path), env=env, machine_settings=machine_settings())


def keep_evidence(tmp_path: Path, page) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(tmp_path / "failure.png"))
    for log in (tmp_path / "vscode" / "user-data" / "logs").rglob("ninetyten.log"):
        shutil.copy(log, tmp_path / "ninetyten-output.log")
    print(f"screenshot and logs in {tmp_path}", file=sys.stderr)


def test_pull_the_recommended_models_from_the_offer(
    vsix,
    base_endless_model_path,  # noqa: F811
    chat_endless_model_path,
    gemma_model_path,
    tmp_path,
):
    with LoopbackHub() as hub:
        # Slow enough (about 3 s) that the progress notification is there to be seen.
        for (repo, name), model in ((COMPLETION, base_endless_model_path), (CHAT, chat_endless_model_path)):
            hub.add_file(repo, name, model.read_bytes(), chunk_size=32 * 1024, chunk_delay_s=0.06)
        with session(tmp_path, hub, gemma_model_path) as vscode, browser_page(tmp_path) as page:
            vscode.start(vsix)
            bench = Workbench(page)
            try:
                bench.open(vscode.url)
                bench.quick_open("calc.py")
                offer = wait_until(
                    lambda: next((n for n in bench.notifications() if OFFER in n), None),
                    120,
                    "the offer to pull the recommended models",
                )
                assert "qwen2.5-coder-0.5b for completions" in offer
                assert "qwen2.5-coder-0.5b-instruct for explain, refactor and ask" in offer
                assert "1.1 GB to download" in offer  # the catalog's sizes, before anything is downloaded
                assert bench.notification_buttons(OFFER) == ["Pull (1.1 GB)", "Keep the small built-in model"]
                assert hub.cdn_gets() == []
                bench.click_notification_button(OFFER, "Pull (1.1 GB)")

                progress = wait_until(
                    lambda: next((n for n in bench.notifications() if "pulling" in n), None),
                    60,
                    "the progress notification",
                )
                assert "qwen2.5-coder-0.5b:q4_k_m" in progress
                done = wait_until(
                    lambda: next((n for n in bench.notifications() if "now using" in n), None),
                    120,
                    "the pull to finish",
                )
                assert COMPLETION[1] in done and "qwen2.5-coder-0.5b-instruct for explain" in done
                settings = user_settings(vscode)
                assert settings["ninetyten.model"] == f"{COMPLETION[0]}:{COMPLETION[1]}"
                assert settings["ninetyten.chatModel"] == "qwen2.5-coder-0.5b-instruct"
                assert not (vscode.workspace / ".vscode").exists()  # nothing in the repository
                assert len(hub.cdn_gets()) == 2

                # The server restarted on the pulled models: ghost text from the completion model ...
                wait_until(
                    lambda: f"chat model {CHAT[1]} ready" in extension_logs(vscode.root),
                    120,
                    "the server on the pulled models",
                )
                bench.quick_open("calc.py")
                page.keyboard.press("Control+End")
                page.keyboard.type("total = ", delay=40)
                ghost = bench.wait_for_ghost_text(timeout_s=120)
                assert ghost.strip() == "x" * 8
                # ... and the explanation from the chat model.
                page.keyboard.press("Escape")
                select_function(page)
                bench.run_command("ninetyten: Explain selection")
                explanation = wait_until(
                    lambda: "served by local" in bench.editor_text("Explanation") and bench.editor_text("Explanation"),
                    120,
                    "the explanation",
                )
                assert "yyyyyy" in explanation and CHAT[1] in explanation
                # The offer was made once: it does not come back in this window or the next.
                assert sum(OFFER in n for n in bench.notifications()) <= 1
            except BaseException:
                keep_evidence(tmp_path, page)
                raise


def test_keep_the_small_built_in_model(vsix, base_endless_model_path, gemma_model_path, tmp_path):  # noqa: F811
    with LoopbackHub() as hub:
        hub.add_file(*COMPLETION, base_endless_model_path.read_bytes())
        with session(tmp_path, hub, gemma_model_path) as vscode, browser_page(tmp_path) as page:
            vscode.start(vsix)
            bench = Workbench(page)
            try:
                bench.open(vscode.url)
                bench.quick_open("calc.py")
                wait_until(lambda: any(OFFER in n for n in bench.notifications()), 120, "the offer")
                bench.click_notification_button(OFFER, "Keep the small built-in model")
                wait_until(
                    lambda: user_settings(vscode).get("ninetyten.offerModels") is False,
                    30,
                    "the choice in the user's settings",
                )
                assert "ninetyten.model" not in user_settings(vscode)
                assert hub.cdn_gets() == []  # nothing was downloaded
                # A new window: the server starts on the built-in model again and nothing is offered.
                bench.open(vscode.url)
                bench.quick_open("calc.py")
                page.keyboard.press("Control+End")
                page.keyboard.type("x = ", delay=40)
                bench.wait_for_status(r"local|waiting for the first request", timeout_s=120)
                page.wait_for_timeout(5000)
                assert not any(OFFER in n for n in bench.notifications())
                assert re.search("gemma", json.dumps(user_settings(vscode))) is None
            except BaseException:
                keep_evidence(tmp_path, page)
                raise
