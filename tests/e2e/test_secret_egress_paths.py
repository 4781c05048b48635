"""The seeded-secret corpus against every path that can reach a remote tier.

The policy sends everything it can to the loopback frontier: completions escalate on any
confidence, explanations, commit messages, refactors and questions go out directly. No
planted value may appear in any request the frontier receives, and clean content must
still go out (so the test would notice a frontier that is simply never called).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from tests.e2e.test_code_actions import execute
from tests.e2e.test_routing_server import KEY, KEY_ENV, clean_files, distinctive_line, seeded_files, write_policy
from tests.loopback_provider import LoopbackProvider
from tests.lsp_session import lsp_session, open_document

EVERYTHING_OUT = """
[[rules]]
name = "completions"
task = ["completion"]
route = "local"
escalate_to = "frontier"

[[rules]]
name = "commit messages"
task = ["commit_message"]
route = "frontier"

[escalation]
completion_min_mean_logprob = -0.0001
"""


def planted_values() -> list[str]:
    return sorted({value for _, _, values in seeded_files() for value in values})


def leaks(frontier: LoopbackProvider) -> list[str]:
    bodies = [request.raw.decode("utf-8", "replace") for request in frontier.requests]
    # JSON escapes quotes and backslashes: look for both spellings of each value.
    return sorted(
        {value for value in planted_values() for body in bodies if value in body or json.dumps(value)[1:-1] in body}
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def frontier(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with LoopbackProvider(reply="It tidies the module.") as provider:
        yield provider


@pytest.fixture
def repo(tmp_path: Path, frontier: LoopbackProvider) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "d@e.f"],
        ["config", "user.name", "D"],
        ["config", "commit.gpgsign", "false"],
    ):
        git(path, *args)
    (path / "README.md").write_text("project\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    write_policy(path, frontier.url, extra=EVERYTHING_OUT, trusted_in=tmp_path / "home")
    return path


def run_cli(repo: Path, model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(repo.parent / "home"),
        "NINETYTEN_MODEL": str(model),
        "XDG_CONFIG_HOME": str(repo.parent / "config"),
        "NINETYTEN_HOOK_TIMEOUT": "60",
    }
    env.pop("NINETYTEN_POLICY", None)
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args], cwd=repo, capture_output=True, text=True, env=env, timeout=300
    )


def stage(repo: Path, files: list[tuple[str, str]], folder: str) -> None:
    for name, text in files:
        target = repo / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")


@pytest.mark.timeout(600)
async def test_completion_escalation_never_carries_a_planted_value(frontier, endless_model_path, tmp_path):
    workspace = tmp_path / "ws"
    write_policy(workspace, frontier.url, extra=EVERYTHING_OUT, trusted_in=tmp_path / "home")
    # A generous time box: on a busy machine a fragment cut by it is not shown, and nothing escalates.
    options = {"completion": {"max_tokens": 4, "cache_size": 0, "time_limit_ms": 30000}}
    async with lsp_session(model=endless_model_path, home=tmp_path / "home", root=workspace, options=options) as client:
        for index, (name, text, values) in enumerate(seeded_files()):
            lines = text.split("\n")
            # Complete right after each planted value, where the window surely holds it.
            rows = sorted({row for row, line in enumerate(lines) for value in values if value.split("\n")[0] in line})
            for row in rows[:3] or [0]:
                uri = open_document(client, workspace / "src" / f"{index}_{name}", text)
                await client.text_document_inline_completion_async(
                    types.InlineCompletionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        position=types.Position(row, len(lines[row])),
                        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
                    )
                )
        assert frontier.requests == [] and leaks(frontier) == []
        for index, (name, text) in enumerate(clean_files()):
            uri = open_document(client, workspace / "clean" / f"{index}_{name}", text)
            await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(3, 0),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
                )
            )
    assert len(frontier.requests) >= len(clean_files())  # clean code does escalate


def test_explain_chunks_and_commit_messages_keep_planted_values_home(frontier, repo, endless_model_path):
    seeded = [(name, text) for name, text, _ in seeded_files()]
    stage(repo, seeded, "seeded")
    explained = run_cli(repo, endless_model_path, "explain", "--staged", "--commit-message", "--json")
    assert explained.returncode == 0, explained.stderr
    data = json.loads(explained.stdout)
    # Each chunk is routed on its own: chunks with a planted value stay local, others may go out.
    assert data["decision"]["sensitivity"] == "sensitive" and "local" in data["usage"]["tiers"]
    assert leaks(frontier) == []
    message = repo / ".git" / "COMMIT_EDITMSG"
    message.write_text("")
    hooked = run_cli(repo, endless_model_path, "hook", "run", "prepare-commit-msg", str(message))
    assert hooked.returncode == 0, hooked.stderr
    assert message.read_text().strip()  # a message was written
    assert leaks(frontier) == []
    # The same commands on clean files do go out: the frontier is reachable and used.
    git(repo, "commit", "-qm", "seeded")
    stage(repo, clean_files(), "clean")
    before = len(frontier.requests)
    assert run_cli(repo, endless_model_path, "explain", "--staged").returncode == 0
    message.write_text("")  # `git commit -m` left its message there, which the hook would keep
    assert run_cli(repo, endless_model_path, "hook", "run", "prepare-commit-msg", str(message)).returncode == 0
    sent = [r.raw.decode("utf-8", "replace") for r in frontier.requests[before:]]
    assert any("Explain this change" in body for body in sent)
    assert any("Write the git commit message" in body for body in sent)
    assert leaks(frontier) == []


async def run_every_workspace_command(client, repo: Path, name: str, text: str) -> dict[str, dict]:
    """explainChange (with a working-tree change), explainSelection, refactor and ask on one file."""
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n# touched\n", encoding="utf-8")  # a working-tree change beside the content
    uri = open_document(client, path, text)
    lines = text.split("\n")
    everything = {"start": {"line": 0, "character": 0}, "end": {"line": len(lines) - 1, "character": len(lines[-1])}}
    target = {"textDocument": {"uri": uri}, "range": everything}
    return {
        "explainChange": await execute(client, "ninetyten.explainChange", {"textDocument": {"uri": uri}}),
        "explainSelection": await execute(client, "ninetyten.explainSelection", target),
        "refactorSelection": await execute(
            client, "ninetyten.refactorSelection", {**target, "instruction": "tidy", "apply": False}
        ),
        "ask": await execute(client, "ninetyten.ask", {**target, "question": "what is this?"}),
    }


def failures(results: dict[str, dict]) -> dict[str, dict]:
    """Commands that did not answer with text: an error, or nothing at all."""
    return {
        command: result
        for command, result in results.items()
        if not isinstance(result, dict) or result.get("error") or not (result.get("text") or result.get("explanation"))
    }


@pytest.mark.timeout(1500)  # four commands on every seeded and clean file, in two sessions
async def test_workspace_explain_refactor_and_ask_keep_planted_values_home(
    frontier, repo, endless_model_path, tmp_path
):
    stage(repo, [(name, text) for name, text, _ in seeded_files()], "seeded")
    git(repo, "commit", "-qm", "seeded")
    clean = clean_files()
    stage(repo, clean, "clean")
    git(repo, "commit", "-qm", "clean")
    whole_file = ("explainSelection", "refactorSelection", "ask")  # these carry the whole file
    async with lsp_session(
        model=endless_model_path,
        home=tmp_path / "home",
        root=repo,
        options={"completion": {"max_tokens": 4}, "assist": {"max_tokens": 8}},
    ) as client:
        for name, text, _ in seeded_files():
            results = await run_every_workspace_command(client, repo, f"seeded/{name}", text)
            assert failures(results) == {}, f"{name}: {failures(results)}"  # each command answered...
            assert {command: results[command]["tier"] for command in whole_file} == dict.fromkeys(whole_file, "local")
        whole_tree = await execute(client, "ninetyten.explainChange", {})
        assert not whole_tree.get("error") and whole_tree.get("explanation"), whole_tree
    # Diff chunks without a planted value (the "# touched" hunks) may go out; nothing planted may.
    assert leaks(frontier) == []

    # The same commands on clean files do go out: the frontier is reachable and used. Its
    # refactor hands the file back unchanged (room for it: a larger answer budget), which
    # passes the syntax check of any language.
    frontier.reply = lambda request: next(
        (
            text
            for _, text in clean
            if "tidy" in json.dumps(request.body)
            and json.dumps(distinctive_line(text))[1:-1] in request.raw.decode("utf-8", "replace")
        ),
        "It tidies the module.",
    )
    async with lsp_session(
        model=endless_model_path,
        home=tmp_path / "home",
        root=repo,
        options={"completion": {"max_tokens": 4}, "assist": {"max_tokens": 2048}},
    ) as client:
        for name, text in clean:
            before = len(frontier.requests)
            results = await run_every_workspace_command(client, repo, f"clean/{name}", text)
            assert failures(results) == {}, f"{name}: {failures(results)}"
            assert {command: results[command]["tier"] for command in whole_file} == dict.fromkeys(
                whole_file, "frontier"
            )
            sent = [request.raw.decode("utf-8", "replace") for request in frontier.requests[before:]]
            assert len(sent) >= len(whole_file)
            assert all(json.dumps(distinctive_line(text))[1:-1] in body for body in sent[-len(whole_file) :]), name
    assert leaks(frontier) == []
