"""What `ninetyten models pull` has fetched and verified: one record per file.

The files themselves live in a Hugging Face hub cache (see `paths.hub_cache_dir`); the
records live in ninetyten's models directory. A file counts as pulled only while its record
exists and the file still has the size and modification time it had when its SHA-256 was
checked, so a file that is truncated, replaced or half-written is never loaded by id.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from local_models.errors import ModelError
from local_models.paths import pulled_records_dir

_RECORD_VERSION = 1


class PulledFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int = _RECORD_VERSION
    repo: str
    file: str
    revision: str  # what was asked for: a branch, a tag or a commit
    commit: str  # what it resolved to
    sha256: str
    size: int
    path: Path  # the snapshot entry in the hub cache: what the server loads
    blob: Path  # the content-addressed file it points at (the same file without symlinks)
    mtime_ns: int
    verified_against: Literal["catalog", "hub"]
    model_id: str | None = None
    quant: str | None = None
    pulled_at: datetime

    @property
    def spec(self) -> str:
        return f"{self.repo}:{self.file}"

    def intact(self) -> bool:
        """Still the verified file? A stat, not a re-hash: cheap enough for every start-up."""
        try:
            st = os.stat(self.path)  # follows the snapshot symlink
        except OSError:
            return False
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns


def _record_name(repo: str, file_name: str) -> str:
    return f"{repo.lower().replace('/', '--')}--{file_name.replace('/', '--')}.json"


def record_path(repo: str, file_name: str) -> Path:
    return pulled_records_dir() / _record_name(repo, file_name)


def write_record(record: PulledFile) -> None:
    # Atomic: a concurrent reader sees the old record or the new one, never half of one.
    target = record_path(record.repo, record.file)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".record-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(record.model_dump_json(indent=2))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> PulledFile | None:
    try:
        return PulledFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None  # unreadable or foreign: treated as not pulled


def read_record(repo: str, file_name: str) -> PulledFile | None:
    return _read(record_path(repo, file_name))


def all_records() -> list[PulledFile]:
    records = [r for p in sorted(pulled_records_dir().glob("*.json")) if (r := _read(p)) is not None]
    return sorted(records, key=lambda r: (r.model_id or "~", r.spec.lower()))


def find_intact(repo: str, file_name: str) -> PulledFile | None:
    record = read_record(repo, file_name)
    return record if record is not None and record.intact() else None


def record_for_path(path: Path) -> PulledFile | None:
    """The record whose snapshot entry or blob is `path`."""
    wanted = os.path.abspath(path)
    for record in all_records():
        if wanted in (os.path.abspath(record.path), os.path.abspath(record.blob)):
            return record
    return None


def _other_pointers(snapshots: Path, blob: Path, skip: Path) -> bool:
    """Does any other snapshot entry of this repo still point at `blob`?"""
    if not snapshots.is_dir():
        return False
    blob_real = os.path.realpath(blob)
    for root, _dirs, files in os.walk(snapshots):
        for name in files:
            candidate = Path(root) / name
            if candidate != skip and os.path.realpath(candidate) == blob_real:
                return True
    return False


def discard_cache_entry(pointer: Path) -> int:
    """Delete a snapshot entry and, unless another snapshot still uses it, its blob.

    Returns the bytes freed. The layout is huggingface_hub's: <repo>/snapshots/<commit>/<file>
    pointing at <repo>/blobs/<etag>.
    """
    freed = 0
    blob = Path(os.path.realpath(pointer))
    with contextlib.suppress(FileNotFoundError):
        size = os.stat(pointer).st_size
        if pointer.is_symlink():
            pointer.unlink()
            snapshots = pointer.parent.parent
            if blob.exists() and not _other_pointers(snapshots, blob, pointer):
                blob.unlink()
                freed = size
        else:  # no symlinks on this platform: the snapshot entry is the file itself
            pointer.unlink()
            freed = size
    with contextlib.suppress(OSError):
        pointer.parent.rmdir()  # the commit directory, when it is now empty
    return freed


def remove_pulled(record: PulledFile) -> int:
    """Delete a pulled file and its record; returns the bytes freed."""
    freed = discard_cache_entry(record.path)
    record_path(record.repo, record.file).unlink(missing_ok=True)
    return freed


def now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def pull_lock(repo: str, file_name: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One pull (or removal) of a given file at a time, across processes."""
    from filelock import FileLock, Timeout

    locks = pulled_records_dir() / ".locks"
    locks.mkdir(exist_ok=True)
    lock = FileLock(str(locks / (_record_name(repo, file_name) + ".lock")))
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        if on_wait is not None:
            on_wait()
        try:
            lock.acquire()
        except OSError as exc:
            raise ModelError(f"Cannot lock {locks}: {exc}.", "Check that the models directory is writable.") from exc
    try:
        yield
    finally:
        lock.release()
