"""An inverted index from 32-bit keys to 32-bit values, compact and cheap to update.

Used twice: identifier key -> chunk id (the similarity search) and name key -> definition ref
(name lookup). Python dicts of lists would cost ~100 bytes a posting; here a posting is
4 bytes in a sorted numpy "base" (keys, offsets, values), plus a small "delta" of the same
shape for what changed since the base was built. Adding a file rebuilds only the delta; the
base is rebuilt (in the indexer's thread, numpy releasing the GIL for the sort) once the delta
grows past a fraction of it. Values of removed files stay in the arrays until that rebuild;
callers drop them with their own liveness check (a file id's `alive` flag).
"""

from __future__ import annotations

import threading
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
        return [self.values[self.offsets[i]:self.offsets[i + 1]] for i in at[hit]]

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


class Postings:
    """Thread-safe for one writer (the indexer) and many readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base = Table.empty()
        self._delta = Table.empty()
        self._pending: list[tuple[U32, U32]] = []
        self._pending_size = 0

    def add(self, keys: U32, values: U32) -> None:
        """Queue postings; they become visible at the next `publish`."""
        if len(keys):
            self._pending.append((keys.astype(np.uint32, copy=False), values.astype(np.uint32, copy=False)))
            self._pending_size += len(keys)

    def publish(self, alive: npt.NDArray[np.bool_] | None = None, owner: U32 | None = None, *,
                force: bool = True) -> None:
        """Make queued postings visible. When the delta gets large, fold everything into a new
        base, dropping postings whose owner (`owner[value]`, or the value itself) is not alive.
        Without `force`, a small queue waits for more (a bulk load publishes in large steps)."""
        if not self._pending:
            return
        if not force and self._pending_size < max(DELTA_MIN, DELTA_SHARE * len(self._base)):
            return
        pending, self._pending, self._pending_size = self._pending, [], 0
        delta_keys, delta_values = self._delta.pairs()
        keys = np.concatenate([delta_keys, *(k for k, _ in pending)])
        values = np.concatenate([delta_values, *(v for _, v in pending)])
        if len(keys) > max(DELTA_MIN, DELTA_SHARE * len(self._base)):
            base_keys, base_values = self._base.pairs()
            keys = np.concatenate([base_keys, keys])
            values = np.concatenate([base_values, values])
            if alive is not None:
                owners = values if owner is None else owner[values]
                keep = alive[owners]
                keys, values = keys[keep], values[keep]
            base = Table.build(keys, values)
            with self._lock:
                self._base, self._delta = base, Table.empty()
        else:
            delta = Table.build(keys, values)
            with self._lock:
                self._delta = delta

    def tables(self) -> tuple[Table, Table]:
        with self._lock:
            return self._base, self._delta

    def lookup(self, query: U32) -> U32:
        """Every value of every key in `query` (with repeats across keys), live or not."""
        base, delta = self.tables()
        parts = base.lookup(query) + delta.lookup(query)
        return np.concatenate(parts) if parts else _EMPTY

    def frequencies(self, query: U32) -> npt.NDArray[np.int64]:
        base, delta = self.tables()
        return base.counts(query) + delta.counts(query)

    @property
    def nbytes(self) -> int:
        base, delta = self.tables()
        return base.nbytes + delta.nbytes + sum(k.nbytes + v.nbytes for k, v in self._pending)

    def __len__(self) -> int:
        base, delta = self.tables()
        return len(base) + len(delta)
