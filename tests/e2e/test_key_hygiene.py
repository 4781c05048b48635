"""An API key goes to its provider's host and nowhere else: not into logs (at debug level),
the ledger, its journal, error messages, notifications, `doctor`, `route` or `report`."""

from __future__ import annotations

import os
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
        policy = write_policy(workspace, frontier.url)
        server = RawServer(endless_model_path, home, "-vv", "--log-file", str(logs / "server.log"))
        try:
            server.initialize(options={"assist": {"max_tokens": 8}}, root=workspace)
            uri = (workspace / "app.py").as_uri()
            server.open(uri, "def old():\n    return 1\n")
            selection = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}}
            for fault in FAULTS:
                frontier.queue(fault, fault, fault)  # every retry fails the same way
                msg_id = server.request("ninetyten/ask", {"textDocument": {"uri": uri}, "range": selection,
                                                          "question": f"what happens with {fault}?"})
                answer = server.response(msg_id, timeout=60)
                assert "result" in answer, answer
            messages = repr(server.received).encode()
        finally:
            stderr = server.close().encode()
        assert any(r.headers.get("x-api-key") == KEY for r in frontier.requests)  # it was used, where it belongs

    env = {**os.environ, "NINETYTEN_HOME": str(home), "NINETYTEN_POLICY": str(policy)}
    outputs = {}
    for command in (["doctor"], ["route", "--task", "refactor", "--json"], ["report", "--json", "--since", "all"],
                    ["policy", "show"]):
        result = subprocess.run([sys.executable, "-m", "lsp_server", "-vv", *command], capture_output=True,
                                env=env, cwd=workspace, timeout=120)
        outputs[" ".join(command)] = result.stdout + result.stderr
    assert b"ledger" in outputs["doctor"].lower() or outputs["doctor"]  # doctor ran and said something

    written = everything_written(home, logs)
    assert str(home / "ledger.sqlite3") in written
    assert any(path.endswith("server.log") and len(data) > 1000 for path, data in written.items())
    key = KEY.encode()
    places = {"notifications and responses": messages, "server stderr": stderr, **written, **outputs}
    leaked = sorted(name for name, data in places.items() if key in data or key[:12] in data)
    assert leaked == []
