"""Identifiers in code text, without the words every language shares: what similarity and
the names near a cursor are made of. Pure Python, so that the git hook's facts can read
identifiers without loading numpy (tokens.py hashes them into numpy arrays for the index).
"""

from __future__ import annotations

import re
import zlib

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


def identifiers(text: str) -> list[str]:
    """Identifiers in order of appearance (with repeats), without stop words or 1-letter names."""
    return [tok for tok in IDENTIFIER.findall(text) if len(tok) > 1 and tok not in STOPWORDS]


def key(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))
