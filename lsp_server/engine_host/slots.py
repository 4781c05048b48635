"""Per-client KV-cache slots on one llama.cpp context.

The weights are loaded once; each client (an editor window's language server, the git
hook) keeps its own prompt state. The context holds one client's state at a time; when
another client's request comes, the state in the context is written out (llama.cpp's
per-sequence state files) and that client's own state is read back in, so typing in one
window never evicts another window's cache, as llama-server's slot save/restore does.
A state whose client has gone is kept a little longer, unowned: the next hook run starts
with the same instructions, and finds them evaluated.

The states wait in files in a private directory, not in the engine's memory: a state is
the prompt's KV cells, about 11 KB a token on the embedded model and 50-100 KB a token on
a 7B one, so a few windows with long prompts would otherwise add hundreds of MB to the
engine for prompts that sit idle. A file that was just written is still in the page cache
when it is read back (the kernel may drop it under memory pressure, where anonymous memory
would have to go to swap). The directory holds the prompts' KV cells, which encode code,
so it is 0700 and emptied when the engine starts and stops.

The total is bounded: the states are dropped least recently used first (unowned before
owned) beyond `limit_bytes`.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

MIN_KEPT_TOKENS = 32  # a shorter orphaned prompt is not worth a copy
MAX_ORPHANS = 2
DEFAULT_LIMIT_BYTES = 512 << 20


@dataclass
class SavedState:
    """One sequence's KV cells, written out of the context to `path`, and the tokens they hold."""

    tokens: list[int]
    path: Path
    size: int

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class StatefulModel(Protocol):
    def common_prefix(self, tokens: list[int]) -> int: ...
    def save_state(self, path: Path) -> SavedState | None: ...  # None when the context holds no tokens
    def restore_state(self, saved: SavedState) -> bool: ...


def _common(a: list[int], b: list[int]) -> int:
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit


class Slots:
    """Which client's state is in the context, and the others' states in files."""

    def __init__(self, model: StatefulModel, directory: Path, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.model = model
        self.directory = directory
        self.limit_bytes = limit_bytes
        self.active: str | None = None  # the client whose state the context holds
        self.active_present = False  # ... and whether that client is still connected
        self.owned: OrderedDict[str, SavedState] = OrderedDict()
        self.orphans: OrderedDict[int, SavedState] = OrderedDict()
        self._orphan_seq = 0
        self._files = itertools.count(1)
        self.swaps = 0
        self.restored = 0
        empty_directory(directory)

    @property
    def saved_bytes(self) -> int:
        return sum(s.size for s in self.owned.values()) + sum(s.size for s in self.orphans.values())

    def activate(self, client: str, tokens: list[int]) -> None:
        """Make the context hold `client`'s state before it runs a job with prompt `tokens`."""
        if self.active == client:
            return
        self.swaps += 1
        self._keep(self.model.save_state(self.directory / f"state-{next(self._files)}.bin"))
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
            mine.discard()  # the context holds it now (or it was no good)
        self.active, self.active_present = client, True
        self._trim()

    def _keep(self, outgoing: SavedState | None) -> None:
        if outgoing is None:
            return
        if self.active is not None and self.active_present:
            self.owned[self.active] = outgoing
        elif len(outgoing.tokens) >= MIN_KEPT_TOKENS:
            self._orphan_seq += 1
            self.orphans[self._orphan_seq] = outgoing
            while len(self.orphans) > MAX_ORPHANS:
                self.orphans.popitem(last=False)[1].discard()
        else:
            outgoing.discard()

    def client_left(self, client: str) -> None:
        state = self.owned.pop(client, None)
        if state is not None:
            state.discard()
        if self.active == client:
            self.active_present = False

    def _trim(self) -> None:
        while self.saved_bytes > self.limit_bytes and (self.orphans or self.owned):
            if self.orphans:
                self.orphans.popitem(last=False)[1].discard()
            else:
                self.owned.popitem(last=False)[1].discard()

    def close(self) -> None:
        """Forget every saved state, and their directory."""
        self.owned.clear()
        self.orphans.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def describe(self) -> dict[str, object]:
        return {
            "active": self.active,
            "owned": {k: len(v.tokens) for k, v in self.owned.items()},
            "orphans": [len(v.tokens) for v in self.orphans.values()],
            "saved_bytes": self.saved_bytes,
            "swaps": self.swaps,
            "restored": self.restored,
        }


def empty_directory(directory: Path) -> None:
    """`directory` private (0700) and empty."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700)


def scratch_directory() -> Path:
    """A private directory for the states of a model driven outside an engine (tests, tools)."""
    return Path(tempfile.mkdtemp(prefix="ninetyten-states-"))
