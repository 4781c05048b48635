"""Through the real server: a tier whose key would cross the network in clear text is refused,
the request is answered on the local model, and the user is told why (once)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.addresses import non_loopback_ipv4, own_hostname
from tests.e2e.test_routing_server import FAST, KEY, KEY_ENV, _as_dict, request, write_policy
from tests.loopback_provider import LoopbackProvider
from tests.lsp_session import lsp_session, open_document


def _target() -> tuple[str, str] | None:
    address = non_loopback_ipv4()
    return (address, address) if address is not None else own_hostname()


@pytest.mark.skipif(_target() is None, reason="no way to reach this machine under a non-loopback name")
async def test_a_key_over_plain_http_to_another_host_is_refused_and_the_request_stays_local(
    endless_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(KEY_ENV, KEY)
    target = _target()
    assert target is not None
    name, address = target
    workspace = tmp_path / "ws"
    home = tmp_path / "home"
    with LoopbackProvider(host=address) as remote:
        # The user's own policy (--policy), so that nothing but the URL decides.
        policy = write_policy(workspace, f"http://{name}:{remote.port}")
        async with lsp_session(
            model=endless_model_path, home=home, options=FAST, root=workspace, extra_args=["--policy", str(policy)]
        ) as client:
            uri = open_document(client, workspace / "a.py", "def f():\n    return 1\n")
            for _ in range(2):
                answer = _as_dict(await request(client, "ninetyten/ask", uri, question="what does it return?"))
                assert answer["tier"] == "local" and answer["text"]
                assert answer["usage"]["attempts"][0]["error_kind"] == "insecure_transport"
            await asyncio.sleep(0.2)
            notices = [m.message for m in client.messages if "plain http" in m.message]
            assert len(notices) == 1 and "https://" in notices[0] and KEY not in notices[0]
        assert remote.requests == []
    rows = (
        sqlite3.connect(home / "ledger.sqlite3")
        .execute("SELECT tier, outcome, error_kind FROM attempts WHERE task = 'ask' ORDER BY id")
        .fetchall()
    )
    assert ("frontier", "failed", "insecure_transport") in rows


def test_doctor_names_a_tier_whose_key_would_travel_in_clear(endless_model_path: Path, tmp_path: Path):
    policy = write_policy(tmp_path / "ws", "http://192.0.2.10:8000")
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(tmp_path / "home"),
        "NINETYTEN_POLICY": str(policy),
        "NINETYTEN_MODEL": str(endless_model_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server", "doctor"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 1
    assert "PROBLEM: frontier would send its key over plain http" in result.stdout
    safe = write_policy(tmp_path / "ws2", "https://192.0.2.10:8443")
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server", "doctor"],
        capture_output=True,
        text=True,
        env={**env, "NINETYTEN_POLICY": str(safe)},
        timeout=120,
    )
    assert "plain http" not in result.stdout
