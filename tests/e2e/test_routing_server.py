"""Routing through the real server: policy files, a loopback frontier, the ledger.

The frontier is a real HTTP server on 127.0.0.1 speaking the Anthropic Messages API
(tests/loopback_provider.py) that records every request body; the local tier is real
llama.cpp on the tiny "endless" model.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.loopback_provider import LoopbackProvider, unused_port
from tests.lsp_session import lsp_session, open_document
from tests.trusted_policy import trust_policy

KEY_ENV = "NINETYTEN_TEST_FRONTIER_KEY"
KEY = "test-key-7f3a9c2e"

FAST = {"completion": {"max_tokens": 8}}


def write_policy(
    workspace: Path,
    frontier_url: str,
    *,
    extra: str = "",
    refactor_route: str = "frontier",
    offline: bool = False,
    trusted_in: Path | None = None,
) -> Path:
    """The team's policy in `workspace`; `trusted_in`: approved in that NINETYTEN_HOME (the
    approval covers this content only: a test that edits the file approves it again)."""
    path = workspace / ".ninetyten" / "policy.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""version = 1
offline = {str(offline).lower()}

[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.frontier]
backend = "anthropic"
base_url = "{frontier_url}"
model = "claude-test"
api_key_env = "{KEY_ENV}"
price = {{ input_per_mtok = 2.0, output_per_mtok = 10.0 }}
timeout_s = 5
connect_timeout_s = 1
max_retries = 0

[sensitivity]
paths = ["**/.env", "**/*.pem", "secrets/**"]
on_sensitive = "keep_home"

[[rules]]
name = "refactors"
task = ["refactor"]
route = "{refactor_route}"

[[rules]]
name = "explanations"
task = ["explain", "ask"]
route = "frontier"
{extra}
""")
    if trusted_in is not None:
        trust_policy(path, trusted_in)
    return path


async def request(client: Any, method: str, uri: str, **params: Any) -> dict[str, Any]:
    result = await asyncio.wait_for(
        client.protocol.send_request_async(method, {"textDocument": {"uri": uri}, **params}), 60
    )
    return _as_dict(result)


