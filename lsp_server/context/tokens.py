"""Identifier tokens of code, hashed, for the similarity search and for names near the cursor.

Similarity is Jaccard over sets of identifiers, as Continue ranks its snippets and in the
spirit of llama.vim's chunk picking, but computed with an inverted index so that it covers
the whole workspace. Identifiers are hashed with CRC-32 (stable across processes: the indexer
runs in another one) into 32-bit keys; two identifiers sharing a key in a workspace is rare
and only nudges a similarity score.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import numpy.typing as npt

IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# Keywords and names so common in every language that they say nothing about which code is
# similar. Dropping them also keeps the inverted index small (they would be in every chunk).
STOPWORDS = frozenset(
    """
if else elif for while do return def class import from as in is not and or with try except finally
raise pass break continue lambda yield async await None True False self cls this super new delete
function var let const export default extends implements interface enum type typeof instanceof void
null undefined true false public private protected static final abstract override virtual package
func go defer chan map struct select switch case fallthrough range nil fn mut pub impl trait use mod
crate where match loop move ref unsafe extern int char float double long short unsigned signed bool
boolean byte string str auto register volatile sizeof typedef union include define ifdef ifndef endif
namespace template typename using std throw throws catch assert print len get set init main args
kwargs the to of is be it on at by an
""".split()
)

KeyArray = npt.NDArray[np.uint32]
EMPTY_KEYS: KeyArray = np.zeros(0, dtype=np.uint32)


def identifiers(text: str) -> list[str]:
    """Identifiers in order of appearance (with repeats), without stop words or 1-letter names."""
    return [tok for tok in IDENTIFIER.findall(text) if len(tok) > 1 and tok not in STOPWORDS]


def key(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


def keys(tokens: set[str] | frozenset[str] | list[str]) -> KeyArray:
    """Sorted unique hashed keys of some tokens."""
    if not tokens:
        return EMPTY_KEYS
    return np.unique(np.fromiter((zlib.crc32(t.encode("utf-8")) for t in set(tokens)), dtype=np.uint32))


def text_keys(text: str) -> KeyArray:
    return keys(set(identifiers(text)))


def jaccard(a: set[str], b: set[str]) -> float:
    """Shared identifiers over all identifiers of both (0 when both are empty)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0
