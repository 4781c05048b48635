"""The workspace index: every indexed file's definitions, chunks and module name, kept current.

`WorkspaceIndex.start()` lists the workspace folders (`discovery.py`), has the files parsed by
a low-priority worker process (`worker.py`) in small batches, and folds the records in; then it
follows changes reported by watchfiles (`watch.py`), re-parsing only the files that changed
(a `.gitignore` change or a new directory triggers a rescan, which re-parses only files whose
size or modification time moved).

Readers (the retrieval functions, on the editor's request path) never wait for parsing: they
see the index as of the last folded batch. Ids of definitions and chunks are never reused;
a re-indexed file gets a new file id, and the old one is marked dead (its postings are
dropped when the postings' base is next rebuilt).
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from lsp_server.context import discovery
from lsp_server.context.entries import FileEntry, IndexLimits, IndexStats
from lsp_server.context.postings import Postings
from lsp_server.context.queries import IndexQueries
from lsp_server.context.records import DEF_WORDS, FileRecord, unpack_kind
from lsp_server.context.worker import InlineParser, Parser, ProcessParser

log = logging.getLogger(__name__)

# Definitions found by name. Fields are reached through their class's outline instead:
# there are many, and a bare field name says little.
_NAMED_KINDS = frozenset(
    {"function", "method", "class", "struct", "interface", "trait", "enum", "type", "constant", "variable", "macro"}
)


_A = TypeVar("_A", bound=np.generic)


def _grow(arr: npt.NDArray[_A], size: int) -> npt.NDArray[_A]:
    if size <= len(arr):
        return arr
    out: npt.NDArray[_A] = np.zeros(max(size, 2 * len(arr), 1024), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class WorkspaceIndex(IndexQueries):
    def __init__(
        self, folders: Iterable[str | Path], limits: IndexLimits | None = None, parser: Parser | None = None
    ) -> None:
        self.roots: list[Path] = [Path(f).resolve() for f in folders]
        self.limits = limits or IndexLimits()
        self._parser: Parser = parser or (ProcessParser() if self.limits.worker == "process" else InlineParser())
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.generation = 0  # bumped after every fold: tests and the bench wait on it
        self._files: list[FileEntry | None] = []
        self._by_path: dict[tuple[int, str], int] = {}
        self._by_stem: dict[str, set[int]] = {}
        self._alive = np.zeros(1024, dtype=np.bool_)
        self._n_defs = 0
        self._def_file = np.zeros(1024, dtype=np.uint32)
        self._def_top = np.zeros(1024, dtype=np.bool_)  # no parent (not a member of a class)
        self._n_chunks = 0
        self._chunk_file = np.zeros(1024, dtype=np.uint32)
        self._chunk_size = np.zeros(1024, dtype=np.uint32)
        self._file_dir = np.zeros(1024, dtype=np.uint32)  # file id -> directory id
        self._dir_ids: dict[tuple[int, str], int] = {}
        self.symbols = Postings()  # name key -> definition id
        self.chunks = Postings()  # identifier key -> chunk id
        self.stats = IndexStats()
        self.ready = threading.Event()  # the first build is done
        self.watching = threading.Event()  # changes are being followed (or rescans scheduled)
        self._jobs: queue.Queue[tuple[str, object]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.on_update: Callable[[int], None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Build in the background, then follow changes. Returns at once."""
        builder = threading.Thread(target=self._run, name="context-index", daemon=True)
        self._threads.append(builder)
        builder.start()
        if self.limits.watch:
            from lsp_server.context.watch import start_watching

            self._threads.append(start_watching(self, self._stop))

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(("stop", None))
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self._parser.close()

    def __enter__(self) -> WorkspaceIndex:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def build(self) -> None:
        """Index every folder now, in the calling thread (tests, the bench, the CLI)."""
        started = time.perf_counter()
        for root_index in range(len(self.roots)):
            self._scan(root_index, bulk=True)
        self._publish(force=True)
        self.stats.build_seconds = time.perf_counter() - started
        self.ready.set()

    def _run(self) -> None:
        try:
            self.build()
            while not self._stop.is_set():
                kind, payload = self._jobs.get()
                if kind == "stop":
                    return
                try:
                    self._handle(kind, payload)
                except Exception:  # the index must keep following changes whatever one batch does
                    log.exception("context index: could not apply %s", kind)
        except Exception:
            log.exception("context index: the build failed")
            self.ready.set()

    def _handle(self, kind: str, payload: object) -> None:
        if kind == "rescan":
            assert isinstance(payload, int)
            self._scan(payload, bulk=False)
            self._publish(force=True)
        elif kind == "changes":
            assert isinstance(payload, list)
            self._apply_changes(payload)

    def request_rescan(self, root_index: int) -> None:
        self._jobs.put(("rescan", root_index))

    def notify_changed(self, changes: list[tuple[int, str]]) -> None:
        """Files (folder index, relative path) that were created, modified or deleted."""
        self._jobs.put(("changes", changes))

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds after some fold (or `timeout` seconds pass)."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    # ------------------------------------------------------------------ building

    def _scan(self, root_index: int, *, bulk: bool) -> None:
        root = self.roots[root_index]
        found = discovery.discover(root, discovery.Limits(self.limits.max_file_bytes, self.limits.max_files))
        self.stats.methods[str(root)] = found.method
        self.stats.truncated = self.stats.truncated or found.truncated
        self.stats.skipped.update(found.skipped)
        wanted = {c.path for c in found.files}
        with self._lock:
            gone = [path for (r, path) in self._by_path if r == root_index and path not in wanted]
        for path in gone:
            self._remove(root_index, path)
        todo = []
        for cand in found.files:
            current = self.file(root_index, cand.path)
            if current is None or current.mtime_ns != cand.mtime_ns or current.size != cand.size:
                todo.append((cand.path, cand.language))
        if not bulk:
            self.stats.updates += len(gone) + len(todo)
        self._index_files(root_index, todo, bulk=bulk)

    def _index_files(self, root_index: int, items: list[tuple[str, str]], *, bulk: bool) -> None:
        root = str(self.roots[root_index])
        step = max(1, self.limits.batch_files)
        for at in range(0, len(items), step):
            if self._stop.is_set():
                return
            results = self._parser.index(root, items[at : at + step], self.limits.max_file_bytes)
            started = time.perf_counter()
            for result in results:
                time.sleep(0)  # a file at a time: let the editor's requests have the GIL in between
                if isinstance(result, FileRecord):
                    self._fold(root_index, result)
                else:
                    self._remove(root_index, result.path)
                    if result.reason != "gone":
                        self.stats.skipped[result.reason] += 1
            self._publish(force=not bulk)
            # The server's own share of the build: this thread's work between two worker replies.
            spent = time.perf_counter() - started
            self.stats.fold_seconds += spent
            self.stats.longest_fold_ms = max(self.stats.longest_fold_ms, spent * 1000)

    def _apply_changes(self, changes: list[tuple[int, str]]) -> None:
        by_root: dict[int, list[str]] = {}
        for root_index, path in changes:
            by_root.setdefault(root_index, []).append(path)
        for root_index, paths in by_root.items():
            root = self.roots[root_index]
            limits = discovery.Limits(self.limits.max_file_bytes, self.limits.max_files)
            todo: list[tuple[str, str]] = []
            fresh: list[discovery.Candidate] = []
            for path in dict.fromkeys(paths):
                if os.path.isdir(root / path) and not os.path.islink(root / path):
                    self._scan(root_index, bulk=False)  # a directory appeared (or moved in)
                    todo, fresh = [], []
                    break
                cand = discovery.candidate(root, path, limits)
                if cand is None:
                    self._remove_under(root_index, path)
                    continue
                current = self.file(root_index, path)
                if current is not None:
                    if current.mtime_ns != cand.mtime_ns or current.size != cand.size:
                        todo.append((path, cand.language))
                else:
                    fresh.append(cand)
            if fresh:
                ignored = self._ignored(root_index, [c.path for c in fresh])
                with self._lock:
                    room = self.limits.max_files - sum(1 for r, _ in self._by_path if r == root_index)
                todo += [(c.path, c.language) for c in fresh if c.path not in ignored][: max(0, room)]
            self.stats.updates += len(todo)
            self._index_files(root_index, todo, bulk=False)
        self._publish(force=True)

    def _ignored(self, root_index: int, paths: list[str]) -> set[str]:
        root = self.roots[root_index]
        if self.stats.methods.get(str(root)) == "git":
            ignored = discovery.git_ignored(root, paths)
            if ignored is not None:
                return ignored
        return {p for p in paths if discovery.walk_ignored(root, p)}

    def _fold(self, root_index: int, record: FileRecord) -> None:
        defs = array("I")
        defs.frombytes(record.defs)
        chunk_lines = array("I")
        chunk_lines.frombytes(record.chunk_lines)
        sizes = np.frombuffer(record.chunk_sizes, dtype=np.uint32)
        keys = np.frombuffer(record.chunk_keys, dtype=np.uint32)
        # One string object per distinct name across files (names repeat: `__init__`, `get`).
        names = tuple(map(sys.intern, record.names))
        parents = tuple(None if p is None else sys.intern(p) for p in record.parents)
        with self._lock:
            self._remove_locked(root_index, record.path)
            file_id = len(self._files)
            entry = FileEntry(
                file_id,
                root_index,
                record.path,
                sys.intern(record.language),
                record.mtime_ns,
                record.size,
                record.line_count,
                names,
                parents,
                defs,
                record.imports,
                self._n_defs,
                self._n_chunks,
                chunk_lines,
            )
            self._files.append(entry)
            self._by_path[(root_index, record.path)] = file_id
            self._by_stem.setdefault(entry.stem, set()).add(file_id)
            self._alive = _grow(self._alive, file_id + 1)
            self._alive[file_id] = True
            self._file_dir = _grow(self._file_dir, file_id + 1)
            self._file_dir[file_id] = self._dir_id(root_index, record.path.rpartition("/")[0])
            n_defs, n_chunks = len(names), len(sizes)
            self._def_file = _grow(self._def_file, self._n_defs + n_defs)
            self._def_file[self._n_defs : self._n_defs + n_defs] = file_id
            self._def_top = _grow(self._def_top, self._n_defs + n_defs)
            self._def_top[self._n_defs : self._n_defs + n_defs] = [p is None for p in parents]
            self._chunk_file = _grow(self._chunk_file, self._n_chunks + n_chunks)
            self._chunk_size = _grow(self._chunk_size, self._n_chunks + n_chunks)
            self._chunk_file[self._n_chunks : self._n_chunks + n_chunks] = file_id
            self._chunk_size[self._n_chunks : self._n_chunks + n_chunks] = sizes
            first_def, first_chunk = self._n_defs, self._n_chunks
            self._n_defs += n_defs
            self._n_chunks += n_chunks
            self.stats.files += 1
            self.stats.definitions += n_defs
            self.stats.chunks += n_chunks
        named = [i for i in range(n_defs) if unpack_kind(defs[DEF_WORDS * i])[0] in _NAMED_KINDS]
        if named:
            self.symbols.add(
                np.fromiter((zlib.crc32(names[i].encode("utf-8")) for i in named), dtype=np.uint32, count=len(named)),
                np.asarray(named, dtype=np.uint32) + np.uint32(first_def),
            )
        if n_chunks:
            self.chunks.add(keys, np.repeat(np.arange(first_chunk, first_chunk + n_chunks, dtype=np.uint32), sizes))

    def _remove(self, root_index: int, path: str) -> None:
        with self._lock:
            self._remove_locked(root_index, path)

    def _remove_under(self, root_index: int, path: str) -> None:
        """A deleted file, or a deleted directory's files."""
        with self._lock:
            prefix = path.rstrip("/") + "/"
            doomed = [p for (r, p) in self._by_path if r == root_index and (p == path or p.startswith(prefix))]
            for p in doomed:
                self._remove_locked(root_index, p)
            self.stats.updates += len(doomed)

    def _remove_locked(self, root_index: int, path: str) -> None:
        file_id = self._by_path.pop((root_index, path), None)
        if file_id is None:
            return
        entry = self._files[file_id]
        self._files[file_id] = None
        self._alive[file_id] = False
        if entry is not None:
            stems = self._by_stem.get(entry.stem)
            if stems is not None:
                stems.discard(file_id)
                if not stems:
                    del self._by_stem[entry.stem]
            self.stats.files -= 1
            self.stats.definitions -= len(entry.names)
            self.stats.chunks -= len(entry.chunk_lines) // 2

    def _publish(self, *, force: bool) -> None:
        with self._lock:
            alive = self._alive.copy()
            def_file = self._def_file[: self._n_defs].copy()
            chunk_file = self._chunk_file[: self._n_chunks].copy()
        self.symbols.publish(alive, def_file, force=force)
        self.chunks.publish(alive, chunk_file, force=force)
        with self._changed:
            self.generation += 1
            self._changed.notify_all()
        if self.on_update is not None:
            self.on_update(self.generation)

    # ------------------------------------------------------------------ reading

    def file(self, root_index: int, path: str) -> FileEntry | None:
        with self._lock:
            file_id = self._by_path.get((root_index, path))
            return None if file_id is None else self._files[file_id]

    def locate(self, path: str | Path) -> tuple[int, str] | None:
        """(folder index, relative path) of a path inside a workspace folder (relative paths are
        taken from the current directory)."""
        full = Path(os.path.normpath(Path(path).absolute()))
        for i, root in enumerate(self.roots):
            try:
                return i, full.relative_to(root).as_posix()
            except ValueError:
                continue
        try:
            resolved = full.resolve()
        except OSError:
            return None
        for i, root in enumerate(self.roots):
            try:
                return i, resolved.relative_to(root).as_posix()
            except ValueError:
                continue
        return None

    def absolute(self, entry: FileEntry) -> Path:
        return self.roots[entry.root] / entry.path

    def entries(self) -> list[FileEntry]:
        with self._lock:
            return [e for e in self._files if e is not None]

    def with_stem(self, stem: str) -> list[FileEntry]:
        with self._lock:
            ids = sorted(self._by_stem.get(stem, ()))
            return [e for i in ids if (e := self._files[i]) is not None]

    def _dir_id(self, root_index: int, directory: str) -> int:
        return self._dir_ids.setdefault((root_index, directory), len(self._dir_ids) + 1)
