"""No request or response content in any log, at the highest verbosity.

A real server at `-vv` with `--log-file`, a real local model whose every output is a canary,
a loopback frontier whose every reply is a canary, and canaries in the document, in edits,
in the instructions, in the questions and in params that fail validation. Afterwards the
log file and stderr hold none of them, and still hold the metadata (methods, ids, sizes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local_models.tiny import build_tiny_model
from tests.e2e.test_routing_server import KEY, KEY_ENV, write_policy
from tests.loopback_provider import LoopbackProvider
from tests.raw_lsp import RawServer

DOC = "CANARYDOCa1"  # document text
EDIT = "CANARYEDITb2"  # didChange text
ASK = "CANARYASKc3"  # a question
REFACTOR = "CANARYREFd4"  # an instruction
REPLY = "CANARYREPLYe5"  # every frontier answer
BAD_PARAM = "CANARYPARAMf6"  # a value that fails validation
LOCAL_OUT = "kwargskwargs"  # the local model says nothing else
CANARIES = (DOC, EDIT, ASK, REFACTOR, REPLY, BAD_PARAM, LOCAL_OUT)


@pytest.fixture(scope="module")
def canary_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("canary") / "tiny-kwargs.gguf", favour="kwargs")


def test_no_content_reaches_the_logs_at_the_highest_verbosity(
    canary_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(KEY_ENV, KEY)
    workspace = tmp_path / "ws"
    home = tmp_path / "home"
    log_file = tmp_path / "server.log"
    with LoopbackProvider(reply=f"def {REPLY}():\n    return 1\n") as frontier:
        policy = write_policy(workspace, frontier.url)
        # Explanations stay on the local model, so that its output passes through too.
        policy.write_text(policy.read_text().replace('task = ["explain", "ask"]', 'task = ["ask"]'))
        server = RawServer(canary_model, home, "-vv", "--log-file", str(log_file), "--policy", str(policy))
        try:
            server.initialize(options={"completion": {"max_tokens": 6}, "assist": {"max_tokens": 6}}, root=workspace)
            uri = (workspace / "app.py").as_uri()
            server.open(uri, f"def old():\n    return '{DOC}'\n\n")
            server.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": 2},
                    "contentChanges": [
                        {
                            "range": {"start": {"line": 2, "character": 0}, "end": {"line": 2, "character": 0}},
                            "text": f"# {EDIT}\n",
                        }
                    ],
                },
            )
            completion = server.inline(uri, 3, 0, timeout=60)
            assert LOCAL_OUT in str(completion["result"])  # the canary really was generated

            whole = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 24}}
            asked = server.response(
                server.request(
                    "ninetyten/ask", {"textDocument": {"uri": uri}, "range": whole, "question": f"why {ASK}?"}
                ),
                timeout=60,
            )
            assert REPLY in str(asked["result"])

            explained = server.response(
                server.request("ninetyten/explain", {"textDocument": {"uri": uri}, "range": whole}), timeout=60
            )
            assert explained["result"]["tier"] == "local" and LOCAL_OUT in explained["result"]["text"]

            refactor_id = server.request(
                "ninetyten/refactor",
                {"textDocument": {"uri": uri}, "range": whole, "instruction": f"rename to {REFACTOR}", "apply": True},
            )
            apply_edit = server.wait_for(lambda m: m.get("method") == "workspace/applyEdit", timeout=60)
            assert REPLY in str(apply_edit["params"])
            server.send({"id": apply_edit["id"], "result": {"applied": True}})
            refactored = server.response(refactor_id, timeout=60)
            assert REPLY in str(refactored["result"])

            invalid = server.response(
                server.request(
                    "textDocument/inlineCompletion",
                    {
                        "textDocument": {"uri": uri},
                        "position": {"line": BAD_PARAM, "character": 0},
                        "context": {"triggerKind": 1},
                    },
                )
            )
            assert "error" in invalid
            unknown = server.response(server.request("ninetyten/nope", {"text": BAD_PARAM}))
            assert "error" in unknown
            # A change to a document that was never opened makes pygls's handler fail: it logs
            # the notification's params and a traceback, at ERROR.
            server.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": (workspace / "never-opened.py").as_uri(), "version": 2},
                    "contentChanges": [{"text": f"{EDIT} {BAD_PARAM}"}],
                },
            )
            server.notify("textDocument/didOpen", {"textDocument": {"uri": 7, "languageId": BAD_PARAM}})
            alive = server.inline(uri, 3, 0, timeout=60)
            assert "result" in alive
        finally:
            stderr = server.close()
    assert frontier.requests  # content did go where the policy sends it

    log = log_file.read_text(encoding="utf-8", errors="replace")
    assert len(log) > 2000 and "DEBUG" in log  # the highest verbosity really was on
    for where, text in (("log file", log), ("stderr", stderr)):
        leaked = [canary for canary in CANARIES if canary in text]
        assert leaked == [], f"{where} holds content: {leaked}"
    # Metadata stays: methods and sizes of what was sent and received.
    for expected in ("ninetyten/refactor", "ninetyten/ask", "textDocument/didChange", "workspace/applyEdit", "bytes"):
        assert expected in log, expected
