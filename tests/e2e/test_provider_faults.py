"""Every way a provider fails, under concurrent editor requests, through the real server:
bounded latency, the policy's fallback to the local model, one notice to the user, ledger
rows that say what happened, and nothing unhandled in the log."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e.test_routing_server import KEY, KEY_ENV, _as_dict, request, write_policy
from tests.loopback_provider import LoopbackProvider, unused_port
from tests.lsp_session import lsp_session, open_document
from tests.trusted_policy import trust_policy

CONCURRENT = 6
TIMEOUT_S = 2.0  # the tier's timeout_s in the policy below
# (fault, how the frontier URL is spelled, the error kind the ledger must show, or None when
# the request succeeds on the frontier after the fault)
FAULTS = [
    ("status:429", "http", "rate_limited"),
    ("status:500", "http", "server_error"),
    ("status:529", "http", "overloaded"),
    ("timeout", "http", "timeout"),
    ("refused", "refused", "connection"),
    ("tls", "https", "connection"),
    ("malformed_json", "http", "bad_response"),
    ("stream_cut", "http", "stream_cut"),
    ("slow_stream", "http", None),
]


def policy_for(workspace: Path, url: str, home: Path) -> Path:
    path = write_policy(workspace, url)
    text = path.read_text().replace("timeout_s = 5", f"timeout_s = {TIMEOUT_S}")
    path.write_text(text.replace("max_retries = 0", "max_retries = 1"))
    return trust_policy(path, home)


@pytest.mark.parametrize("fault, scheme, kind", FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_under_concurrent_requests(fault, scheme, kind, endless_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    home = tmp_path / "home"
    log_file = tmp_path / "server.log"
    with LoopbackProvider(reply="It returns one.") as frontier:
        frontier.fault = "status:529" if fault == "status:529" else fault
        frontier.retry_after = "0.1"
        frontier.hang_s = 10.0
        frontier.chunk_delay_s = 0.05
        url = {"http": frontier.url, "https": frontier.https_url, "refused": f"http://127.0.0.1:{unused_port()}"}[
            scheme
        ]
        workspace = tmp_path / "ws"
        policy_for(workspace, url, home)
        async with lsp_session(
            model=endless_model_path,
            home=home,
            root=workspace,
            options={"assist": {"max_tokens": 8}},
            extra_args=["--log-file", str(log_file)],
        ) as client:
            uris = [
                open_document(client, workspace / f"m{n}.py", f"def f{n}():\n    return {n}\n")
                for n in range(CONCURRENT)
            ]

            async def ask(uri: str) -> tuple[float, dict]:
                started = time.perf_counter()
                answer = _as_dict(await request(client, "ninetyten/ask", uri, question="what does it return?"))
                return time.perf_counter() - started, answer

            results = await asyncio.wait_for(asyncio.gather(*(ask(uri) for uri in uris)), 120)
            await asyncio.sleep(0.3)
            notices = [m.message for m in client.messages if "is failing" in m.message]
    # The policy's retries (1) each wait at most the timeout, plus backoff and the local fallback.
    bound = 2 * TIMEOUT_S + 4.0
    for elapsed, answer in results:
        assert elapsed < bound, (elapsed, answer)
        assert answer["text"], answer
        expected_tier = "frontier" if kind is None else "local"
        assert answer["tier"] == expected_tier, answer
    rows = (
        sqlite3.connect(home / "ledger.sqlite3")
        .execute("SELECT tier, outcome, error_kind FROM attempts WHERE task = 'ask' ORDER BY id")
        .fetchall()
    )
    if kind is None:
        assert notices == []
        assert rows.count(("frontier", "ok", None)) == CONCURRENT
    else:
        assert len(notices) == 1, notices  # one notice, however many requests failed
        failed = [row for row in rows if row[0] == "frontier"]
        assert failed and all(row[1] == "failed" and row[2] for row in failed), rows
        assert {row[2] for row in failed} <= {kind, "cooling_down"}, rows
        assert kind in {row[2] for row in failed}
        assert rows.count(("local", "ok", None)) == CONCURRENT
    log = log_file.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "Unhandled" not in log and "exception" not in log.lower(), log[-3000:]
