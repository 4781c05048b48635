"""`ninetyten models pull`: fetch a GGUF from a Hugging Face hub, verified, into the hub cache.

The transfer is huggingface_hub's (`hf_hub_download`): its cache layout, HF_ENDPOINT,
HF_HUB_OFFLINE, HF_TOKEN, the usual proxy variables, a private temporary file per download
that is renamed into place only when complete, and Range requests that resume a transfer
cut mid-way. Around it, this module adds what a model file needs before a server may load
it: a digest to check against (the catalog's, else the SHA-256 the hub publishes for LFS
files), a disk-space check before the first byte, the SHA-256 check after the last one,
and a record that marks the file as verified (see `pulled.py`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from local_models._progress import tqdm_class_for
from local_models.catalog import EMBEDDED_MODEL_ID, canonical_id, find_catalog_file, get_entry
from local_models.errors import ModelError
from local_models.paths import hub_cache_dir
from local_models.pulled import (
    PulledFile,
    discard_cache_entry,
    find_intact,
    now,
    pull_lock,
    read_record,
    remove_pulled,
    write_record,
)
from local_models.verify import check_gguf_header, sha256_file

# Room left on the disk after a download: a full disk breaks more than the download.
DISK_MARGIN = 128 * 1024 * 1024

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REPO_FILE_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?::(?P<file>.+))?$")

FreeBytes = Callable[[Path], int]
Report = Callable[[str], None]


@dataclass(frozen=True)
class PullTarget:
    """One file to pull, with what the catalog knows about it."""

    repo: str
    file: str
    revision: str  # branch, tag or commit
    sha256: str | None = None  # the catalog's digest, when it has one
    model_id: str | None = None
    quant: str | None = None
    size_hint: int | None = None

    @property
    def spec(self) -> str:
        return f"{self.repo}:{self.file}"


class PullResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    record: PulledFile
    downloaded: bool  # False: it was already pulled and intact (or found in the hub cache)


def _print_report(line: str) -> None:
    print(f"ninetyten: {line}", file=sys.stderr, flush=True)


def parse_target(spec: str, *, revision: str | None = None) -> PullTarget:
    """ID, ID:QUANT, REPO:FILE -> what to fetch. Raises ModelError for anything else."""
    spec = spec.strip()
    name, _, quant = spec.partition(":")
    model_id = canonical_id(name) if "/" not in name else None
    if model_id is not None:
        entry = get_entry(model_id)
        if model_id == EMBEDDED_MODEL_ID:
            raise ModelError(
                f"{model_id} ships with ninetyten (from PyPI); there is nothing to pull.",
                "Pull a Qwen-Coder model instead: `ninetyten models recommend` says which.",
            )
        model_file = entry.file_for(quant) if quant else entry.default_file()
        if model_file is None:
            raise ModelError(
                f"{entry.id} has no {quant!r} file.", f"Known quantisations: {', '.join(f.quant for f in entry.files)}."
            )
        assert model_file.repo is not None  # every pullable catalog file names its repo (validated)
        pinned = revision is None or revision == model_file.revision
        return PullTarget(
            repo=model_file.repo,
            file=model_file.file,
            revision=revision or model_file.revision or "main",
            sha256=model_file.sha256 if pinned else None,
            model_id=entry.id,
            quant=model_file.quant,
            size_hint=model_file.size,
        )
    match = _REPO_FILE_RE.fullmatch(spec)
    if match is None:
        raise ModelError(
            f"{spec!r} is neither a catalog id nor REPO:FILE.",
            "Run `ninetyten models list` for the ids, or name a file as owner/repo:file.gguf.",
        )
    repo, file_name = match["repo"], match["file"]
    if not file_name:
        raise ModelError(
            f"Which file of {repo}? A repository holds many quantisations.",
            f"Name one: `ninetyten models pull {repo}:FILE.gguf`.",
        )
    if not file_name.endswith(".gguf") or file_name.startswith("/") or ".." in file_name.split("/"):
        raise ModelError(f"{file_name!r} is not a .gguf file name.", "ninetyten only pulls GGUF model files.")
    known = find_catalog_file(repo, file_name)
    if known is not None:
        entry, model_file = known
        pinned = revision is None or revision == model_file.revision
        return PullTarget(
            repo=model_file.repo or repo,
            file=file_name,
            revision=revision or model_file.revision or "main",
            sha256=model_file.sha256 if pinned else None,
            model_id=entry.id,
            quant=model_file.quant,
            size_hint=model_file.size,
        )
    return PullTarget(repo=repo, file=file_name, revision=revision or "main")


def disk_free(path: Path) -> int:
    """Free bytes on the filesystem that holds `path` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    raise ModelError(f"Cannot tell how much space is free for {path}.", "Check that the directory is reachable.")


