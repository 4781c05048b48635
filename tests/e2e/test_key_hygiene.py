"""An API key goes to its provider's host and nowhere else: not into logs (at debug level),
the ledger, its journal, error messages, notifications, `doctor`, `route` or `report`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_routing_server import KEY, KEY_ENV, write_policy
from tests.loopback_provider import LoopbackProvider
from tests.raw_lsp import RawServer

FAULTS = ("status:401", "status:500", "status:429", "malformed_json", "stream_cut", "timeout", "disconnect", "ok")


def everything_written(home: Path, *extra: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for root in (home, *extra):
        for path in root.rglob("*"):
            if path.is_file() and path.suffix != ".gguf":
                found[str(path)] = path.read_bytes()
    return found


def test_the_key_appears_only_in_requests_to_its_provider(endless_model_path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    logs = tmp_path / "logs"
    logs.mkdir()
    with LoopbackProvider() as frontier:
        frontier.hang_s = 2.0
        frontier_url = frontier.url
        policy = write_policy(workspace, frontier_url, trusted_in=home)
        server = RawServer(endless_model_path, home, "-vv", "--log-file", str(logs / "server.log"))
        try:
            server.initialize(options={"assist": {"max_tokens": 8}}, root=workspace)
            uri = (workspace / "app.py").as_uri()
            server.open(uri, "def old():\n    return 1\n")
            selection = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}}
            for fault in FAULTS:
                frontier.queue(fault, fault, fault)  # every retry fails the same way
                msg_id = server.request(
                    "ninetyten/ask",
                    {"textDocument": {"uri": uri}, "range": selection, "question": f"what happens with {fault}?"},
                )
                answer = server.response(msg_id, timeout=60)
                assert "result" in answer, answer
            messages = repr(server.received).encode()
        finally:
            stderr = server.close().encode()
        assert any(r.headers.get("x-api-key") == KEY for r in frontier.requests)  # it was used, where it belongs

    # NINETYTEN_MODEL: doctor reports this file instead of assembling the embedded model here.
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(home),
        "NINETYTEN_POLICY": str(policy),
        "NINETYTEN_MODEL": str(endless_model_path),
    }
    outputs: dict[str, bytes] = {}
    stdout: dict[str, str] = {}
    for command in (
        ["doctor"],
        ["route", "--task", "refactor", "--json"],
        ["report", "--json", "--since", "all"],
        ["policy", "show"],
    ):
        name = " ".join(command)
        result = subprocess.run(
            [sys.executable, "-m", "lsp_server", "-vv", *command],
            capture_output=True,
            env=env,
            cwd=workspace,
            timeout=120,
        )
        assert result.returncode == 0, (name, result.stdout, result.stderr)
        outputs[name] = result.stdout + result.stderr
        stdout[name] = result.stdout.decode()
    # Each command did its job (a traceback or an empty answer would not), naming the key's variable only.
    doctor = stdout["doctor"]
    assert re.search(rf"^ledger\s+{re.escape(str(home / 'ledger.sqlite3'))}$", doctor, re.M), doctor
    assert re.search(rf"^  tier frontier\s+anthropic claude-test, key {KEY_ENV} set$", doctor, re.M), doctor
    assert re.search(r"^status\s+ok$", doctor, re.M), doctor
    route = json.loads(stdout["route --task refactor --json"])
    assert (route["tier"], route["backend"], route["model"]) == ("frontier", "anthropic", "claude-test")
    report = json.loads(stdout["report --json --since all"])
    assert report["totals"]["requests"] == len(FAULTS), report["totals"]  # every ask is in the ledger
    assert [row["key"] for row in report["by_task"]] == ["ask"], report["by_task"]
    shown = json.loads(stdout["policy show"])
    assert shown["tiers"]["frontier"]["base_url"] == frontier_url
    assert shown["tiers"]["frontier"]["api_key_env"] == KEY_ENV

    written = everything_written(home, logs)
    assert str(home / "ledger.sqlite3") in written
    assert any(path.endswith("server.log") and len(data) > 1000 for path, data in written.items())
    key = KEY.encode()
    places = {"notifications and responses": messages, "server stderr": stderr, **written, **outputs}
    leaked = sorted(name for name, data in places.items() if key in data or key[:12] in data)
    assert leaked == []
