"""An inverted index from 32-bit keys to 32-bit values, compact and cheap to update.

Used twice: identifier key -> chunk id (the similarity search) and name key -> definition ref
(name lookup). Python dicts of lists would cost ~100 bytes a posting; here a posting is
4 bytes in a sorted numpy "base" (keys, offsets, values), plus a small "delta" of the same
shape for what changed since the base was built. Adding a file rebuilds only the delta; the
base is rebuilt (in the indexer's thread, one of 16 key shards at a time) once the delta grows
past a fraction of it. Values of removed files stay in the arrays until that rebuild;
callers drop them with their own liveness check (a file id's `alive` flag).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U32 = npt.NDArray[np.uint32]
_EMPTY = np.zeros(0, dtype=np.uint32)

# The delta is folded into the base when it exceeds this share of it (and this many postings).
DELTA_SHARE = 0.25
DELTA_MIN = 65536


@dataclass(frozen=True)
class Table:
    """Sorted unique keys; values[offsets[i]:offsets[i+1]] belong to keys[i]."""

    keys: U32
    offsets: npt.NDArray[np.int64]
    values: U32

    @staticmethod
    def empty() -> Table:
        return Table(_EMPTY, np.zeros(1, dtype=np.int64), _EMPTY)

    @staticmethod
    def build(keys: U32, values: U32) -> Table:
        if not len(keys):
            return Table.empty()
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        return Table(keys[starts], np.r_[starts, len(keys)].astype(np.int64), values)

    def pairs(self) -> tuple[U32, U32]:
        counts = np.diff(self.offsets)
        return np.repeat(self.keys, counts), self.values

    def lookup(self, query: U32) -> list[U32]:
        if not len(self.keys) or not len(query):
            return []
        at = np.searchsorted(self.keys, query)
        at[at >= len(self.keys)] = 0
        hit = self.keys[at] == query
        return [self.values[self.offsets[i] : self.offsets[i + 1]] for i in at[hit]]

    def counts(self, query: U32) -> npt.NDArray[np.int64]:
        """How many values each query key has (its document frequency)."""
        if not len(self.keys) or not len(query):
            return np.zeros(len(query), dtype=np.int64)
        at = np.searchsorted(self.keys, query)
        at[at >= len(self.keys)] = 0
        hit = self.keys[at] == query
        return np.where(hit, self.offsets[at + 1] - self.offsets[at], 0)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.offsets.nbytes + self.values.nbytes)

    def __len__(self) -> int:
        return len(self.values)


class _Shard:
    """One slice of the key space: a base and a delta."""

    def __init__(self) -> None:
        self.base = Table.empty()
        self.delta = Table.empty()

    def absorb(
        self, keys: U32, values: U32, alive: npt.NDArray[np.bool_] | None, owner: U32 | None, lock: threading.Lock
    ) -> None:
        delta_keys, delta_values = self.delta.pairs()
        keys = np.concatenate([delta_keys, keys])
        values = np.concatenate([delta_values, values])
        if len(keys) > max(DELTA_MIN // SHARDS, DELTA_SHARE * len(self.base)):
            base_keys, base_values = self.base.pairs()
            keys = np.concatenate([base_keys, keys])
            values = np.concatenate([base_values, values])
            if alive is not None:
                owners = values if owner is None else owner[values]
                keep = alive[owners]
                keys, values = keys[keep], values[keep]
            base = Table.build(keys, values)
            with lock:
                self.base, self.delta = base, Table.empty()
        else:
            delta = Table.build(keys, values)
            with lock:
                self.delta = delta


# The key space is cut in shards so that folding new postings in rebuilds one shard at a time:
# a rebuild of millions of postings at once holds the GIL for tens of milliseconds in places.
SHARDS = 16


class Postings:
    """Thread-safe for one writer (the indexer) and many readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shards = [_Shard() for _ in range(SHARDS)]
        self._pending: list[tuple[U32, U32]] = []
        self._pending_size = 0

    def add(self, keys: U32, values: U32) -> None:
        """Queue postings; they become visible at the next `publish`."""
        if len(keys):
            self._pending.append((keys.astype(np.uint32, copy=False), values.astype(np.uint32, copy=False)))
            self._pending_size += len(keys)

    def _size(self) -> int:
        return sum(len(shard.base) for shard in self._shards)

    def publish(
        self, alive: npt.NDArray[np.bool_] | None = None, owner: U32 | None = None, *, force: bool = True
    ) -> None:
        """Make queued postings visible. When a shard's delta gets large, fold it into a new base,
        dropping postings whose owner (`owner[value]`, or the value itself) is not alive.
        Without `force`, a small queue waits for more (a bulk load publishes in large steps)."""
        if not self._pending:
            return
        if not force and self._pending_size < max(DELTA_MIN, DELTA_SHARE * self._size()):
            return
        pending, self._pending, self._pending_size = self._pending, [], 0
        keys = np.concatenate([k for k, _ in pending])
        values = np.concatenate([v for _, v in pending])
        shard_of = keys % SHARDS
        order = np.argsort(shard_of, kind="stable")
        bounds = np.searchsorted(shard_of[order], np.arange(SHARDS + 1))
        keys, values = keys[order], values[order]
        for i, shard in enumerate(self._shards):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            if hi > lo:
                shard.absorb(keys[lo:hi], values[lo:hi], alive, owner, self._lock)
                time.sleep(0)  # between shards, let the editor's requests have the GIL

    def tables(self) -> list[Table]:
        with self._lock:
            return [t for shard in self._shards for t in (shard.base, shard.delta)]

    def lookup(self, query: U32) -> U32:
        """Every value of every key in `query` (with repeats across keys), live or not."""
        if not len(query):
            return _EMPTY
        with self._lock:
            shards = [(shard.base, shard.delta) for shard in self._shards]
        parts: list[U32] = []
        shard_of = query % SHARDS
        for i in np.unique(shard_of).tolist():
            sub = query[shard_of == i]
            base, delta = shards[i]
            parts += base.lookup(sub) + delta.lookup(sub)
        return np.concatenate(parts) if parts else _EMPTY

    def frequencies(self, query: U32) -> npt.NDArray[np.int64]:
        out = np.zeros(len(query), dtype=np.int64)
        if not len(query):
            return out
        with self._lock:
            shards = [(shard.base, shard.delta) for shard in self._shards]
        shard_of = query % SHARDS
        for i in np.unique(shard_of).tolist():
            mask = shard_of == i
            base, delta = shards[i]
            out[mask] = base.counts(query[mask]) + delta.counts(query[mask])
        return out

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables()) + sum(k.nbytes + v.nbytes for k, v in self._pending)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables())
