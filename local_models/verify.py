"""Checking that a file is a usable GGUF model (cheap header check, optional SHA-256)."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from local_models._progress import byte_progress
from local_models.errors import ModelError

GGUF_MAGIC = b"GGUF"
# magic(4) + version(u32) + tensor_count(u64) + kv_count(u64)
_HEADER = struct.Struct("<4sIQQ")
_SUPPORTED_VERSIONS = frozenset({2, 3})
_CHUNK = 4 * 1024 * 1024

_REDOWNLOAD = "Re-download it, or run `ninetyten models verify` to check your model files."


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    size: int
    gguf_version: int
    tensor_count: int
    kv_count: int
    sha256: str | None = None  # computed only when an expected digest was given
    expected_sha256: str | None = None

    @property
    def sha256_checked(self) -> bool:
        return self.expected_sha256 is not None


def sha256_file(path: Path | str, progress: bool = False) -> str:
    path = Path(path)
    digest = hashlib.sha256()
    try:
        size = path.stat().st_size
        with byte_progress(f"verifying {path.name}", size, progress=progress) as advance, path.open("rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
                advance(len(block))
    except OSError as exc:
        raise ModelError(f"Cannot read model file {path}: {exc.strerror or exc}.", _REDOWNLOAD) from exc
    return digest.hexdigest()


def check_gguf_header(path: Path | str) -> tuple[int, int, int]:
    """Raise ModelError unless `path` is a readable regular file with a GGUF header.

    Returns (version, tensor_count, kv_count). Reads 24 bytes: fast enough for every start-up.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(
            f"Model file {path} does not exist.",
            "Pass --model PATH to an existing .gguf, set NINETYTEN_MODEL, or run `ninetyten models list`.",
        ) from None
    except OSError as exc:
        raise ModelError(
            f"Cannot access model file {path}: {exc.strerror or exc}.", "Check the path and its permissions."
        ) from exc
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(
            f"Model path {path} is not a regular file.", "Pass --model PATH pointing at a .gguf file, not a directory."
        )
    try:
        with path.open("rb") as f:
            header = f.read(_HEADER.size)
    except OSError as exc:
        raise ModelError(
            f"Cannot read model file {path}: {exc.strerror or exc}.", "Check the file's permissions."
        ) from exc
    if len(header) < 4 or header[:4] != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (bad magic).", _REDOWNLOAD)
    if len(header) < _HEADER.size:
        raise ModelError(f"{path} is truncated (incomplete GGUF header).", _REDOWNLOAD)
    _magic, version, n_tensors, n_kv = _HEADER.unpack(header)
    if version not in _SUPPORTED_VERSIONS:
        raise ModelError(
            f"{path} uses GGUF version {version}, which this build cannot read.",
            "Upgrade llama-cpp-python or use a file converted with a recent llama.cpp.",
        )
    return version, n_tensors, n_kv


def verify_model(path: Path | str, expected_sha256: str | None, *, progress: bool = False) -> VerifyResult:
    """Header check always; full SHA-256 comparison when `expected_sha256` is given."""
    path = Path(path)
    version, n_tensors, n_kv = check_gguf_header(path)
    actual: str | None = None
    if expected_sha256 is not None:
        actual = sha256_file(path, progress=progress)
        if actual != expected_sha256.lower():
            raise ModelError(
                f"{path} is corrupt: its SHA-256 is {actual}, expected {expected_sha256.lower()}.",
                "Delete it and download it again "
                "(for the embedded model just delete it; it is re-assembled on next start).",
            )
    return VerifyResult(
        path=path,
        size=os.stat(path).st_size,
        gguf_version=version,
        tensor_count=n_tensors,
        kv_count=n_kv,
        sha256=actual,
        expected_sha256=expected_sha256.lower() if expected_sha256 else None,
    )
