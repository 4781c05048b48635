"""Repository context for a cursor: which snippets, in which order, within a token budget.

Candidates, from the document's own structure outwards:

1. `import`: definitions of the names the file imports (Continue's "imports" context),
2. `class`: the enclosing class's other members, when they are far enough from the cursor
   not to be in the prompt's window already; for a Go method or a C++ `A::f` body, the
   receiver type's outline from the index,
3. `base`: the outlines of that class's base classes,
4. `usage`: definitions of other names used near the cursor (in the spirit of Continue's
   "root path" context, by name),
5. `similar`: the workspace chunks most similar to the text around the cursor (Jaccard over
   identifiers; llama.vim picks its ring chunks this way),
6. `call`: when the cursor is in an argument list, other lines of the workspace that call the
   same function (calls.py): the arguments it is usually given.

Which candidates fit the budget is decided by relevance (other calls of the function at the
cursor first, then imported names used near the cursor, then the class, its bases, other nearby
names, the file's other imports, similar chunks). Where they are placed is decided by
stability: the groups above in that order, and inside a group by import order or by path and
line, never by score. A file's imports change rarely and come first; what depends on the text
around the cursor comes last. So consecutive keystrokes give the same context (the identifier
being typed is ignored), and when the cursor moves the context's beginning usually stays the
same: llama.cpp re-uses the KV cache for the longest common prefix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lsp_server.context.calls import CallSite, call_sites, callee_at
from lsp_server.context.cursor import CursorScope, cursor_line_prefix, scope_at
from lsp_server.context.documents import ClassScope, DocumentCache
from lsp_server.context.entries import DefinitionRef
from lsp_server.context.index import WorkspaceIndex
from lsp_server.context.resolve import by_name, resolve_import
from lsp_server.context.snippets import (
    ContextBundle,
    ContextSnippet,
    Gate,
    SnippetKind,
    SourceLines,
    Withheld,
    chunk_text,
    definition_text,
    stub,
)
from lsp_server.context.tokens import KeyArray, text_keys
from lsp_server.token_estimate import estimate_tokens

_GROUP = {"import": 0, "class": 1, "base": 2, "usage": 3, "similar": 4, "call": 5}
# Candidates that did not fit before the filling stops looking for smaller ones.
MAX_MISFITS = 6


@dataclass(frozen=True)
class ContextOptions:
    budget_tokens: int = 512
    max_usages: int = 8
    max_similar: int = 3
    max_calls: int = 5
    min_similarity: float = 0.1
    # Members of the enclosing class this close to the cursor are in the prompt's own window.
    class_window_lines: int = 60
    max_class_members: int = 40
    file_header_tokens: int = 8  # what the prompt spends to name a file (separator + path)
    count_tokens: Callable[[str], int] = field(default=estimate_tokens)


@dataclass
class _Candidate:
    kind: SnippetKind
    priority: tuple[float, ...]
    placement: tuple[object, ...]
    root: str
    path: str
    start: int
    end: int
    symbol: str | None
    render: Callable[[], str | None]
    score: float = 0.0


def _definition_candidate(
    index: WorkspaceIndex,
    sources: SourceLines,
    d: DefinitionRef,
    kind: SnippetKind,
    priority: tuple[float, ...],
    placement: tuple[object, ...],
    options: ContextOptions,
) -> _Candidate:
    root = index.roots[d.entry.root]

    def render() -> str | None:
        # Consecutive keystrokes render the same definitions: keep them with the file's lines.
        key = (d.index, options.max_class_members)
        hit, text = sources.rendered(root, d.entry, key)
        if hit:
            return text
        lines = sources.for_entry(root, d.entry)
        if lines is None:
            return None  # changed on disk since indexed: the index will catch up
        text = definition_text(lines, d, options.max_class_members) or None
        sources.remember(root, d.entry, key, text)
        return text

    return _Candidate(kind, priority, placement, str(root), d.entry.path, d.line, d.end_line, d.qualified_name, render)


def _class_text(scope: ClassScope, language: str, far: list[int]) -> str:
    members = [stub(sig, d.kind, language) for i, (d, sig) in enumerate(scope.members) if i in far]
    if language == "python":
        return "\n".join([scope.header, *members])
    indent = scope.header[: len(scope.header) - len(scope.header.lstrip())]
    return "\n".join([scope.header + " {", *members, indent + "}"])


def _key(d: DefinitionRef) -> tuple[int, str, int]:
    return d.entry.root, d.entry.path, d.line


def gather_context(
    index: WorkspaceIndex,
    documents: DocumentCache,
    sources: SourceLines,
    path: str | Path,
    text: str,
    line: int,
    character: int,
    options: ContextOptions | None = None,
    gate: Gate | None = None,
) -> ContextBundle:
    """Context snippets for a cursor in a document (`path` absolute, `text` the editor's current
    text, `line`/`character` 0-based in code points). `gate` (path, text) -> reason keeps a
    snippet out (for a remote tier): it is listed in `withheld`, without its text."""
    options = options or ContextOptions()
    located = index.locate(path)
    root, rel = located if located is not None else (None, None)
    current = index.file(root, rel) if root is not None and rel is not None else None
    current_id = current.file_id if current is not None else None
    doc = documents.get(str(path), text)
    candidates: list[_Candidate] = []
    seen: set[tuple[int, str, int]] = set()
    if doc is not None:
        scope = scope_at(doc, line, character)
        candidates += _structural(index, sources, scope, doc.language, root, rel, current_id, str(path), options, seen)
        window_keys = scope.window_keys
    else:
        lines = text.split("\n")
        window_keys = text_keys("\n".join(lines[max(0, line - 40) : line + 10]))
    candidates += _similar(index, sources, window_keys, current_id, options, seen)
    candidates += _calls(index, sources, cursor_line_prefix(text, line, character), rel, current_id, options)
    return _fill(candidates, options, gate)


def _calls(
    index: WorkspaceIndex,
    sources: SourceLines,
    line_prefix: str,
    rel: str | None,
    current_id: int | None,
    options: ContextOptions,
) -> list[_Candidate]:
    """Other calls of the function at the cursor, one candidate per file (its lines in order)."""
    name = callee_at(line_prefix) if options.max_calls > 0 else None
    if name is None:
        return []
    sites = call_sites(index, sources, name, exclude_file=current_id, near=rel, limit=options.max_calls)
    by_file: dict[tuple[int, str], list[CallSite]] = {}
    for site in sites:
        by_file.setdefault((site.entry.root, site.entry.path), []).append(site)
    out = []
    for rank, group in enumerate(by_file.values()):
        text = "\n".join(site.text for site in group)

        def render(text: str = text) -> str | None:
            return text

        first = group[0]
        out.append(
            _Candidate(
                "call",
                (0, -1, rank),
                (rank,),
                str(first.root),
                first.entry.path,
                first.line,
                group[-1].line,
                name,
                render,
            )
        )
    return out


def _structural(
    index: WorkspaceIndex,
    sources: SourceLines,
    scope: CursorScope,
    language: str,
    root: int | None,
    rel: str | None,
    current_id: int | None,
    path: str,
    options: ContextOptions,
    seen: set[tuple[int, str, int]],
) -> list[_Candidate]:
    out: list[_Candidate] = []
    near = {name: i for i, name in enumerate(scope.names)}
    imported: dict[str, DefinitionRef] = {}
    module_locals: dict[str, list[str]] = {}
    for base, attr in scope.qualified:
        module_locals.setdefault(base, []).append(attr)
    # 1. imports, in the file's order
    for i, imp in enumerate(scope.imports):
        local_module = imp.alias or (
            imp.module.split(".")[0] if language == "python" else imp.module.rstrip("/").split("/")[-1]
        )
        wanted = module_locals.get(local_module, ()) if not imp.names else None
        for j, (local, d) in enumerate(resolve_import(index, imp, language, root=root, importer=rel, wanted=wanted)):
            if _key(d) in seen or d.entry.file_id == current_id:
                continue
            seen.add(_key(d))
            imported[local] = d
            rank = near.get(local, near.get(d.name))
            priority = (0, rank) if rank is not None else (4, i, j)
            out.append(_definition_candidate(index, sources, d, "import", priority, (i, j), options))
    # 2. the enclosing class (or the receiver type of a method defined outside it)
    enclosing = scope.enclosing
    if enclosing is not None:
        far = [i for i, (d, _) in enumerate(enclosing.members) if abs(d.line - scope.line) > options.class_window_lines]
        if far:
            text = _class_text(enclosing, language, far[: options.max_class_members])

            def class_text(text: str = text) -> str | None:
                return text

            out.append(
                _Candidate(
                    "class",
                    (1,),
                    (0,),
                    str(index.roots[root]) if root is not None else "",
                    rel or path,
                    enclosing.line,
                    enclosing.line,
                    enclosing.name,
                    class_text,
                )
            )
    owner_name = enclosing.name if enclosing is not None else scope.owner
    if scope.owner is not None and enclosing is None:
        owner = imported.get(scope.owner) or by_name(index, scope.owner, importer=rel, root=root)
        if owner is not None and _key(owner) not in seen:
            seen.add(_key(owner))
            out.append(_definition_candidate(index, sources, owner, "class", (1,), (1,), options))
    # 3. base classes
    for i, base in enumerate(enclosing.bases if enclosing is not None else ()):
        found = imported.get(base) or by_name(index, base, importer=rel, root=root, exclude_file=current_id)
        if found is not None and _key(found) not in seen:
            seen.add(_key(found))
            out.append(_definition_candidate(index, sources, found, "base", (2, i), (i,), options))
    # 4. other names used near the cursor
    member_names = {d.name for d, _ in enclosing.members} if enclosing is not None else set()
    usages = 0
    for rank, name in enumerate(scope.names):
        if usages >= options.max_usages:
            break
        # `x.name` without knowing x's type would be a guess among every class's `name`.
        if name in imported or name in member_names or name == owner_name or name in scope.attributes:
            continue
        used = by_name(index, name, importer=rel, root=root, exclude_file=current_id)
        if used is None or _key(used) in seen:
            continue
        seen.add(_key(used))
        usages += 1
        out.append(
            _definition_candidate(
                index, sources, used, "usage", (3, rank), (used.entry.root, used.entry.path, used.line), options
            )
        )
    return out


def _similar(
    index: WorkspaceIndex,
    sources: SourceLines,
    window_keys: KeyArray,
    current_id: int | None,
    options: ContextOptions,
    seen: set[tuple[int, str, int]],
) -> list[_Candidate]:
    if options.max_similar <= 0:
        return []
    exclude = [current_id] if current_id is not None else []
    out: list[_Candidate] = []
    for score, entry, start, end in index.similar_chunks(window_keys, exclude=exclude, limit=options.max_similar * 2):
        if score < options.min_similarity or len(out) >= options.max_similar:
            break
        if any(r == entry.root and p == entry.path and start <= ln < end for r, p, ln in seen):
            continue  # it holds a definition already chosen
        root = index.roots[entry.root]

        def render(root: Path = root, entry=entry, start: int = start, end: int = end) -> str | None:
            lines = sources.for_entry(root, entry)
            return chunk_text(lines, start, end) if lines is not None else None

        out.append(
            _Candidate(
                "similar",
                (5, -score),
                (entry.root, entry.path, start),
                str(root),
                entry.path,
                start,
                end - 1,
                None,
                render,
                score,
            )
        )
    return out


def _fill(candidates: list[_Candidate], options: ContextOptions, gate: Gate | None) -> ContextBundle:
    budget = options.budget_tokens
    used = 0
    files: set[str] = set()
    taken: list[tuple[_Candidate, str, int]] = []
    withheld: list[Withheld] = []
    misfits = 0
    for cand in sorted(candidates, key=lambda c: c.priority):
        if used >= budget or misfits >= MAX_MISFITS:
            break
        text = cand.render()
        if not text or not text.strip():
            continue
        if gate is not None and (reason := gate(cand.path, text)) is not None:
            withheld.append(Withheld(cand.path, cand.kind, reason))
            continue
        cost = options.count_tokens(text) + 1 + (0 if cand.path in files else options.file_header_tokens)
        if used + cost > budget:
            misfits += 1
            continue  # a smaller candidate further down may still fit
        used += cost
        files.add(cand.path)
        taken.append((cand, text, cost))
    taken.sort(key=lambda item: (_GROUP[item[0].kind], item[0].placement))
    snippets = tuple(
        ContextSnippet(c.root, c.path, c.start, c.end, c.kind, c.symbol, text, cost, c.score) for c, text, cost in taken
    )
    return ContextBundle(snippets, tuple(withheld), budget)
