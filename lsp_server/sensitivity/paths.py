"""Path globs (gitignore-style) whose files are sensitive whatever they contain."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# --- path globs ---------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """gitignore-style glob -> regex over a workspace-relative POSIX path.

    `*` and `?` stay within one segment, `**/` is any number of directories (or none),
    a trailing `/**` is everything inside; a pattern with no slash (other than a trailing
    one) matches at any depth; a leading `/` anchors at the root; a match on a directory
    covers everything under it."""
    pat = pattern.strip()
    dir_only = pat.endswith("/")
    pat = pat.strip("/") if dir_only else pat
    anchored = pat.startswith("/") or "/" in pat.rstrip("/")
    pat = pat.lstrip("/")
    out: list[str] = [] if anchored else ["(?:.*/)?"]
    i, n = 0, len(pat)
    while i < n:
        if pat.startswith("**", i):
            at_start = i == 0 or pat[i - 1] == "/"
            if at_start and pat.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if at_start and i + 2 == n:
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")  # `a**b` is two stars inside a segment
            i += 2
            continue
        ch = pat[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            close = pat.find("]", i + 2)
            if close < 0:
                out.append(re.escape(ch))
            else:
                body = pat[i + 1 : close]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = close
        elif ch == "\\" and i + 1 < n:
            out.append(re.escape(pat[i + 1]))
            i += 1
        else:
            out.append(re.escape(ch))
        i += 1
    suffix = "/.*" if dir_only else "(?:/.*)?"
    return re.compile("^" + "".join(out) + suffix + "$", re.DOTALL)


def _normalize_path(path: str) -> tuple[str, bool]:
    """POSIX form of a path and whether it is absolute (or escapes the workspace)."""
    p = path.replace("\\", "/")
    absolute = p.startswith(("/", "../")) or bool(re.match(r"^[A-Za-z]:/", p))
    p = re.sub(r"^[A-Za-z]:/", "/", p)
    p = re.sub(r"/{2,}", "/", p)
    parts = [s for s in p.split("/") if s not in ("", ".")]
    return "/".join(parts), absolute


@dataclass(frozen=True)
class _Glob:
    text: str
    regex: re.Pattern[str]
    negated: bool


def compile_globs(globs: Sequence[str]) -> tuple[_Glob, ...]:
    out = []
    for g in globs:
        g = g.strip()
        if not g or g.startswith("#"):
            continue
        negated = g.startswith("!")
        out.append(_Glob(g, glob_to_regex(g[1:] if negated else g), negated))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _compiled_globs(globs: tuple[str, ...]) -> tuple[_Glob, ...]:
    return compile_globs(globs)


def match_compiled(path: str | None, globs: tuple[_Glob, ...]) -> str | None:
    if not globs or not path:
        return None
    normalized, absolute = _normalize_path(path)
    if not normalized:
        return None
    parts = normalized.split("/")
    # Absolute paths: the workspace root is unknown, so try every tail.
    candidates = ["/".join(parts[i:]) for i in range(len(parts))] if absolute else [normalized]
    matched: str | None = None
    for glob in globs:
        if any(glob.regex.match(c) for c in candidates):
            matched = None if glob.negated else glob.text
    return matched


def first_matching_glob(path: str | None, globs: Sequence[str]) -> str | None:
    """The glob (gitignore semantics, `!glob` re-includes) that matches a path, or None."""
    return match_compiled(path, _compiled_globs(tuple(globs)))