def _as_dict(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _as_dict(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_as_dict(v) for v in value]
    return value


@pytest.fixture
def frontier():
    with LoopbackProvider(reply="def renamed():\n    return 1\n") as provider:
        yield provider


@pytest.fixture
def server_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


async def test_refactor_goes_to_the_frontier_and_is_recorded(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    write_policy(workspace, frontier.url)
    home = tmp_path / "home"
    trust_policy(workspace / ".ninetyten" / "policy.toml", home)
    async with lsp_session(model=endless_model_path, home=home, options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "app.py", "def old():\n    return 1\n")
        answer = _as_dict(
            await request(
                client,
                "ninetyten/refactor",
                uri,
                instruction="rename to renamed",
                range={"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
            )
        )
        assert answer["tier"] == "frontier" and answer["decision"]["tier"] == "frontier"
        assert answer["text"].startswith("def renamed():")
        change = answer["edit"]["documentChanges"][0]
        assert change["textDocument"]["uri"] == uri
        assert change["edits"][0]["range"]["start"] == {"line": 0, "character": 0}
        assert change["edits"][0]["newText"] == answer["text"]
        sent = frontier.requests
        assert len(sent) == 1 and sent[0].path == "/v1/messages"
        assert sent[0].headers["x-api-key"] == KEY
        assert "def old()" in json.dumps(sent[0].body)
    rows = (
        sqlite3.connect(home / "ledger.sqlite3")
        .execute("SELECT task, tier, backend, outcome, cost_nusd > 0 FROM attempts")
        .fetchall()
    )
    assert ("refactor", "frontier", "anthropic", "ok", 1) in rows
    raw = (home / "ledger.sqlite3").read_bytes()
    assert b"def old" not in raw and KEY.encode() not in raw


async def test_secret_never_reaches_the_frontier(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    write_policy(workspace, frontier.url)
    secret = "AKIAZ7QRT2LXW4PN3KVD"
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "cfg.py", f'ACCESS_KEY = "{secret}"\n')
        answer = _as_dict(await request(client, "ninetyten/explain", uri))
        assert answer["decision"]["sensitivity"] == "sensitive"
        assert answer["tier"] == "local" and answer["text"]
    assert all(secret not in r.raw.decode("utf-8", "replace") for r in frontier.requests)
    assert frontier.requests == []


async def test_unreachable_frontier_falls_back_and_tells_the_user_once(server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    write_policy(workspace, f"http://127.0.0.1:{unused_port()}")
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "a.py", "def f():\n    return 1\n")
        for _ in range(3):
            started = time.perf_counter()
            answer = _as_dict(await request(client, "ninetyten/ask", uri, question="what does it return?"))
            assert time.perf_counter() - started < 5  # connect timeout is 1 s
            assert answer["tier"] == "local" and answer["text"]
            assert answer["usage"]["attempts"][0]["outcome"] == "failed"
        await asyncio.sleep(0.2)
        warnings = [m for m in client.messages if "is failing" in m.message]
        assert len(warnings) == 1


async def test_offline_policy_sends_nothing_and_says_so_once(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    write_policy(workspace, frontier.url, offline=True)
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "a.py", "x = 1\n")
        for _ in range(2):
            answer = _as_dict(await request(client, "ninetyten/explain", uri))
            assert answer["tier"] == "local"
        offline_notes = [m for m in client.messages if "offline" in m.message]
        assert len(offline_notes) == 1
    assert frontier.requests == []


async def test_policy_hot_reload_and_diagnostics(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    policy_path = write_policy(workspace, frontier.url)
    policy_uri = policy_path.resolve().as_uri()
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "a.py", "def f():\n    return 1\n")
        refactor = {
            "instruction": "tidy",
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 12}},
        }
        assert _as_dict(await request(client, "ninetyten/refactor", uri, **refactor))["tier"] == "frontier"

        # A broken edit: reported on the policy file, and the last good policy stays.
        good_text = policy_path.read_text()
        broken_text = good_text.replace('route = "frontier"', 'route = "moon"', 1)
        policy_path.write_text(broken_text)
        moon_line = broken_text.split("\n").index('route = "moon"')
        deadline = time.monotonic() + 15
        while not client.diagnostics.get(policy_uri):
            assert time.monotonic() < deadline, "no diagnostics for the broken policy"
            await asyncio.sleep(0.05)
        diagnostic = client.diagnostics[policy_uri][0]
        assert "rules.0.route" in diagnostic.message
        assert diagnostic.range.start.line == moon_line
        assert _as_dict(await request(client, "ninetyten/refactor", uri, **refactor))["tier"] == "frontier"

        # A good edit, replaced atomically: diagnostics cleared, the new policy in force.
        replacement = policy_path.with_suffix(".tmp")
        replacement.write_text(good_text.replace('route = "frontier"', 'route = "local"', 1))
        os.replace(replacement, policy_path)
        deadline = time.monotonic() + 15
        while client.diagnostics.get(policy_uri):
            assert time.monotonic() < deadline, "diagnostics not cleared"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        before = len(frontier.requests)
        answer = _as_dict(await request(client, "ninetyten/refactor", uri, **refactor))
        assert answer["tier"] == "local" and len(frontier.requests) == before


async def test_broken_policy_at_start_means_everything_local(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    policy_path = write_policy(workspace, frontier.url)
    policy_path.write_text(policy_path.read_text() + "\n[budget]\nsoft_fraction = 7\n")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace) as client:
        deadline = time.monotonic() + 10
        while not client.diagnostics.get(policy_path.resolve().as_uri()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert any("built-in default" in m.message for m in client.messages)
        uri = open_document(client, workspace / "a.py", "x = 1\n")
        assert _as_dict(await request(client, "ninetyten/explain", uri))["tier"] == "local"
    assert frontier.requests == []


async def test_invalid_assist_params_are_an_error_result(endless_model_path, tmp_path):
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST) as client:
        answer = _as_dict(await request(client, "ninetyten/explain", (tmp_path / "nope.py").as_uri()))
        assert "not open" in answer["error"]
        uri = open_document(client, tmp_path / "a.py", "x = 1\n")
        answer = _as_dict(
            await request(
                client,
                "ninetyten/refactor",
                uri,
                range={"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 1}},
            )
        )
        assert "invalid refactor request" in answer["error"]


DATA = Path(__file__).resolve().parents[1] / "data"


def seeded_files() -> list[tuple[str, str, list[str]]]:
    manifest = json.loads((DATA / "secrets" / "manifest.json").read_text())
    out = []
    for name, planted in manifest["files"].items():
        text = (DATA / "secrets" / name).read_text(encoding="utf-8")
        out.append((name, text, [item["value"] for item in planted]))
    return out


def clean_files() -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted((DATA / "clean").iterdir()) if p.is_file()]


def distinctive_line(text: str) -> str:
    lines = [line.strip() for line in text.split("\n") if len(line.strip()) > 25]
    return max(lines, key=len)


async def drive_corpus(client: Any, workspace: Path, files: list[tuple[str, str]], tier: str) -> list[str]:
    """Open every file (under its own name and a neutral one) and ask for explain/refactor/ask;
    each must be answered, by `tier`."""
    uris = []
    for index, (name, text) in enumerate(files):
        for relative in (f"corpus/{name}", f"src/module_{index}.txt"):
            uri = open_document(client, workspace / relative, text)
            uris.append(uri)
            answers = {
                "explain": await request(client, "ninetyten/explain", uri),
                "refactor": await request(client, "ninetyten/refactor", uri, instruction="tidy this up"),
                "ask": await request(client, "ninetyten/ask", uri, question="what is this for?"),
            }
            for task, answer in answers.items():
                assert not answer.get("error") and answer.get("text"), (relative, task, answer)
                assert answer["tier"] == tier, (relative, task, answer["tier"], answer["decision"]["reasons"])
    return uris


@pytest.mark.timeout(900)  # some 150 requests: minutes on a busy machine
async def test_seeded_secrets_never_reach_the_frontier(frontier, server_env, endless_model_path, tmp_path):
    """Every planted value, in every form, on every path that can reach a remote tier."""
    seeded = seeded_files()
    assert len(seeded) >= 15
    workspace = tmp_path / "ws"
    write_policy(workspace, frontier.url)
    options = {**FAST, "assist": {"max_tokens": 8}}
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options, root=workspace) as client:
        await drive_corpus(client, workspace, [(name, text) for name, text, _ in seeded], "local")
        sent_before_clean = len(frontier.requests)
        await drive_corpus(client, workspace, clean_files(), "frontier")
    bodies = [r.raw.decode("utf-8", "replace") for r in frontier.requests]
    leaked = sorted({value for _, _, values in seeded for value in values for body in bodies if value in body})
    assert leaked == []
    assert sent_before_clean == 0  # nothing from the seeded files went out at all
    # Clean files do reach the frontier: each one's content was sent.
    for name, text in clean_files():
        line = distinctive_line(text)
        assert any(json.dumps(line)[1:-1] in body for body in bodies), f"{name} never reached the frontier"


