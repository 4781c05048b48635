"""The `ninetyten` command, run as a user would (subprocesses, real models)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient


def run(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "NINETYTEN_HOME": str(home), **(env or {})}
    full_env.pop("NINETYTEN_MODEL", None) if "NINETYTEN_MODEL" not in (env or {}) else None
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


# Exact answers need the token limit to end the generation, never the time box of a busy machine.
NO_TIME_BOX = json.dumps({"completion": {"time_limit_ms": 60_000}})


def test_version_and_help(tmp_path):
    version = run("--version", home=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("ninetyten ")
    help_text = run("--help", home=tmp_path).stdout
    for command in ("serve", "complete", "models", "doctor"):
        assert command in help_text
    bare = run(home=tmp_path)
    assert bare.returncode == 2 and "usage" in bare.stdout


def test_complete_prints_the_completion(endless_model_path, tmp_path):
    source = tmp_path / "a.py"
    source.write_text("total = \nprint(total)\n", encoding="utf-8")
    result = run(
        "complete",
        f"{source}:1:9",
        "--model",
        str(endless_model_path),
        "--max-tokens",
        "5",
        "--config",
        NO_TIME_BOX,
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "xxxxx\n"
    assert "local" in result.stderr and "5 completion tokens" in result.stderr


def test_complete_json(endless_model_path, tmp_path):
    source = tmp_path / "b.py"
    source.write_text('s = "é" + xx\n', encoding="utf-8")
    # Column 11 (1-based, in characters) is just before "xx": the overlap is trimmed.
    result = run(
        "complete",
        f"{source}:1:11",
        "--json",
        "--max-tokens",
        "4",
        "--config",
        NO_TIME_BOX,
        home=tmp_path,
        env={"NINETYTEN_MODEL": str(endless_model_path)},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["text"] == "xx"
    assert data["tier"] == "local" and data["completion_tokens"] == 4
    assert data["model"] == endless_model_path.name


def test_complete_waits_for_the_answer_unless_given_a_time_box(endless_model_path, tmp_path):
    source = tmp_path / "w.py"
    source.write_text("".join(f"value_{i} = {i}\n" for i in range(200)) + "total = \n", encoding="utf-8")
    common = ("--json", "--max-tokens", "3000", "--config", json.dumps({"n_ctx": 8192}))
    model = {"NINETYTEN_MODEL": str(endless_model_path)}
    # 3,000 tokens take longer than an editor's two-second box: only a terminal that waits gets them all.
    waited = run("complete", f"{source}:201:9", *common, home=tmp_path, env=model, timeout=600)
    assert waited.returncode == 0, waited.stderr
    data = json.loads(waited.stdout)
    assert data["stop_reason"] == "max_tokens" and data["completion_tokens"] == 3000
    boxed = run("complete", f"{source}:201:9", *common, "--time-limit-ms", "10", home=tmp_path, env=model)
    assert json.loads(boxed.stdout)["stop_reason"] == "time_limit"


@pytest.mark.parametrize("location", ["nofile", "a.py:0:1", "a.py:x:1", "a.py:1"])
def test_complete_rejects_bad_locations(location, tmp_path):
    result = run("complete", location, home=tmp_path)
    assert result.returncode == 2
    assert "FILE:LINE:COL" in result.stderr or "start at 1" in result.stderr


def test_complete_missing_model_is_a_clear_error(tmp_path):
    source = tmp_path / "c.py"
    source.write_text("x = 1\n", encoding="utf-8")
    result = run("complete", f"{source}:1:1", "--model", str(tmp_path / "missing.gguf"), home=tmp_path)
    assert result.returncode == 1
    assert "missing.gguf" in result.stderr and "Traceback" not in result.stderr


def test_models_list(tmp_path):
    result = run("models", "list", home=tmp_path)
    assert result.returncode == 0
    for model_id in ("qwen2.5-coder-1.5b", "qwen2.5-coder-32b", "qwen3-coder-30b-a3b", "gemma-3-270m"):
        assert model_id in result.stdout


@pytest.mark.gemma
def test_models_path_and_verify_embedded(gemma_model_path, ninetyten_test_home):
    path = run("models", "path", home=ninetyten_test_home)
    assert path.returncode == 0 and Path(path.stdout.strip()) == gemma_model_path
    verify = run("models", "verify", home=ninetyten_test_home)
    assert verify.returncode == 0 and "SHA-256 matches" in verify.stdout


def test_models_verify_corrupt_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 10)
    result = run("models", "verify", str(bad), home=tmp_path)
    assert result.returncode == 1
    assert "bad.gguf" in result.stderr and "GGUF" in result.stderr


def test_doctor(endless_model_path, tmp_path):
    result = run("doctor", home=tmp_path, env={"NINETYTEN_MODEL": str(endless_model_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "llama-cpp-python 0.3." in result.stdout
    assert str(endless_model_path) in result.stdout
    assert "status         ok" in result.stdout
    # The self-test ran the build on the tiny quantized model and on the configured one.
    assert "self-test      ok (2 model(s)" in result.stdout and "gpu offload    " in result.stdout
    assert "  model: 8 tokens at " in result.stdout
    broken = run("doctor", home=tmp_path, env={"NINETYTEN_MODEL": str(tmp_path / "gone.gguf")})
    assert broken.returncode == 1 and "PROBLEM" in broken.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_serve_over_tcp(endless_model_path, tmp_path):
    port = _free_port()
    env = {**os.environ, "NINETYTEN_HOME": str(tmp_path)}
    token = "t" * 40
    token_file = tmp_path / "tcp-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lsp_server",
            "serve",
            "--tcp",
            f"127.0.0.1:{port}",
            "--token-file",
            str(token_file),
            "--model",
            str(endless_model_path),
            "--config",
            '{"completion": {"max_tokens": 3}}',
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = LanguageClient("tcp-test", "1")
        deadline = time.monotonic() + 30
        while True:
            try:
                await client.start_tcp("127.0.0.1", port)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not listen"
                await asyncio.sleep(0.1)
        await client.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options={"authToken": token})
        )
        client.initialized(types.InitializedParams())
        uri = (tmp_path / "t.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text="v = \n")
            )
        )
        result = await asyncio.wait_for(
            client.text_document_completion_async(
                types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(0, 4))
            ),
            60,
        )
        assert result.items[0].text_edit.new_text == "xxx"
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    finally:
        process.kill()
        process.wait()
