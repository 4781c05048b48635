"""`models pull` in-process against a loopback server that speaks the Hugging Face download protocol.

Real huggingface_hub, real HTTP on 127.0.0.1, real files; the only things injected are the
free-space function (for the disk-space refusal) and offline mode (huggingface_hub reads
HF_HUB_OFFLINE once, at import: the CLI tests set the variable for real).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import local_models.catalog as catalog_mod
from local_models import ModelError, resolve_model
from local_models.paths import hub_cache_dir
from local_models.pull import DISK_MARGIN, PullTarget, parse_target, pull, remove
from local_models.pulled import all_records, find_intact, read_record
from tests import conftest_models as shared_fixtures
from tests.loopback_hub import LoopbackHub, loopback_hub

hub = pytest.fixture(loopback_hub)
tiny_model_path = shared_fixtures.tiny_model_path
download_model_path = shared_fixtures.download_model_path

REPO = "acme/Tiny-Coder-GGUF"
FILE = "tiny-coder-q8_0.gguf"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NINETYTEN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NINETYTEN_MODEL", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path / "home"


def leftovers(cache: Path) -> list[Path]:
    """Anything half-written in the hub cache."""
    return [p for p in cache.rglob("*") if p.name.endswith((".incomplete", ".partial", ".tmp"))]


def files_in(cache: Path) -> list[Path]:
    return [
        p
        for p in cache.rglob("*")
        if (p.is_file() or p.is_symlink()) and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"
    ]


def do_pull(hub: LoopbackHub, spec: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return pull(parse_target(spec), endpoint=hub.endpoint, progress=False, report=lambda _line: None, **kwargs)  # type: ignore[arg-type]


def test_pull_verifies_records_and_resolves(hub: LoopbackHub, home: Path, tiny_model_path: Path) -> None:
    content = tiny_model_path.read_bytes()
    commit = hub.add_file(REPO, FILE, content)
    result = do_pull(hub, f"{REPO}:{FILE}")
    record = result.record
    assert result.downloaded
    assert record.sha256 == hashlib.sha256(content).hexdigest() and record.verified_against == "hub"
    assert record.commit == commit and record.size == len(content)
    # huggingface_hub's cache layout: the snapshot entry points at the content-addressed blob.
    cache = hub_cache_dir()
    assert record.path == cache / "models--acme--Tiny-Coder-GGUF" / "snapshots" / commit / FILE
    assert record.blob == cache / "models--acme--Tiny-Coder-GGUF" / "blobs" / record.sha256
    assert record.path.read_bytes() == content and leftovers(cache) == []
    # The body came from the CDN origin; the metadata from the hub's redirect (HEAD).
    assert len(hub.cdn_gets()) == 1
    assert [r.status for r in hub.requests if r.method == "HEAD"] == [302, 302]
    resolved = resolve_model(f"{REPO}:{FILE}")
    assert (resolved.path, resolved.source) == (record.path, "pulled")
    assert resolve_model(str(record.path)).path == record.path  # the path keeps the model's name
    # Pulling again downloads nothing: the hub still publishes the same digest.
    again = do_pull(hub, f"{REPO}:{FILE}")
    assert not again.downloaded and again.record == record
    assert len(hub.cdn_gets()) == 1


def test_resume_after_the_connection_is_cut_half_way(hub: LoopbackHub, home: Path, download_model_path: Path) -> None:
    content = download_model_path.read_bytes()
    half = len(content) // 2
    assert half > 10 * 1024 * 1024  # more than one of huggingface_hub's download chunks
    hub.add_file(REPO, FILE, content, cut_after=half, cuts=1)
    result = do_pull(hub, f"{REPO}:{FILE}")
    assert result.record.path.read_bytes() == content
    first, second = hub.cdn_gets()
    assert first.status == 200 and "range" not in first.headers
    # The second request asks only for what is missing (from the last whole chunk received).
    assert second.status == 206 and second.headers["range"].startswith("bytes=")
    resumed_from = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= half
    assert leftovers(hub_cache_dir()) == []


def test_digest_mismatch_is_refused_and_nothing_is_left(hub: LoopbackHub, home: Path, tiny_model_path: Path) -> None:
    content = tiny_model_path.read_bytes()
    lie = hashlib.sha256(b"another file").hexdigest()
    hub.add_file(REPO, FILE, content, advertise_sha256=lie)
    with pytest.raises(ModelError) as info:
        do_pull(hub, f"{REPO}:{FILE}")
    message = str(info.value)
    assert lie in message and hashlib.sha256(content).hexdigest() in message and "nothing was kept" in message
    assert len(hub.cdn_gets()) == 1  # it was downloaded, then refused
    assert files_in(hub_cache_dir()) == [] and all_records() == []
    with pytest.raises(ModelError, match="not pulled"):
        resolve_model(f"{REPO}:{FILE}")


def test_catalog_digest_that_differs_from_the_hub_is_refused_before_downloading(
    hub: LoopbackHub, home: Path, tiny_model_path: Path
) -> None:
    target = parse_target("qwen2.5-coder-1.5b")
    assert target.sha256 is not None and target.revision != "main"  # the catalog pins both
    hub.add_file(target.repo, target.file, tiny_model_path.read_bytes(), revision=target.revision)
    with pytest.raises(ModelError) as info:
        pull(target, endpoint=hub.endpoint, progress=False)
    assert "different" in str(info.value) and target.sha256 in str(info.value)
    assert "Nothing was downloaded" in str(info.value)
    assert hub.cdn_gets() == [] and files_in(hub_cache_dir()) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (f"{REPO}:missing.gguf", "has no file missing.gguf"),
        ("acme/NoSuchRepo:x.gguf", "has no repository acme/NoSuchRepo"),
    ],
)
def test_not_found_is_a_clear_error(
    hub: LoopbackHub, home: Path, tiny_model_path: Path, spec: str, expected: str
) -> None:
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    with pytest.raises(ModelError) as info:
        do_pull(hub, spec)
    assert expected in str(info.value)
    statuses = {r.status for r in hub.requests if r.method == "HEAD"}
    assert statuses <= {401, 404} and hub.cdn_gets() == []


def test_unknown_revision(hub: LoopbackHub, home: Path, tiny_model_path: Path) -> None:
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    with pytest.raises(ModelError, match="has no revision 'v9'"):
        pull(parse_target(f"{REPO}:{FILE}", revision="v9"), endpoint=hub.endpoint, progress=False)


def test_disk_space_is_checked_before_downloading(hub: LoopbackHub, home: Path, tiny_model_path: Path) -> None:
    content = tiny_model_path.read_bytes()
    hub.add_file(REPO, FILE, content)
    asked: list[Path] = []

    def too_little(path: Path) -> int:
        asked.append(path)
        return len(content) + DISK_MARGIN - 1

    with pytest.raises(ModelError) as info:
        do_pull(hub, f"{REPO}:{FILE}", free_bytes=too_little)
    assert "Not enough disk space" in str(info.value) and "Nothing was downloaded" in str(info.value)
    assert asked == [hub_cache_dir()]
    assert hub.cdn_gets() == [] and files_in(hub_cache_dir()) == []
    # Exactly enough is enough.
    assert do_pull(hub, f"{REPO}:{FILE}", free_bytes=lambda _p: len(content) + DISK_MARGIN).downloaded


def test_offline_mode(hub: LoopbackHub, home: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError) as info:
        do_pull(hub, f"{REPO}:{FILE}")
    assert "Offline mode is on (HF_HUB_OFFLINE)" in str(info.value)
    assert hub.requests == []  # not one request
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    pulled = do_pull(hub, f"{REPO}:{FILE}").record
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    count = len(hub.requests)
    again = do_pull(hub, f"{REPO}:{FILE}")
    assert not again.downloaded and again.record.path == pulled.path and len(hub.requests) == count


def test_offline_mode_adopts_a_file_already_in_the_hub_cache(
    hub: LoopbackHub, home: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file another tool put in the Hugging Face cache is verified and recorded without the network."""
    from huggingface_hub import constants, hf_hub_download

    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    hf_hub_download(REPO, FILE, cache_dir=str(hub_cache_dir()), endpoint=hub.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = do_pull(hub, f"{REPO}:{FILE}")
    assert not result.downloaded and result.record.verified_against == "hub"
    assert find_intact(REPO, FILE) == result.record


def test_gated_repo_needs_the_token_and_the_cdn_never_sees_it(
    hub: LoopbackHub, home: Path, tiny_model_path: Path
) -> None:
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes(), gated_token="hf_secret")
    with pytest.raises(ModelError, match="is gated"):
        do_pull(hub, f"{REPO}:{FILE}")
    assert do_pull(hub, f"{REPO}:{FILE}", token="hf_secret").downloaded
    hub_heads = [r for r in hub.requests if r.origin == "hub" and r.status == 302]
    assert hub_heads and all(r.headers.get("authorization") == "Bearer hf_secret" for r in hub_heads)
    assert all("authorization" not in r.headers for r in hub.cdn_gets())


