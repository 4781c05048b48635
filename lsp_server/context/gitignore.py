"""`.gitignore` rules for folders that are not git repositories (where git cannot be asked).

The rules of gitignore(5): blank lines and `#` comments are skipped, `!` re-includes, a
trailing `/` matches directories only, a pattern with a slash elsewhere is anchored to the
directory of its `.gitignore`, one without matches a name at any depth below it, `**` spans
directories, the last matching rule wins, and a deeper `.gitignore` is read after (so over)
the shallower ones. A file inside an excluded directory cannot be re-included: the walker
never enters such a directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(pat: str, anchored: bool) -> str:
    out: list[str] = [] if anchored else ["(?:.*/)?"]
    i, n = 0, len(pat)
    while i < n:
        if pat.startswith("**", i) and (i == 0 or pat[i - 1] == "/"):
            if pat.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if i + 2 == n:
                out.append(".*")
                i += 2
                continue
        ch = pat[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            close = pat.find("]", i + 2 if pat.startswith(("[!", "[^"), i) else i + 1)
            if close < 0:
                out.append(re.escape(ch))
            else:
                body = pat[i + 1 : close]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = close
        elif ch == "\\" and i + 1 < n:
            out.append(re.escape(pat[i + 1]))
            i += 1
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def parse_line(line: str) -> Rule | None:
    line = line.rstrip("\n").rstrip("\r")
    # Trailing spaces are dropped unless the last one is escaped.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "
    line = stripped
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    elif line.startswith(("\\!", "\\#")):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    return Rule(re.compile(_translate(line, anchored) + r"\Z", re.DOTALL), negate, dir_only)


def parse(text: str) -> tuple[Rule, ...]:
    return tuple(rule for line in text.split("\n") if (rule := parse_line(line)) is not None)


class IgnoreStack:
    """The `.gitignore` files in force for one directory: (base dir, rules), shallowest first."""

    def __init__(self, layers: tuple[tuple[str, tuple[Rule, ...]], ...] = ()) -> None:
        self.layers = layers

    def push(self, base: str, rules: tuple[Rule, ...]) -> IgnoreStack:
        return IgnoreStack((*self.layers, (base, rules))) if rules else self

    def ignored(self, path: str, is_dir: bool) -> bool:
        """`path` is relative to the walk's root, '/'-separated."""
        verdict = False
        for base, rules in self.layers:
            if base:
                if not path.startswith(base + "/"):
                    continue
                rel = path[len(base) + 1 :]
            else:
                rel = path
            for rule in rules:
                if rule.dir_only and not is_dir:
                    continue
                if rule.regex.match(rel):
                    verdict = not rule.negate
        return verdict
