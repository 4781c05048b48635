"""The embedded Gemma 3 270M through the real server: sensible text, and a cold start."""

from __future__ import annotations

import asyncio
import re

import pytest

from lsp_server.explain.commit_message import COMMIT_TYPES
from tests.lsp_session import inline, lsp_session, open_document, served_notifications

pytestmark = pytest.mark.gemma

SPECIAL = re.compile(r"<(start_of_turn|end_of_turn|eos|bos|pad|unk)>|<\|[a-z_]+\|>")


async def test_gemma_completes_trivial_code_sensibly(gemma_model_path, ninetyten_test_home, tmp_path):
    # No --model: the server resolves the embedded default from NINETYTEN_HOME.
    async with lsp_session(model=None, home=ninetyten_test_home) as client:
        assert any("gemma-3-270m" in m.message for m in client.log_messages)
        served = served_notifications(client)

        # Mid-line: only the rest of the line, and the ")" already there is not repeated.
        uri = open_document(client, tmp_path / "greet.py", 'def greet(name):\n    print("Hello, " + )\n')
        result = await inline(client, uri, 1, 21)
        text = result.items[0].insert_text
        assert text.strip() and "\n" not in text
        assert not SPECIAL.search(text)
        assert not text.rstrip().endswith(")")

        # End of a block opener: a body, indented, no blank line, nothing below the block.
        uri = open_document(client, tmp_path / "loop.py", "for i in range(10):\n    \n")
        result = await inline(client, uri, 1, 4)
        text = result.items[0].insert_text
        assert text.strip() and not SPECIAL.search(text)
        assert "\n\n" not in text
        for later in text.split("\n")[1:]:
            assert later.startswith("    ")
        assert "i" in text  # it uses the loop variable

        assert [s["tier"] for s in served] == ["local", "local"]
        assert all(s["model"] == "gemma-3-270m-q4_k_m.gguf" and s["prompt_mode"] == "prefix" for s in served)
        assert all(s["completion_tokens"] > 0 for s in served)


async def test_request_before_the_model_is_ready_waits_for_it(gemma_model_path, tmp_path):
    # A fresh home: the server first assembles the embedded model, then loads it, while
    # the request is already waiting.
    home = tmp_path / "fresh-home"
    # The time box is not this test's subject: on a busy machine it could eat the whole answer.
    options = {"completion": {"time_limit_ms": 60_000}}
    async with lsp_session(model=None, home=home, wait_ready=False, options=options) as client:
        served = served_notifications(client)
        uri = open_document(client, tmp_path / "add.py", "def add(a, b):\n    return \n")
        result = await asyncio.wait_for(inline(client, uri, 1, 11), 120)
        assert result.items and result.items[0].insert_text.strip()
        assert served[0]["waited_for_model_ms"] > 100
        assert (home / "models" / "gemma-3-270m-q4_k_m.gguf").is_file()


def test_gemma_explains_and_writes_a_commit_message(gemma_model_path, ninetyten_test_home, tmp_path):
    """The embedded base model continues a review document: a sentence, not the prompt echoed."""
    import json
    import os
    import subprocess
    import sys

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "d@e.f"], ["config", "user.name", "D"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "calc.py").write_text("def divide(a, b):\n    return a / b\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True)
    (repo / "calc.py").write_text(
        "def divide(a, b):\n    if b == 0:\n        raise ValueError('b is zero')\n    return a / b\n"
    )
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    env = {**os.environ, "NINETYTEN_HOME": str(ninetyten_test_home), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    env.pop("NINETYTEN_MODEL", None)
    out = subprocess.run(
        [sys.executable, "-m", "lsp_server", "explain", "--commit-message", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    explanation, message = data["explanation"], data["commit_message"]
    # The explanation ends with the change's facts (from the diff, not the model): judge the model's part.
    explanation, _, facts = explanation.partition("\n\nChanged (from the diff):\n")
    assert facts == "- calc.py: function divide changed: body changed"
    # The product cues the model with "It" and puts that word back: judge only what follows.
    written = explanation.removeprefix("It ")
    assert len(written.split()) >= 3 and not SPECIAL.search(explanation)
    assert "What the diff does" not in explanation and "Explain this change" not in explanation
    assert re.search(r"divi|zero|error|raise|check", written, re.I), explanation  # about this change
    # The repair code guarantees a "type: subject" line; the check against the facts keeps the
    # model's subject only when it names what changed and nothing else, else puts the facts' in.
    subject = message.split("\n")[0]
    prefix, _, words = subject.partition(": ")
    assert len(subject) <= 72 and prefix.split("(")[0] in COMMIT_TYPES and not SPECIAL.search(message)
    check = data["subject_check"]
    assert check["model_subject"] and not SPECIAL.search(check["model_subject"])
    if check["replaced"]:
        assert subject == "fix: change divide in calc.py", message
    else:
        assert subject.split(": ", 1)[1] == check["model_subject"].split(": ", 1)[1], message
        assert "divide" in subject and len(words.split()) >= 3, message
    # llama.cpp's own notes (e.g. about the sliding-window cache) go to logging, not the terminal.
    assert "llama_" not in out.stderr and "SWA" not in out.stderr, out.stderr