def test_changed_file_is_not_loaded_by_id_and_rm_frees_it(hub: LoopbackHub, home: Path, tiny_model_path: Path) -> None:
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    record = do_pull(hub, f"{REPO}:{FILE}").record
    with open(record.blob, "ab") as blob:
        blob.write(b"tampered")
    assert find_intact(REPO, FILE) is None
    with pytest.raises(ModelError, match="changed since it was verified"):
        resolve_model(f"{REPO}:{FILE}")
    stale = read_record(REPO, FILE)
    assert stale is not None
    freed = remove(stale)
    assert freed == len(tiny_model_path.read_bytes()) + len(b"tampered")
    assert files_in(hub_cache_dir()) == [] and read_record(REPO, FILE) is None


@pytest.fixture
def tiny_catalog(monkeypatch: pytest.MonkeyPatch, tiny_model_path: Path) -> Iterator[str]:
    """The built-in catalog plus an entry for the tiny model, with its real digest."""
    digest = hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    extra = f'''
[models."tiny-coder"]
name = "Tiny coder (tests)"
family = "qwen2.5-coder"
params = "1M"
params_b = 0.001
roles = ["fim"]
fim = "qwen"
context_length = 4096
arch = {{ layers = 2, kv_heads = 2, head_dim = 16 }}
license = "Apache-2.0"
rank = 1

[[models."tiny-coder".files]]
quant = "q8_0"
repo = "{REPO}"
file = "{FILE}"
size = {tiny_model_path.stat().st_size}
sha256 = "{digest}"
'''
    text = catalog_mod._read_catalog_text() + extra
    monkeypatch.setattr(catalog_mod, "_read_catalog_text", lambda: text)
    catalog_mod._loaded.cache_clear()
    yield "tiny-coder"
    catalog_mod._loaded.cache_clear()


