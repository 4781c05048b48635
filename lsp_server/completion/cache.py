"""Recent suggestions, found again when the user re-requests or types through them.

A suggestion is stored with the text around the cursor it was made for. A later
request hits when the text after the cursor is unchanged and the text before it
is the old text plus some characters that the suggestion itself starts with (the
user typed what was shown): the rest of the suggestion is still the answer, and
no model is asked. Keys are hashes and lengths, so memory does not grow with the
document size.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class CursorText:
    """A document split at the cursor."""

    uri: str
    before: str
    after: str

    @classmethod
    def of(cls, uri: str, text: str, line: int, character: int) -> "CursorText":
        lines = text.split("\n")
        line = min(max(line, 0), len(lines) - 1)
        offset = sum(len(row) + 1 for row in lines[:line]) + min(max(character, 0), len(lines[line]))
        return cls(uri, text[:offset], text[offset:])


@dataclass(frozen=True)
class CacheHit:
    text: str  # what is left of the suggestion at the new cursor
    typed: int  # characters typed through since it was made
    origin: str  # request id of the generation that produced it
    alternatives: tuple[str, ...] = ()  # what is left of the other suggestions that still fit
    explored: bool = False  # alternatives were looked for (an explicit request), found or not


@dataclass(frozen=True)
class _Entry:
    before_len: int
    before_hash: int
    after_hash: int
    tail: str  # the last characters before the cursor: a cheap first check before hashing
    text: str
    origin: str
    alternatives: tuple[str, ...] = ()
    explored: bool = False


TAIL = 64


class CompletionCache:
    """A small LRU of suggestions per server, looked up newest first."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, int, int], _Entry] = OrderedDict()
        self._by_uri: dict[str, list[tuple[str, int, int]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def put(
        self, at: CursorText, text: str, origin: str = "", alternatives: tuple[str, ...] = (), explored: bool = False
    ) -> None:
        if not text.strip():
            return
        key = (at.uri, len(at.before), hash(at.before))
        if self._entries.pop(key, None) is not None:
            # Re-asked at the same place: drop the old index key too, or the index grows
            # with every repeat and eviction (one key each) never catches up.
            self._forget(key)
        self._entries[key] = _Entry(
            len(at.before), key[2], hash(at.after), at.before[-TAIL:], text, origin, alternatives, explored
        )
        self._by_uri.setdefault(at.uri, []).append(key)
        while len(self._entries) > self.size:
            old, _ = self._entries.popitem(last=False)
            self._forget(old)

    def _forget(self, key: tuple[str, int, int]) -> None:
        keys = self._by_uri.get(key[0])
        if keys is not None:
            try:
                keys.remove(key)
            except ValueError:
                pass
            if not keys:
                del self._by_uri[key[0]]

    def get(self, at: CursorText) -> CacheHit | None:
        keys = self._by_uri.get(at.uri)
        if not keys:
            return None
        after_hash: int | None = None
        for key in reversed(keys):
            entry = self._entries.get(key)
            if entry is None or entry.before_len > len(at.before):
                continue
            typed = at.before[entry.before_len :]
            # The rest of every suggestion the typed text fits (the best one first): accepting
            # a word of an alternative keeps that alternative's rest.
            fitting = [
                text[len(typed) :]
                for text in dict.fromkeys((entry.text, *entry.alternatives))
                if text.startswith(typed) and text[len(typed) :].strip()
            ]
            if not fitting:
                continue
            if not at.before[: entry.before_len].endswith(entry.tail):
                continue
            if after_hash is None:
                after_hash = hash(at.after)
            if entry.after_hash != after_hash or hash(at.before[: entry.before_len]) != entry.before_hash:
                continue
            self._entries.move_to_end(key)
            return CacheHit(fitting[0], len(typed), entry.origin, tuple(fitting[1:]), entry.explored)
        return None

    def clear(self, uri: str | None = None) -> None:
        if uri is None:
            self._entries.clear()
            self._by_uri.clear()
            return
        for key in self._by_uri.pop(uri, []):
            self._entries.pop(key, None)
