"""Identifier tokens of code, hashed, for the similarity search and for names near the cursor.

Similarity is Jaccard over sets of identifiers, as Continue ranks its snippets and in the
spirit of llama.vim's chunk picking, but computed with an inverted index so that it covers
the whole workspace. Identifiers are hashed with CRC-32 (stable across processes: the indexer
runs in another one) into 32-bit keys; two identifiers sharing a key in a workspace is rare
and only nudges a similarity score.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lsp_server.context.identifiers import identifiers, key

KeyArray = npt.NDArray[np.uint32]
EMPTY_KEYS: KeyArray = np.zeros(0, dtype=np.uint32)


def keys(tokens: set[str] | frozenset[str] | list[str]) -> KeyArray:
    """Sorted unique hashed keys of some tokens."""
    if not tokens:
        return EMPTY_KEYS
    return np.unique(np.fromiter((key(token) for token in set(tokens)), dtype=np.uint32))


def text_keys(text: str) -> KeyArray:
    return keys(set(identifiers(text)))
