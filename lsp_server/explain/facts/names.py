"""What a commit subject names, and whether the diff has it.

What counts as a name: `backticked` text, paths and file names (`a/b.py`, `README.md`),
calls (`parse()`), dotted names (`Index.build`), and identifiers that cannot be plain words:
snake_case, camelCase, PascalCase with two humps or more, SCREAMING_CASE. Plain words are
not names ("parser", "Router"): a subject may describe without naming.
"""

from __future__ import annotations

import posixpath
import re

from lsp_server.explain.facts.facts import ChangeFacts

SUBJECT_MAX = 72
CONVENTIONAL = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)\s]{1,40})\))?(?P<bang>!)?:\s*(?P<rest>.*)$")
# Scopes that name an area, not a file or symbol.
GENERIC_SCOPES = frozenset(
    """
    deps deps-dev dev-deps ci docs build tests test release config core api cli ui lint types security perf style
    repo
    """.split()
)

_BACKTICK = re.compile(r"`([^`]+)`")
_PATHLIKE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+|[\w-]+(?:\.[\w-]+)*\.[A-Za-z][\w]{0,7})(?![\w/])")
_CALL = re.compile(r"\b([A-Za-z_][\w.]*)\(\)")
_DOTTED = re.compile(r"\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\b")
IDENT = re.compile(r"\b([A-Za-z_$][\w$]*)\b")
# Extensions that make `name.ext` a file rather than `Class.member`.
_FILE_EXT = re.compile(
    r"\.(?:py|pyi|pyx|md|rst|txt|adoc|js|jsx|mjs|cjs|ts|tsx|mts|cts|json|jsonc|toml|ya?ml|ini|cfg|conf|lock|go|mod|sum"
    r"|rs|java|kt|kts|scala|c|h|cc|cpp|cxx|hh|hpp|hxx|cs|rb|php|swift|m|mm|lua|sh|bash|zsh|ps1|pl|sql|html|htm|css|scss"
    r"|sass|less|vue|svelte|xml|svg|png|jpe?g|gif|ico|pdf|csv|tsv|env|example|sample|tmpl|j2|jinja|proto|graphql|gql"
    r"|gradle|properties|dockerfile|mk|cmake|bzl|tf|tfvars|nix|el|vim|ex|exs|erl|hs|ml|dart|zig|r|jl|ipynb|whl|gz|zip)$",
    re.I,
)


def is_code_name(word: str) -> bool:
    if "_" in word.strip("_") or word.startswith("__"):
        return any(c.isalpha() for c in word)
    if re.search(r"[a-z][A-Z]", word):  # camelCase, PascalCase with a second hump
        return True
    return False


def known_path(name: str, facts: ChangeFacts) -> bool:
    vocab = facts.vocabulary
    if name in vocab:
        return True
    lowered = name.lower()
    base = posixpath.basename(name.rstrip("/"))
    for f in facts.files:
        for path in (f.path, f.old_path):
            if not path:
                continue
            low = path.lower()
            if low == lowered or low.endswith("/" + lowered) or posixpath.basename(low) == base.lower():
                return True
            if lowered.rstrip("/") and ("/" + low).find("/" + lowered.rstrip("/") + "/") >= 0:
                return True  # a directory of a changed file
    return False


def named_things(subject: str) -> list[str]:
    """The files and symbols a subject line names (see the module docstring)."""
    found: list[str] = []
    rest = subject
    for m in _BACKTICK.finditer(subject):
        found.append(m.group(1).strip().rstrip("()"))
    rest = _BACKTICK.sub(" ", rest)
    for m in _PATHLIKE.finditer(rest):
        token = m.group(1)
        if looks_like_path(token):
            found.append(token)
    rest = _PATHLIKE.sub(lambda m: " " if looks_like_path(m.group(1)) else m.group(0), rest)
    for m in _CALL.finditer(rest):
        found.append(m.group(1))
    rest = _CALL.sub(" ", rest)
    for m in _DOTTED.finditer(rest):
        found.append(m.group(1))
    rest = _DOTTED.sub(" ", rest)
    for m in IDENT.finditer(rest):
        if is_code_name(m.group(1)):
            found.append(m.group(1))
    return list(dict.fromkeys(found))


def looks_like_path(token: str) -> bool:
    return "/" in token or bool(_FILE_EXT.search(token))


def known_symbol(name: str, facts: ChangeFacts) -> bool:
    vocab = facts.vocabulary
    if name in vocab:
        return True
    parts = [p for p in re.split(r"\.|::|#", name) if p]
    return bool(parts) and all(p in vocab for p in parts)


def ungrounded_names(subject: str, facts: ChangeFacts) -> list[str]:
    """The names in `subject` (a commit subject, conventional or not) that the diff lacks."""
    m = CONVENTIONAL.match(subject.strip())
    text = subject
    missing: list[str] = []
    if m:
        text = m["rest"]
        scope = m["scope"]
        if (
            scope
            and scope.lower() not in GENERIC_SCOPES
            and not known_path(scope, facts)
            and not known_symbol(scope, facts)
            and scope.lower() not in {w.lower() for w in facts.vocabulary}
        ):
            missing.append(scope)
    for name in named_things(text):
        if looks_like_path(name):
            if not known_path(name, facts):
                missing.append(name)
        elif not known_symbol(name, facts):
            missing.append(name)
    return list(dict.fromkeys(missing))