def human_bytes(n: int | float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _endpoint(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


def offline_mode() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


@contextlib.contextmanager
def _hub_errors(target: PullTarget, endpoint: str | None) -> Iterator[None]:
    """Turn huggingface_hub's and httpx's exceptions into errors that say what to do."""
    import httpx2
    from huggingface_hub import errors

    where = _endpoint(endpoint)
    try:
        yield
    except errors.OfflineModeIsEnabled as exc:
        raise _offline_error(target) from exc
    except errors.GatedRepoError as exc:
        raise ModelError(
            f"{target.repo} is gated: its owners must grant you access before you can download it.",
            f"Accept its terms at {where}/{target.repo} and set HF_TOKEN to an access token.",
        ) from exc
    except errors.RepositoryNotFoundError as exc:
        raise ModelError(
            f"{where} has no repository {target.repo} (or it is private).",
            "Check the name (`ninetyten models list` shows the catalog's), or set HF_TOKEN if it is private.",
        ) from exc
    except errors.RevisionNotFoundError as exc:
        raise ModelError(
            f"{target.repo} has no revision {target.revision!r}.",
            "Use a branch, tag or commit that exists (the default is main).",
        ) from exc
    except errors.RemoteEntryNotFoundError as exc:
        raise ModelError(
            f"{target.repo} has no file {target.file} at {target.revision}.",
            f"See the files at {where}/{target.repo}/tree/{target.revision} and name one that exists.",
        ) from exc
    except errors.LocalEntryNotFoundError as exc:
        raise _unreachable(where, exc.__cause__ or exc) from exc
    except errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise ModelError(
            f"{where} answered HTTP {status} for {target.spec}.",
            "The hub may be down or rate-limiting: try again later.",
        ) from exc
    except errors.HFValidationError as exc:
        raise ModelError(f"{target.spec!r} is not a valid Hugging Face file name: {exc}.", None) from exc
    except errors.FileMetadataError as exc:
        raise ModelError(
            f"{where} did not answer like a Hugging Face hub: {exc}",
            "Check HF_ENDPOINT and any proxy between you and the hub.",
        ) from exc
    except (httpx2.ConnectError, httpx2.TimeoutException, httpx2.ProxyError, httpx2.RemoteProtocolError) as exc:
        raise _unreachable(where, exc) from exc


def _unreachable(where: str, cause: BaseException) -> ModelError:
    return ModelError(
        f"Cannot reach {where}: {cause}.",
        "Check your connection or proxy (HTTPS_PROXY), or set HF_ENDPOINT to a mirror; "
        "already pulled models keep working offline.",
    )


def _offline_error(target: PullTarget) -> ModelError:
    return ModelError(
        f"Offline mode is on (HF_HUB_OFFLINE), and {target.spec} is not in the cache.",
        "Unset HF_HUB_OFFLINE to download it, or copy the .gguf over and pass --model PATH.",
    )


def _bar_description(target: PullTarget, size: int | None) -> str:
    name = target.model_id or target.spec
    return f"pulling {name}" + (f" ({human_bytes(size)})" if size else "")


def _finish(target: PullTarget, path: Path, commit: str, want: str, against: str, *, progress: bool) -> PulledFile:
    """Check the downloaded (or cached) file; record it if good, delete it if not."""
    actual = sha256_file(path, progress=progress)
    if actual != want:
        discard_cache_entry(path)
        raise ModelError(
            f"The downloaded {target.file} has SHA-256 {actual}, but {against} says {want}; "
            "it was deleted, nothing was kept.",
            f"Pull again; if it happens again, the file on the hub is not the one {against} describes.",
        )
    try:
        check_gguf_header(path)
    except ModelError as exc:
        discard_cache_entry(path)
        raise ModelError(f"{target.spec} is not a usable GGUF file ({exc.problem}); it was deleted.", None) from exc
    st = os.stat(path)
    record = PulledFile(
        repo=target.repo,
        file=target.file,
        revision=target.revision,
        commit=commit,
        sha256=actual,
        size=st.st_size,
        path=Path(os.path.abspath(path)),
        blob=Path(os.path.realpath(path)),
        mtime_ns=st.st_mtime_ns,
        verified_against="catalog" if against == "the catalog" else "hub",
        model_id=target.model_id,
        quant=target.quant,
        pulled_at=now(),
    )
    previous = read_record(target.repo, target.file)
    write_record(record)
    if previous is not None and os.path.realpath(previous.path) != os.path.realpath(record.path):
        discard_cache_entry(previous.path)  # an older revision of the same file
    return record


def pull(
    target: PullTarget,
    *,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: bool = True,
    free_bytes: FreeBytes = disk_free,
    report: Report = _print_report,
    bar: type | None = None,
) -> PullResult:
    """Fetch `target` into the hub cache and verify it. Raises ModelError with a remedy.

    `bar`: a tqdm-like class for the transfer's progress (default: a bar on stderr, see
    _progress.py); the language server passes one that reports LSP work-done progress."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name

    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()

    def waiting() -> None:
        report(f"another pull of {target.spec} is under way; waiting for it to finish")

    with pull_lock(target.repo, target.file, on_wait=waiting):
        existing = find_intact(target.repo, target.file)
        if existing is not None:
            # Same content as the catalog pins, or (offline) whatever was last pulled at this revision.
            if target.sha256 is not None and existing.sha256 == target.sha256:
                return PullResult(record=existing, downloaded=False)
            if offline_mode() and target.revision in (existing.revision, existing.commit):
                return PullResult(record=existing, downloaded=False)

        if offline_mode():
            cached = try_to_load_from_cache(target.repo, target.file, cache_dir=str(cache), revision=target.revision)
            if not isinstance(cached, str):
                raise _offline_error(target)
            blob_name = Path(os.path.realpath(cached)).name
            want = target.sha256 or (blob_name if _SHA256_RE.fullmatch(blob_name) else None)
            if want is None:
                raise ModelError(
                    f"{target.spec} is in the cache but there is no SHA-256 to check it against.",
                    "Pull it once while online.",
                )
            against = "the catalog" if target.sha256 else "the hub's LFS metadata"
            parts = Path(cached).parts
            commit = parts[len(parts) - 1 - parts[::-1].index("snapshots") + 1]
            record = _finish(target, Path(cached), commit, want, against, progress=progress)
            return PullResult(record=record, downloaded=False)

        with _hub_errors(target, endpoint):
            url = hf_hub_url(target.repo, target.file, revision=target.revision, endpoint=endpoint)
            meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
        hub_sha = meta.etag if meta.etag and _SHA256_RE.fullmatch(meta.etag) else None
        if target.sha256 is not None and hub_sha is not None and hub_sha != target.sha256:
            raise ModelError(
                f"The hub offers a different {target.file} than the catalog describes: its SHA-256 is {hub_sha}, "
                f"the catalog's {target.sha256}. Nothing was downloaded.",
                f"The catalog may be out of date: `ninetyten models pull {target.spec} --revision main` takes the "
                "hub's current file, checked against the hub's own digest.",
            )
        want = target.sha256 or hub_sha
        if want is None:
            raise ModelError(
                f"There is no SHA-256 to check {target.spec} against: the catalog has none and the hub "
                "publishes none for it (not an LFS file?). Nothing was downloaded.",
                "Download it yourself and pass --model PATH if you trust it.",
            )
        against = "the catalog" if target.sha256 else "the hub's LFS metadata"
        commit = meta.commit_hash or target.revision
        if existing is not None and existing.sha256 == want:
            return PullResult(record=existing, downloaded=False)

        size = meta.size or target.size_hint
        blob = cache / repo_folder_name(repo_id=target.repo, repo_type="model") / "blobs" / str(meta.etag)
        if size is not None and not blob.exists():
            free = free_bytes(cache)
            if free < size + DISK_MARGIN:
                raise ModelError(
                    f"Not enough disk space to pull {target.model_id or target.spec}: it needs {human_bytes(size)} "
                    f"(plus {human_bytes(DISK_MARGIN)} to spare), {human_bytes(free)} is free in {cache}. "
                    "Nothing was downloaded.",
                    "Free some space (`ninetyten models rm ID` removes a pulled model), or set HF_HUB_CACHE "
                    "to a directory on a larger disk.",
                )

        bar = bar or tqdm_class_for(_bar_description(target, size), progress=progress)
        try:
            with _hub_errors(target, endpoint):
                path = hf_hub_download(
                    target.repo,
                    target.file,
                    revision=commit,
                    cache_dir=str(cache),
                    endpoint=endpoint,
                    token=token,
                    tqdm_class=bar,
                )
        except OSError as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(
                f"Downloading {target.spec} failed: {exc}. Nothing was kept.",
                "Run the same command again; check the free disk space if it says so.",
            ) from exc
        record = _finish(target, Path(path), commit, want, against, progress=progress)
        return PullResult(record=record, downloaded=True)


def remove(record: PulledFile, *, on_wait: Callable[[], None] | None = None) -> int:
    """Delete a pulled file (under the same lock a pull takes); returns the bytes freed."""
    with pull_lock(record.repo, record.file, on_wait=on_wait):
        return remove_pulled(record)
