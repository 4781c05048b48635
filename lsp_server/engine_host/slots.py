"""Per-client KV-cache slots on one llama.cpp context.

The weights are loaded once; each client (an editor window's language server, the git
hook) keeps its own prompt state. The context holds one client's state at a time; when
another client's request comes, the state in the context is copied out to host memory
(llama.cpp's per-sequence state API) and that client's own state is copied in, so typing
in one window never evicts another window's cache — what llama-server's host-memory
prompt cache does for its slots. A state whose client has gone is kept a little longer,
unowned: the next hook run starts with the same instructions, and finds them evaluated.

Memory is bounded: the states in host memory are dropped least recently used first
(unowned before owned) beyond `limit_bytes`.
"""

from __future__ import annotations

import ctypes
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

MIN_KEPT_TOKENS = 32  # a shorter orphaned prompt is not worth a copy
MAX_ORPHANS = 2
DEFAULT_LIMIT_BYTES = 512 << 20


@dataclass
class SavedState:
    """One sequence's KV cells, copied out of the context, and the tokens they hold."""

    tokens: list[int]
    data: ctypes.Array[ctypes.c_uint8]

    @property
    def size(self) -> int:
        return len(self.data)


class StatefulModel(Protocol):
    def common_prefix(self, tokens: list[int]) -> int: ...
    def save_state(self) -> SavedState | None: ...  # None when the context holds no tokens
    def restore_state(self, saved: SavedState) -> bool: ...


def _common(a: list[int], b: list[int]) -> int:
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit


class Slots:
    """Which client's state is in the context, and the others' states in host memory."""

    def __init__(self, model: StatefulModel, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.model = model
        self.limit_bytes = limit_bytes
        self.active: str | None = None  # the client whose state the context holds
        self.active_present = False  # ... and whether that client is still connected
        self.owned: OrderedDict[str, SavedState] = OrderedDict()
        self.orphans: OrderedDict[int, SavedState] = OrderedDict()
        self._orphan_seq = 0
        self.swaps = 0
        self.restored = 0

    @property
    def saved_bytes(self) -> int:
        return sum(s.size for s in self.owned.values()) + sum(s.size for s in self.orphans.values())

    def activate(self, client: str, tokens: list[int]) -> None:
        """Make the context hold `client`'s state before it runs a job with prompt `tokens`."""
        if self.active == client:
            return
        self.swaps += 1
        outgoing = self.model.save_state()
        if outgoing is not None:
            if self.active is not None and self.active_present:
                self.owned[self.active] = outgoing
            elif len(outgoing.tokens) >= MIN_KEPT_TOKENS:
                self._orphan_seq += 1
                self.orphans[self._orphan_seq] = outgoing
                while len(self.orphans) > MAX_ORPHANS:
                    self.orphans.popitem(last=False)
        mine = self.owned.pop(client, None)
        if mine is None:
            # A new client: start from whatever shares the longest prefix with its prompt.
            here = self.model.common_prefix(tokens)
            best_key, best = None, here
            for key, state in self.orphans.items():
                shared = _common(state.tokens, tokens)
                if shared > best:
                    best_key, best = key, shared
            if best_key is not None:
                mine = self.orphans.pop(best_key)
        if mine is not None:
            if self.model.restore_state(mine):
                self.restored += 1
            else:
                log.warning("a saved KV state could not be restored; that prompt is read again")
        self.active, self.active_present = client, True
        self._trim()

    def client_left(self, client: str) -> None:
        self.owned.pop(client, None)
        if self.active == client:
            self.active_present = False

    def _trim(self) -> None:
        while self.saved_bytes > self.limit_bytes and (self.orphans or self.owned):
            if self.orphans:
                self.orphans.popitem(last=False)
            else:
                self.owned.popitem(last=False)

    def describe(self) -> dict[str, object]:
        return {
            "active": self.active,
            "owned": {k: len(v.tokens) for k, v in self.owned.items()},
            "orphans": [len(v.tokens) for v in self.orphans.values()],
            "saved_bytes": self.saved_bytes,
            "swaps": self.swaps,
            "restored": self.restored,
        }
