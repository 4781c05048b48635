"""Repository context in real LSP sessions: the workspace is indexed in the background, a
sibling module's definition reaches the prompt of the only open file, edited ranges and
forwarded definitions come along, and the sensitivity gate keeps secret-bearing context
from a remote tier (the ledger row says so)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.test_routing_server import KEY, KEY_ENV, _as_dict, write_policy
from tests.loopback_provider import LoopbackProvider
from tests.lsp_session import inline, lsp_session, open_document, served_notifications
from tests.trusted_policy import trust_policy

FAST = {"completion": {"max_tokens": 8, "time_limit_ms": 60_000}}
SIGNATURE = "def encode_frame(frame_bytes: bytes, checksum_seed: int, *, compress_level: int = 3) -> bytes: ..."
FRAMING = '''"""Wire framing."""


def encode_frame(frame_bytes: bytes, checksum_seed: int, *, compress_level: int = 3) -> bytes:
    header = len(frame_bytes).to_bytes(4, "big")
    return header + frame_bytes
'''
APP = '''from .framing import encode_frame


def send(sock, payload, seed):
    frame_bytes = bytes(payload)
    checksum_seed = seed ^ 0x5A
    data = encode_frame(
'''
# Split so that this file holds no credential-shaped string itself.
SECRET = "AKIA" + "Z7QRT2LXW4PN3KVD"
SETTINGS = f'''class Settings:
    aws_access_key_id: str = "{SECRET}"

    def connect(self, region: str) -> None:
        pass
'''
VAULT = "def unseal(vault_token: str) -> bytes:\n    return b''\n"
SECURE_APP = '''from .settings import Settings
from .framing import encode_frame
from secrets_dir.vault import unseal


def send(sock, payload, seed):
    config = Settings()
    key = unseal(config.connect("eu"))
    data = encode_frame(
'''


def workspace(root: Path, app: str = APP) -> Path:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "framing.py").write_text(FRAMING)
    (root / "pkg" / "app.py").write_text(app)
    return root


def end_of(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 2, len(lines[-2])


async def stats(client: Any) -> dict[str, Any]:
    return _as_dict(await client.protocol.send_request_async("ninetyten/stats", {}))


async def indexed(client: Any, files: int) -> dict[str, Any]:
    for _ in range(3000):
        counters = await stats(client)
        if not counters["context_indexing"] and counters["context_indexed_files"] >= files:
            return counters
        await asyncio.sleep(0.02)
    raise AssertionError(f"the workspace was not indexed: {counters}")


async def context_at(client: Any, uri: str, line: int, character: int) -> dict[str, Any]:
    return _as_dict(
        await client.protocol.send_request_async(
            "ninetyten/context", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
        )
    )


async def test_the_sibling_modules_definition_reaches_the_prompt(tiny_model_path, session_home, tmp_path):
    root = workspace(tmp_path / "ws")
    async with lsp_session(model=tiny_model_path, home=session_home, options=FAST, root=root) as client:
        uri = open_document(client, root / "pkg" / "app.py", APP)  # the only open file
        counters = await indexed(client, 3)
        assert counters["context_indexed_files"] == 3
        line, character = end_of(APP)
        context = await context_at(client, uri, line, character)
        assert [(s["path"], s["kind"], s["text"]) for s in context["snippets"]] == [
            ("pkg/framing.py", "import", SIGNATURE)
        ]
        # Qwen's repository-level format: the sibling file, then the current one, then FIM.
        prompt = context["prompt"]
        assert prompt.index("<|repo_name|>ws\n") < prompt.index("<|file_sep|>pkg/framing.py\n" + SIGNATURE)
        assert prompt.index(SIGNATURE) < prompt.index("<|file_sep|>pkg/app.py\n") < prompt.index("<|fim_prefix|>")
        assert context["context_tokens"] > 0

        served = served_notifications(client)
        assert (await inline(client, uri, line, character)) is not None
        first = served[-1]
        assert first["prompt_tokens"] == context["prompt_tokens"]


async def test_without_the_index_the_prompt_holds_only_the_document(tiny_model_path, session_home, tmp_path):
    root = workspace(tmp_path / "ws")
    options = {"completion": {**FAST["completion"], "repository_context": False}}
    async with lsp_session(model=tiny_model_path, home=session_home, options=options, root=root) as client:
        uri = open_document(client, root / "pkg" / "app.py", APP)
        context = await context_at(client, uri, *end_of(APP))
        assert context["snippets"] == [] and "encode_frame(frame_bytes" not in context["prompt"]
        assert (await stats(client))["context_indexed_files"] == 0


async def test_edited_ranges_and_forwarded_definitions_join_in_a_stable_order(tiny_model_path, session_home, tmp_path):
    root = workspace(tmp_path / "ws")
    notes = root / "pkg" / "notes.py"
    notes_text = "".join(f"NOTE_{n} = {n}\n" for n in range(30))
    notes.write_text(notes_text)
    library = tmp_path / "env" / "lib" / "site-packages" / "wirelib" / "api.py"
    library.parent.mkdir(parents=True)
    library.write_text(
        "import zlib\n\n\ndef crc_frame(data: bytes, *, polynomial: int = 0x04C11DB7) -> int:\n"
        "    return zlib.crc32(data)\n"
    )
    async with lsp_session(model=tiny_model_path, home=session_home, options=FAST, root=root) as client:
        uri = open_document(client, root / "pkg" / "app.py", APP)
        notes_uri = open_document(client, notes, notes_text)
        await indexed(client, 4)
        # An edit in notes.py (line 20): those lines, not the whole file, become context.
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=notes_uri, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(20, 0), types.Position(20, 12)), text="NOTE_20 = 2000"
                    )
                ],
            )
        )
        # The editor's other language server knows where crc_frame lives (a library).
        client.protocol.notify(
            "ninetyten/definitions",
            {
                "textDocument": {"uri": uri},
                "definitions": [
                    {
                        "uri": library.as_uri(),
                        "range": {"start": {"line": 3, "character": 4}, "end": {"line": 3, "character": 13}},
                    }
                ],
            },
        )
        line, character = end_of(APP)
        context = await context_at(client, uri, line, character)
        kinds = [(s["kind"], s["path"]) for s in context["snippets"]]
        assert kinds == [("edit", "pkg/notes.py"), ("import", "pkg/framing.py"), ("forwarded", "wirelib/api.py")]
        edit = context["snippets"][0]["text"].split("\n")
        assert edit == ["NOTE_18 = 18", "NOTE_19 = 19", "NOTE_20 = 2000", "NOTE_21 = 21", "NOTE_22 = 22"]
        assert (
            context["snippets"][2]["text"] == "def crc_frame(data: bytes, *, polynomial: int = 0x04C11DB7) -> int: ..."
        )
        counters = await stats(client)
        assert (counters["context_chunks"], counters["context_forwarded"]) == (1, 1)

        # Typing on the cursor line changes nothing before the document in the prompt:
        # consecutive keystrokes reuse the KV cache for all the context.
        served = served_notifications(client)
        await inline(client, uri, line, character)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(line, character), types.Position(line, character)), text="f"
                    )
                ],
            )
        )
        again = await context_at(client, uri, line, character + 1)
        assert again["snippets"] == context["snippets"]
        await inline(client, uri, line, character + 1)
        generated = [s for s in served if s.get("stop_reason") != "cache"]
        assert generated[-1]["cached_prompt_tokens"] >= again["context_tokens"] + 10, generated[-1]

        # Closing notes.py takes its edited lines out of every prompt.
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=notes_uri))
        )
        after = await context_at(client, uri, line, character + 1)
        assert [s["kind"] for s in after["snippets"]] == ["import", "forwarded"]


async def test_forwarded_definitions_are_checked_at_the_edge(tiny_model_path, session_home, tmp_path):
    root = workspace(tmp_path / "ws")
    async with lsp_session(model=tiny_model_path, home=session_home, options=FAST, root=root) as client:
        uri = open_document(client, root / "pkg" / "app.py", APP)
        client.protocol.notify("ninetyten/definitions", {"textDocument": {"uri": uri}, "definitions": "nope"})
        client.protocol.notify(
            "ninetyten/definitions",
            {
                "textDocument": {"uri": uri},
                "definitions": [
                    {
                        "uri": "https://example.com/x.py",
                        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}},
                    },
                    {
                        "uri": (tmp_path / "missing.py").as_uri(),
                        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}},
                    },
                ],
            },
        )
        context = await context_at(client, uri, *end_of(APP))
        assert all(s["kind"] != "forwarded" for s in context["snippets"])
        assert (await stats(client))["context_forwarded"] == 1  # the missing file: kept, renders nothing
        bad = _as_dict(await client.protocol.send_request_async("ninetyten/context", {"textDocument": {"uri": uri}}))
        assert "invalid" in bad["error"]


@pytest.fixture
def frontier():
    with LoopbackProvider(reply="config, seed)") as provider:
        yield provider


async def test_secret_bearing_context_never_reaches_a_remote_tier(frontier, monkeypatch, endless_model_path, tmp_path):
    monkeypatch.setenv(KEY_ENV, KEY)
    root = workspace(tmp_path / "ws", SECURE_APP)
    (root / "pkg" / "settings.py").write_text(SETTINGS)
    (root / "secrets_dir").mkdir()
    (root / "secrets_dir" / "__init__.py").write_text("")
    (root / "secrets_dir" / "vault.py").write_text(VAULT)
    path = write_policy(root, frontier.url)
    # Every completion escalates (the endless model is never this sure); secrets_dir/ is sensitive.
    path.write_text(
        path.read_text().replace(
            'paths = ["**/.env", "**/*.pem", "secrets/**"]', 'paths = ["**/.env", "**/*.pem", "secrets_dir/**"]'
        )
        + '\n[[rules]]\nname = "completions"\ntask = ["completion"]\nroute = "local"\n'
        'escalate_to = "frontier"\n\n[escalation]\ncompletion_min_mean_logprob = -0.0001\n'
    )
    home = tmp_path / "home"
    trust_policy(path, home)
    async with lsp_session(model=endless_model_path, home=home, options=FAST, root=root) as client:
        uri = open_document(client, root / "pkg" / "app.py", SECURE_APP)
        await indexed(client, 6)
        line, character = end_of(SECURE_APP)
        local = await context_at(client, uri, line, character)
        kinds = {s["path"]: s["kind"] for s in local["snippets"]}
        # The local model sees all of it: nothing leaves the machine from its prompt.
        assert kinds == {"pkg/settings.py": "import", "pkg/framing.py": "import", "secrets_dir/vault.py": "import"}
        assert SECRET in local["prompt"]

        result = await inline(client, uri, line, character)
        assert result.items[0].insert_text == "config, seed)"  # the frontier's answer
    (sent,) = frontier.requests
    body = json.dumps(sent.body)
    assert SIGNATURE in body  # clean context went along
    assert SECRET not in body and "aws_access_key_id" not in body  # the secret-bearing class did not
    assert "unseal(vault_token" not in body and "secrets_dir/vault.py" not in body  # nor the sensitive path
    rows = (
        sqlite3.connect(home / "ledger.sqlite3")
        .execute("SELECT attempt, tier, reasons FROM attempts WHERE task = 'completion' ORDER BY id")
        .fetchall()
    )
    assert [(a, t) for a, t, _ in rows] == [(1, "local"), (2, "frontier")]
    local_reasons, remote_reasons = (json.loads(r) for _, _, r in rows)
    assert not any(r.startswith("context_withheld") for r in local_reasons)
    withheld = [r for r in remote_reasons if r.startswith("context_withheld")]
    assert withheld == ["context_withheld: 2 snippets kept home (path, secret)"]
    assert SECRET not in json.dumps(rows)
