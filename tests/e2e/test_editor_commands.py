"""The commands editor clients build on: report, offline toggle, acceptance feedback, staged explain."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess

from tests.e2e.test_code_actions import execute
from tests.e2e.test_routing_server import FAST, KEY, KEY_ENV, request, write_policy
from tests.loopback_provider import LoopbackProvider
from tests.lsp_session import inline, lsp_session, open_document, served_notifications

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    "


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_accepting_an_item_is_recorded_and_reported(endless_model_path, tmp_path):
    home = tmp_path / "home"
    async with lsp_session(model=endless_model_path, home=home, options=FAST) as client:
        uri = open_document(client, tmp_path / "m.py", SOURCE)
        first = await inline(client, uri, 5, 4)
        second = await inline(client, uri, 5, 4)
        assert first is not None and first.items and second is not None and second.items
        command = first.items[0].command
        assert command is not None and command.command == "ninetyten.completionAccepted"
        answer = await execute(client, command.command, *command.arguments)
        assert answer == {"accepted": True}
        report = await execute(client, "ninetyten.report", {"since": "today"})
        completion = next(group for group in report["report"]["by_task"] if group["key"] == "completion")
        assert completion["shown"] == 2 and completion["accepted"] == 1
        assert completion["acceptance_rate"] == 0.5
        assert "completion" in report["text"] and "50" in report["text"]
        served = served_notifications(client)
        assert all("savings_today_usd" in s and s["offline"] is False for s in served)
        bad = await execute(client, "ninetyten.completionAccepted", {"requestId": ""})
        assert "requestId" in bad["error"]
        bad_since = await execute(client, "ninetyten.report", {"since": "yesterday-ish"})
        assert "not understood" in bad_since["error"]
    rows = (
        sqlite3.connect(home / "ledger.sqlite3")
        .execute("SELECT backend, shown, accepted FROM attempts WHERE task = 'completion' ORDER BY id")
        .fetchall()
    )
    # The second request was answered from the cache: still a row, still shown.
    assert rows == [("llama_cpp", 1, 1), ("cache", 1, None)]


async def test_toggle_offline_keeps_escalations_home_and_back(endless_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with LoopbackProvider(reply="def renamed():\n    return 1\n") as frontier:
        workspace = tmp_path / "ws"
        write_policy(workspace, frontier.url, trusted_in=tmp_path / "home")
        async with lsp_session(
            model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace
        ) as client:
            uri = open_document(client, workspace / "app.py", "def old():\n    return 1\n")
            selection = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}}
            assert (await execute(client, "ninetyten.toggleOffline")) == {"offline": True, "forced": True}
            await _wait_for(lambda: any("offline: everything runs" in m.message for m in client.messages))
            answer = await request(client, "ninetyten/ask", uri, question="what is this?", range=selection)
            assert answer["tier"] == "local" and frontier.requests == []
            assert any("offline" in reason for reason in answer["decision"]["reasons"])
            assert (await execute(client, "ninetyten.toggleOffline", {"offline": False}))["offline"] is False
            answer = await request(client, "ninetyten/ask", uri, question="what is this?", range=selection)
            assert answer["tier"] == "frontier" and len(frontier.requests) == 1


async def test_explain_staged_changes_command(endless_model_path, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "t@e.st"], ["config", "user.name", "T"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True)
    async with lsp_session(
        model=endless_model_path, home=tmp_path / "home", root=repo, options={**FAST, "assist": {"max_tokens": 8}}
    ) as client:
        nothing = await execute(client, "ninetyten.explainChange", {"staged": True})
        assert "nothing is staged" in nothing["error"]
        (repo / "a.py").write_text("x = 2\n")
        unstaged_only = await execute(client, "ninetyten.explainChange", {"staged": True})
        assert "nothing is staged" in unstaged_only["error"]
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        answer = await execute(client, "ninetyten.explainChange", {"staged": True})
        assert answer.get("error") is None and answer["explanation"]
        assert answer["usage"]["completion_tokens"] > 0
