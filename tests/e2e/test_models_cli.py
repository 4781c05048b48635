"""`ninetyten models pull|list|rm|path|recommend` run as a user would, against a loopback hub.

Each command is a real subprocess with HF_ENDPOINT pointing at tests/loopback_hub.py, so
huggingface_hub reads its environment variables (HF_ENDPOINT, HF_HUB_OFFLINE, HTTP_PROXY)
the way it does for a user.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest_engine import engine_env
from tests.loopback_hub import LoopbackHub, loopback_hub

hub = pytest.fixture(loopback_hub)

REPO = "acme/Tiny-Coder-GGUF"
FILE = "tiny-coder-q8_0.gguf"
_PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


def command_env(home: Path, hub: LoopbackHub | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS and not k.startswith(("HF_", "NINETYTEN_"))}
    env.update({"NINETYTEN_HOME": str(home), "HF_HOME": str(home / "hf-home"), **engine_env()})
    if hub is not None:
        env["HF_ENDPOINT"] = hub.endpoint
    env.update(extra or {})
    return env


def ninetyten(
    *args: str, home: Path, hub: LoopbackHub | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        capture_output=True,
        text=True,
        env=command_env(home, hub, env),
        timeout=timeout,
    )


def cache_files(home: Path) -> list[Path]:
    cache = home / "models" / "hub"
    if not cache.exists():
        return []
    return [
        p
        for p in cache.rglob("*")
        if (p.is_file() or p.is_symlink()) and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"
    ]


def test_pull_then_use_list_and_remove(hub: LoopbackHub, endless_model_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    content = endless_model_path.read_bytes()
    hub.add_file(REPO, FILE, content)
    pulled = ninetyten("models", "pull", f"{REPO}:{FILE}", home=home, hub=hub)
    assert pulled.returncode == 0, pulled.stderr
    assert f"pulled {REPO}:{FILE}" in pulled.stdout and "SHA-256 verified against the hub" in pulled.stdout
    assert "Traceback" not in pulled.stderr

    # The server side loads it by REPO:FILE: a real llama.cpp completion from the pulled file.
    source = tmp_path / "a.py"
    source.write_text("total = \nprint(total)\n", encoding="utf-8")
    completed = ninetyten(
        "complete",
        f"{source}:1:9",
        "--model",
        f"{REPO}:{FILE}",
        "--max-tokens",
        "5",
        "--config",
        '{"completion": {"time_limit_ms": 60000}}',
        home=home,
        hub=hub,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "xxxxx\n"

    listed = ninetyten("models", "list", home=home, hub=hub)
    assert listed.returncode == 0
    pulled_rows = listed.stdout.split("\n\n", 1)[1]
    assert f"{REPO}:{FILE}" in pulled_rows and "hub" in pulled_rows
    as_json = json.loads(ninetyten("models", "list", "--json", home=home, hub=hub).stdout)
    assert as_json["pulled"][0]["size"] == len(content) and as_json["pulled_bytes"] == len(content)

    removed = ninetyten("models", "rm", f"{REPO}:{FILE}", home=home, hub=hub)
    assert removed.returncode == 0, removed.stderr
    assert "freed" in removed.stdout and cache_files(home) == []
    gone = ninetyten("complete", f"{source}:1:9", "--model", f"{REPO}:{FILE}", home=home, hub=hub)
    assert gone.returncode == 1 and "not pulled" in gone.stderr
    again = ninetyten("models", "rm", f"{REPO}:{FILE}", home=home, hub=hub)
    assert again.returncode == 1 and "Nothing to remove" in again.stderr


def test_catalog_id_refused_when_the_hub_differs_then_found_by_id(
    hub: LoopbackHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    repo, file_name = "ggml-org/Qwen2.5-Coder-0.5B-Q8_0-GGUF", "qwen2.5-coder-0.5b-q8_0.gguf"
    hub.add_file(repo, file_name, tiny_model_path.read_bytes())
    refused = ninetyten("models", "pull", "qwen2.5-coder-0.5b", "--no-progress", home=home, hub=hub)
    assert refused.returncode == 1
    assert "different" in refused.stderr and "Nothing was downloaded" in refused.stderr
    assert hub.cdn_gets() == [] and cache_files(home) == []
    # Taking the hub's current file explicitly: checked against the hub's digest instead.
    taken = ninetyten("models", "pull", f"{repo}:{file_name}", "--revision", "main", home=home, hub=hub)
    assert taken.returncode == 0, taken.stderr
    path = ninetyten("models", "path", "qwen2.5-coder-0.5b", home=home, hub=hub)
    assert path.returncode == 0, path.stderr
    assert path.stdout.strip().endswith(f"/snapshots/{hub.repos[repo].commits['main']}/{file_name}")
    # rm refuses files it does not manage, and removes a model by id.
    outsider = tmp_path / "mine.gguf"
    outsider.write_bytes(tiny_model_path.read_bytes())
    refused_rm = ninetyten("models", "rm", str(outsider), home=home, hub=hub)
    assert refused_rm.returncode == 1 and "not a model ninetyten pulled" in refused_rm.stderr and outsider.exists()
    removed = ninetyten("models", "rm", "qwen2.5-coder-0.5b", home=home, hub=hub)
    assert removed.returncode == 0, removed.stderr
    assert f"freed {tiny_model_path.stat().st_size / 1000:.0f} KB" in removed.stdout
    assert cache_files(home) == []
    unresolved = ninetyten("models", "path", "qwen2.5-coder-0.5b", home=home, hub=hub)
    assert unresolved.returncode == 1 and "ninetyten models pull qwen2.5-coder-0.5b" in unresolved.stderr


def test_not_found_and_offline_are_clear(hub: LoopbackHub, tiny_model_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    missing = ninetyten("models", "pull", f"{REPO}:nope.gguf", home=home, hub=hub)
    assert missing.returncode == 1 and f"{REPO} has no file nope.gguf at main" in missing.stderr
    assert "Traceback" not in missing.stderr
    count = len(hub.requests)
    offline = ninetyten("models", "pull", f"{REPO}:{FILE}", home=home, hub=hub, env={"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 1
    assert "Offline mode is on (HF_HUB_OFFLINE)" in offline.stderr and "Traceback" not in offline.stderr
    assert len(hub.requests) == count  # nothing was asked of the network


def test_unreachable_hub(tmp_path: Path) -> None:
    from tests.loopback_provider import unused_port

    result = ninetyten(
        "models",
        "pull",
        f"{REPO}:{FILE}",
        home=tmp_path / "home",
        hub=None,
        env={"HF_ENDPOINT": f"http://127.0.0.1:{unused_port()}"},
    )
    assert result.returncode == 1 and "Cannot reach http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_concurrent_pulls_of_the_same_file(hub: LoopbackHub, tiny_model_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    content = tiny_model_path.read_bytes()
    # A slow link (about 3 s for the file), so the second process arrives mid-download.
    hub.add_file(REPO, FILE, content, chunk_size=64 * 1024, chunk_delay_s=0.3)
    env = command_env(home, hub)
    argv = [sys.executable, "-m", "lsp_server", "models", "pull", f"{REPO}:{FILE}"]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not hub.cdn_gets() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert hub.cdn_gets(), "the first pull never started downloading"
        second = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out2, err2 = second.communicate(timeout=120)
        out1, err1 = first.communicate(timeout=120)
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "pulled" in out1 and "already pulled" in out2
    assert "another pull of" in err2 and "waiting" in err2
    assert len(hub.cdn_gets()) == 1  # one transfer, not two
    snapshot = [p for p in cache_files(home) if p.is_symlink()]
    assert len(snapshot) == 1 and snapshot[0].read_bytes() == content
    assert not [p for p in (home / "models").rglob("*") if p.name.endswith((".incomplete", ".tmp"))]


def test_pull_through_a_proxy(hub: LoopbackHub, tiny_model_path: Path, tmp_path: Path) -> None:
    """HTTP_PROXY is honoured: the hub's host does not even resolve, only the proxy can reach it."""
    home = tmp_path / "home"
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    hub.cdn_base = "http://cdn.invalid"
    result = ninetyten(
        "models",
        "pull",
        f"{REPO}:{FILE}",
        home=home,
        hub=None,
        env={"HF_ENDPOINT": "http://hub.invalid", "HTTP_PROXY": hub.proxy_url, "NO_PROXY": ""},
    )
    assert result.returncode == 0, result.stderr
    assert hub.requests and all(r.via_proxy for r in hub.requests)
    assert len(hub.cdn_gets()) == 1