async def test_escalation_drafts_are_checked_before_they_leave(frontier, server_env, endless_model_path, tmp_path):
    """Local first, escalating to the frontier when the draft fails its checks: a secret in
    the request (or the draft) keeps the escalation home; clean requests escalate."""
    seeded = seeded_files()
    workspace = tmp_path / "ws"
    extra = '\n[escalation]\nverify = ["non_empty", "length"]\nmax_attempts = 2\ndeadline_ms = 20000\n'
    write_policy(workspace, frontier.url, extra=extra)
    text = (workspace / ".ninetyten" / "policy.toml").read_text()
    text = text.replace(
        'task = ["explain", "ask"]\nroute = "frontier"',
        'task = ["explain", "ask"]\nroute = "local"\nescalate_to = "frontier"',
    )
    (workspace / ".ninetyten" / "policy.toml").write_text(text)
    # Four tokens of "x": too short for the length check, so every local draft escalates.
    options = {**FAST, "assist": {"max_tokens": 4}}
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options, root=workspace) as client:
        for index, (name, body, _) in enumerate(seeded):
            uri = open_document(client, workspace / f"src/seeded_{index}.txt", body)
            answer = await request(client, "ninetyten/explain", uri)
            assert answer["tier"] == "local" and answer["text"], answer  # the local answer, never an error
        assert frontier.requests == []
        uri = open_document(client, workspace / "src/clean.py", "def add(a, b):\n    return a + b\n")
        answer = await request(client, "ninetyten/explain", uri)
        assert answer["tier"] == "frontier"
        outcomes = [a["outcome"] for a in answer["usage"]["attempts"]]
        assert outcomes == ["escalated", "ok"]
    sent = frontier.requests
    assert len(sent) == 1
    messages = sent[0].body["messages"]
    assert any(m["role"] == "assistant" and m["content"] == "xxxx" for m in messages)  # the draft went along


async def test_completion_escalates_on_low_confidence(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    path = write_policy(workspace, frontier.url)
    # The endless model's mean log-probability is about -0.2: a threshold above it escalates.
    path.write_text(
        path.read_text() + '\n[[rules]]\nname = "completions"\ntask = ["completion"]\nroute = "local"\n'
        'escalate_to = "frontier"\n\n[escalation]\ncompletion_min_mean_logprob = -0.0001\n'
    )
    home = tmp_path / "home"
    trust_policy(workspace / ".ninetyten" / "policy.toml", home)
    async with lsp_session(model=endless_model_path, home=home, options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "calc.py", "def add(a, b):\n    return \n")
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(1, 11),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        assert result.items[0].insert_text == "def renamed():\n    return 1"  # the frontier's answer
        sent = frontier.requests
        assert len(sent) == 1 and "<CURSOR>" in json.dumps(sent[0].body)

        secret_uri = open_document(client, workspace / "keys.py", 'KEY = "AKIAZ7QRT2LXW4PN3KVD"\nvalue = \n')
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=secret_uri),
                position=types.Position(1, 8),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        assert set(result.items[0].insert_text) == {"x"}  # the local answer
        assert len(frontier.requests) == 1  # nothing more went out
    rows = (
        sqlite3.connect(home / "ledger.sqlite3")
        .execute(
            "SELECT request_id, attempt, tier, outcome, escalation_reason FROM attempts WHERE task = 'completion' "
            "ORDER BY id"
        )
        .fetchall()
    )
    first = [row[1:] for row in rows if row[0] == rows[0][0]]
    assert first == [(1, "local", "escalated", "low_confidence"), (2, "frontier", "ok", None)]


