"""What the workspace index answers on the editor's request path: definitions by name, and
chunks similar to the code at the cursor. Readers never wait for parsing."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from lsp_server.context.entries import DefinitionRef, FileEntry, IndexStats
from lsp_server.context.identifiers import key
from lsp_server.context.postings import Postings


class IndexQueries:
    """The queries of `WorkspaceIndex` (index.py), which keeps the arrays and postings they read."""

    _lock: threading.RLock
    _files: list[FileEntry | None]
    _alive: npt.NDArray[np.bool_]
    _n_defs: int
    _def_file: npt.NDArray[np.uint32]
    _def_top: npt.NDArray[np.bool_]
    _n_chunks: int
    _chunk_file: npt.NDArray[np.uint32]
    _chunk_size: npt.NDArray[np.uint32]
    _file_dir: npt.NDArray[np.uint32]
    _dir_ids: dict[tuple[int, str], int]
    symbols: Postings
    chunks: Postings
    stats: IndexStats

    def definitions_named(
        self, name: str, *, top_level: bool = False, directory: tuple[int, str] | None = None, limit: int | None = None
    ) -> list[DefinitionRef] | None:
        """Live definitions called `name` (only those without a parent when `top_level`, only
        those in one (folder, directory) when `directory`). None when more than `limit` match:
        a name defined in hundreds of files (`get`, `run`) is not worth ranking."""
        ids = self.symbols.lookup(np.array([key(name)], dtype=np.uint32))
        if not len(ids):
            return []
        with self._lock:
            ids = np.unique(ids[ids < self._n_defs])
            files = self._def_file[ids]
            keep = self._alive[files]
            if top_level:
                keep &= self._def_top[ids]
            if directory is not None:
                dir_id = self._dir_ids.get(directory)
                if dir_id is None:
                    return []
                keep &= self._file_dir[files] == dir_id
            ids, files = ids[keep], files[keep]
            if limit is not None and len(ids) > limit:
                return None
            out = []
            for def_id, file_id in zip(ids.tolist(), files.tolist(), strict=True):
                entry = self._files[file_id]
                if entry is None:
                    continue
                index = def_id - entry.first_def
                if not 0 <= index < len(entry.names) or entry.names[index] != name:
                    continue  # a hash collision
                if top_level and entry.parents[index] is not None:
                    continue
                out.append(entry.definition(index))
        return out

    def chunks_naming(
        self, name: str, *, exclude_file: int | None = None
    ) -> list[tuple[FileEntry, list[tuple[int, int]]]]:
        """The live chunks whose identifiers include `name`, by file: (file, [(first line, end
        line), ...]), files unordered, chunks in line order (a hash collision gives a chunk
        that does not name it, which the caller's reading rules out)."""
        hits = self.chunks.lookup(np.array([key(name)], dtype=np.uint32))
        out: list[tuple[FileEntry, list[tuple[int, int]]]] = []
        with self._lock:
            hits = np.unique(hits[hits < self._n_chunks])
            files = self._chunk_file[hits]
            keep = self._alive[files]
            if exclude_file is not None:
                keep &= files != exclude_file
            by_file: dict[int, list[int]] = {}
            for chunk_id, file_id in zip(hits[keep].tolist(), files[keep].tolist(), strict=True):
                by_file.setdefault(file_id, []).append(chunk_id)
            for file_id, chunk_ids in by_file.items():
                entry = self._files[file_id]
                if entry is None:
                    continue
                spans = []
                for chunk_id in chunk_ids:
                    k = chunk_id - entry.first_chunk
                    spans.append((entry.chunk_lines[2 * k], entry.chunk_lines[2 * k + 1]))
                out.append((entry, spans))
        return out

    def similar_chunks(
        self,
        query: npt.NDArray[np.uint32],
        *,
        exclude: Iterable[int] = (),
        limit: int = 8,
        max_frequency: float = 0.02,
        max_keys: int = 40,
    ) -> list[tuple[float, FileEntry, int, int]]:
        """Chunks ranked by Jaccard similarity of identifier sets with `query` (sorted unique keys):
        (score, file, first line, end line), best first; ties broken by path and line so that the
        same query always gives the same list. Only the `max_keys` rarest keys, and none in more than
        `max_frequency` of all chunks, count for the intersection (common ones would touch every
        chunk and say little); all count in the union."""
        if not len(query):
            return []
        with self._lock:
            n_chunks = self._n_chunks
            chunk_file = self._chunk_file[:n_chunks]
            chunk_size = self._chunk_size[:n_chunks]
            alive = self._alive
            live_chunks = max(1, self.stats.chunks)
        freq = self.chunks.frequencies(query)
        # The rarest identifiers carry the similarity signal (and touch the fewest chunks).
        order = np.argsort(freq, kind="stable")[:max_keys]
        informative = query[order][freq[order] <= max(8, max_frequency * live_chunks)]
        hits = self.chunks.lookup(informative)
        if not len(hits):
            return []
        hits = hits[hits < n_chunks]
        shared = np.bincount(hits, minlength=n_chunks)[:n_chunks]
        candidates = np.flatnonzero(shared)
        candidates = candidates[alive[chunk_file[candidates]]]
        for file_id in exclude:
            candidates = candidates[chunk_file[candidates] != file_id]
        if not len(candidates):
            return []
        inter = shared[candidates].astype(np.float64)
        scores = inter / (len(query) + chunk_size[candidates] - inter)
        take = min(len(candidates), limit * 4)
        top = candidates[np.argpartition(-scores, take - 1)[:take]] if take < len(candidates) else candidates
        out = []
        with self._lock:
            for chunk_id in top.tolist():
                entry = self._files[int(chunk_file[chunk_id])]
                if entry is None:
                    continue
                k = chunk_id - entry.first_chunk
                score = float(shared[chunk_id]) / (len(query) + float(chunk_size[chunk_id]) - float(shared[chunk_id]))
                out.append((score, entry, entry.chunk_lines[2 * k], entry.chunk_lines[2 * k + 1]))
        out.sort(key=lambda item: (-round(item[0], 9), item[1].root, item[1].path, item[2]))
        return out[:limit]

    def memory_bytes(self) -> int:
        """Bytes held by the numpy arrays and postings (Python objects are measured by the bench)."""
        with self._lock:
            arrays = (
                self._alive.nbytes
                + self._def_file.nbytes
                + self._def_top.nbytes
                + self._file_dir.nbytes
                + self._chunk_file.nbytes
                + self._chunk_size.nbytes
            )
        return arrays + self.symbols.nbytes + self.chunks.nbytes