def test_hf_token_opens_a_gated_repo_and_stays_on_the_hub(
    hub: LoopbackHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes(), gated_token="hf_loopback_token")
    refused = ninetyten("models", "pull", f"{REPO}:{FILE}", home=home, hub=hub)
    assert refused.returncode == 1 and "is gated" in refused.stderr and "HF_TOKEN" in refused.stderr
    allowed = ninetyten("models", "pull", f"{REPO}:{FILE}", home=home, hub=hub, env={"HF_TOKEN": "hf_loopback_token"})
    assert allowed.returncode == 0, allowed.stderr
    assert "hf_loopback_token" not in allowed.stdout + allowed.stderr
    assert all("authorization" not in r.headers for r in hub.cdn_gets())


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_space_refusal_on_a_small_filesystem(hub: LoopbackHub, tiny_model_path: Path, tmp_path: Path) -> None:
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    with tiny_filesystem(tmp_path / "small", "64m") as small:
        result = ninetyten("models", "pull", f"{REPO}:{FILE}", home=small, hub=hub)
        assert result.returncode == 1
        assert "Not enough disk space" in result.stderr and "Nothing was downloaded" in result.stderr
        assert hub.cdn_gets() == [] and cache_files(small) == []


def test_recommend_on_a_described_machine(tmp_path: Path) -> None:
    home = tmp_path / "home"
    text = ninetyten("models", "recommend", "--machine", "ram=16G,cores=8,gpu_mem=0", home=home)
    assert text.returncode == 0, text.stderr
    assert "completion  qwen2.5-coder-1.5b (Q8_0, 1.6 GB download)" in text.stdout
    assert "chat        qwen2.5-coder-1.5b-instruct" in text.stdout
    assert "pull them   ninetyten models pull qwen2.5-coder-1.5b qwen2.5-coder-1.5b-instruct" in text.stdout
    data = json.loads(ninetyten("models", "recommend", "--json", "--machine", "ram=8G,cores=4", home=home).stdout)
    assert data["completion"]["model_id"] == "qwen2.5-coder-0.5b" and data["machine"]["source"] == "described"
    assert data["command"] == "ninetyten models pull qwen2.5-coder-0.5b qwen2.5-coder-0.5b-instruct"
    bad = ninetyten("models", "recommend", "--machine", "cores=8", home=home)
    assert bad.returncode == 1 and "needs at least ram= and cores=" in bad.stderr
    detected = ninetyten("models", "recommend", home=home)
    assert detected.returncode == 0 and "(detected)" in detected.stdout


@pytest.mark.gemma
def test_doctor_recommends_when_the_embedded_model_is_in_use(gemma_model_path: Path, ninetyten_test_home: Path) -> None:
    embedded = ninetyten("doctor", home=ninetyten_test_home)
    assert embedded.returncode == 0, embedded.stdout + embedded.stderr
    assert "recommended" in embedded.stdout and "completion  " in embedded.stdout
    assert "ninetyten models pull" in embedded.stdout or "keep the built-in model" in embedded.stdout


def test_doctor_is_quiet_about_models_when_one_is_chosen(endless_model_path: Path, tmp_path: Path) -> None:
    chosen = ninetyten("doctor", home=tmp_path / "home", env={"NINETYTEN_MODEL": str(endless_model_path)})
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "recommended" not in chosen.stdout