async def test_budget_cap_keeps_paid_tiers_off(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    path = write_policy(workspace, frontier.url)
    path.write_text(path.read_text() + "\n[budget]\ndaily_usd = 0.0000001\n")
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "a.py", "def f():\n    return 1\n")
        answer = await request(client, "ninetyten/explain", uri)
        assert answer["tier"] == "local" and answer["text"]
        assert any("budget" in reason for reason in answer["decision"]["reasons"])
    assert frontier.requests == []


async def test_report_matches_the_ledger(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    write_policy(workspace, frontier.url)
    home = tmp_path / "home"
    trust_policy(workspace / ".ninetyten" / "policy.toml", home)
    async with lsp_session(model=endless_model_path, home=home, options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "a.py", "def f():\n    return 1\n")
        for _ in range(2):
            await request(client, "ninetyten/explain", uri)
        await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(1, 12),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "lsp_server", "report", "--json", "--since", "all"],
        capture_output=True,
        text=True,
        env={**os.environ, "NINETYTEN_HOME": str(home)},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    db = sqlite3.connect(home / "ledger.sqlite3")
    total_cost = db.execute("SELECT SUM(cost_nusd) FROM attempts").fetchone()[0] / 1e9
    frontier_cost = db.execute("SELECT SUM(frontier_cost_nusd) FROM attempts").fetchone()[0] / 1e9
    totals = report["totals"]
    assert abs(totals["cost_usd"] - total_cost) < 1e-9
    assert abs(totals["frontier_cost_usd"] - frontier_cost) < 1e-9
    assert totals["attempts"] == db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    by_task = {group["key"]: group for group in report["by_task"]}
    assert by_task["explain"]["requests"] == 2 and by_task["completion"]["requests"] == 1
    assert total_cost > 0


from tests.e2e.test_inhouse_llama_server import llama_server  # noqa: E402,F401  (a real llama.cpp server)


async def test_in_house_tier_on_a_real_openai_compatible_server(llama_server, endless_model_path, tmp_path):
    """The in-house tier is llama.cpp's own OpenAI-compatible server on loopback; it keeps
    data home, so even a request with a secret may go there."""
    workspace = tmp_path / "ws"
    path = workspace / ".ninetyten" / "policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text(f"""version = 1
[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.in_house]
backend = "openai"
base_url = "{llama_server}"
model = "tiny"
keeps_data_home = true

[[rules]]
name = "refactors in house"
task = ["refactor"]
route = "in_house"

[escalation]
verify = ["non_empty"]
""")
    options = {**FAST, "assist": {"max_tokens": 8}}
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=options, root=workspace) as client:
        uri = open_document(client, workspace / "keys.py", 'KEY = "AKIAZ7QRT2LXW4PN3KVD"\nprint(KEY)\n')
        answer = await request(client, "ninetyten/refactor", uri, instruction="inline the constant")
        assert answer["decision"]["sensitivity"] == "sensitive"
        assert answer["tier"] == "in_house", answer
        attempt = answer["usage"]["attempts"][-1]
        assert attempt["outcome"] in ("ok", "low_confidence") and answer["usage"]["completion_tokens"] > 0


async def test_completion_escalates_on_one_unsure_token(frontier, server_env, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    path = write_policy(workspace, frontier.url)
    rule = '\n[[rules]]\nname = "completions"\ntask = ["completion"]\nroute = "local"\nescalate_to = "frontier"\n'
    # The mean alone (-5) would keep every completion local; the least sure token decides.
    path.write_text(
        path.read_text() + rule + '\n[escalation]\ncompletion_min_mean_logprob = -5.0\n'
        'completion_min_token_logprob = -0.0001\n'
    )
    trust_policy(workspace / ".ninetyten" / "policy.toml", tmp_path / "home")
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", options=FAST, root=workspace) as client:
        uri = open_document(client, workspace / "calc.py", "def add(a, b):\n    return \n")
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(1, 11),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        assert result.items[0].insert_text == "def renamed():\n    return 1"
        assert len(frontier.requests) == 1