def test_pull_by_catalog_id_is_verified_against_the_catalog_and_resolves_by_id(
    hub: LoopbackHub, home: Path, tiny_model_path: Path, tiny_catalog: str
) -> None:
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    result = do_pull(hub, tiny_catalog)
    assert result.record.verified_against == "catalog" and result.record.model_id == tiny_catalog
    resolved = resolve_model(tiny_catalog)
    assert (resolved.path, resolved.source, resolved.model_id) == (result.record.path, "catalog", tiny_catalog)
    assert resolved.entry is not None and resolved.entry.fim_template is not None
    # A catalog digest that matches means a second pull asks nothing of the network.
    count = len(hub.requests)
    assert not do_pull(hub, tiny_catalog).downloaded and len(hub.requests) == count


def test_parse_target() -> None:
    target = parse_target("qwen2.5-coder-1.5b")
    assert (target.repo, target.file, target.quant) == (
        "ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF",
        "qwen2.5-coder-1.5b-q8_0.gguf",
        "q8_0",
    )
    assert target.sha256 == "29871c94d15727a6e243f79a37113d4ae625a6215b5e800bf41a23af2da32832"
    assert target.revision == "8be1b8a895a84beea772817caaa71eba6b6e0d07"
    assert parse_target("Qwen2.5-Coder-1.5B:q4_k_m").repo == "mradermacher/Qwen2.5-Coder-1.5B-GGUF"
    # REPO:FILE of a catalog file gets the catalog's digest; another revision drops it.
    same = parse_target("ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF:qwen2.5-coder-1.5b-q8_0.gguf")
    assert (same.model_id, same.sha256) == ("qwen2.5-coder-1.5b", target.sha256)
    moved = parse_target("ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF:qwen2.5-coder-1.5b-q8_0.gguf", revision="main")
    assert (moved.revision, moved.sha256) == ("main", None)
    other = parse_target("someone/Else-GGUF:model.gguf")
    assert other == PullTarget(repo="someone/Else-GGUF", file="model.gguf", revision="main")
    for bad, words in [
        ("gemma-3-270m", "nothing to pull"),
        ("qwen2.5-coder-1.5b:q2_k", "no 'q2_k' file"),
        ("someone/Else-GGUF", "Which file"),
        ("someone/Else-GGUF:README.md", "not a .gguf"),
        ("no such thing", "neither a catalog id"),
        ("someone/x:../../etc/passwd.gguf", "not a .gguf"),
    ]:
        with pytest.raises(ModelError, match=words):
            parse_target(bad)


def test_records_survive_other_processes_view(hub: LoopbackHub, home: Path, tiny_model_path: Path) -> None:
    """The record is plain JSON next to the models, readable by any process (the server reads it)."""
    hub.add_file(REPO, FILE, tiny_model_path.read_bytes())
    record = do_pull(hub, f"{REPO}:{FILE}").record
    raw = (home / "models" / "pulled" / "acme--tiny-coder-gguf--tiny-coder-q8_0.gguf.json").read_text()
    assert record.sha256 in raw and os.fspath(record.path) in raw


def test_progress_bar_counts_every_byte(
    hub: LoopbackHub,
    home: Path,
    download_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """huggingface_hub drives our bar (its tqdm_class), including across a resumed transfer."""
    from local_models import _progress

    seen: list[_progress.ByteBar] = []
    original_init = _progress.ByteBar.__init__

    def remember(self: _progress.ByteBar, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.append(self)

    monkeypatch.setattr(_progress.ByteBar, "__init__", remember)
    monkeypatch.setenv("NINETYTEN_PROGRESS", "1")  # a live bar although stderr is not a terminal
    content = download_model_path.read_bytes()
    hub.add_file(REPO, FILE, content, cut_after=len(content) // 2, cuts=1)
    pull(parse_target(f"{REPO}:{FILE}"), endpoint=hub.endpoint, progress=True)
    download, verify = seen[0], seen[-1]
    assert download.total == len(content) and download.n == len(content)
    assert verify.total == len(content) and verify.n == len(content)
    err = capfd.readouterr().err
    assert f"pulling {REPO}:{FILE}" in err and "verifying" in err
