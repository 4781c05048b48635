"""Cut parsed diffs into chunks that fit a model's context (the map step of map-reduce).

Streaming: `chunk_diff` consumes `FileChange`s one at a time and yields a chunk as soon as it
is full, so memory holds one file plus one chunk. Rules, in order of preference:
  1. small files are packed together up to the budget;
  2. a file that fits no chunk is split at hunk boundaries (each part repeats its file header);
  3. a hunk that fits no chunk is split at line boundaries into smaller valid hunks whose
     `@@` headers carry adjusted line numbers.
A chunk is over budget only when it holds a single line (with its headers) that alone is.
Summarized-only files never go into a chunk: `summarize_skipped` names them instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from lsp_server.explain.diff.model import FileChange, Hunk, format_hunk_header
from lsp_server.token_estimate import estimate_tokens

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class DiffChunk:
    files: tuple[str, ...]  # paths in this chunk, in order (a split file appears in each part)
    text: str  # unified-diff text: file headers + hunks
    index: int  # 0-based
    total: int | None  # None while streaming; `with_totals` fills it
    est_tokens: int  # count_tokens(text)
    # Every path the chunk's text holds, old and new names of renames and copies: routing
    # judges each one (a rename out of `secrets/` is still from `secrets/`).
    paths: tuple[str, ...] = ()


def _quote(path: str) -> str:
    """Quote a header path like git does for control characters, quotes and backslashes, but
    leave non-ASCII readable (the text is for a model, not for `git apply` on another locale)."""
    if not any(c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return path
    escapes = {"\t": "\\t", "\n": "\\n", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
    body = "".join(escapes.get(c, f"\\{ord(c):03o}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in path)
    return f'"{body}"'


def file_header(change: FileChange) -> str:
    """A git-style header for one file, without the noisy `index` line."""
    old = change.old_path if change.old_path is not None else change.new_path or ""
    new = change.new_path if change.new_path is not None else change.old_path or ""
    lines = [f"diff --git {_quote('a/' + old)} {_quote('b/' + new)}"]
    if change.status == "added" and change.new_mode:
        lines.append(f"new file mode {change.new_mode}")
    elif change.status == "deleted" and change.old_mode:
        lines.append(f"deleted file mode {change.old_mode}")
    elif change.old_mode and change.new_mode and change.old_mode != change.new_mode:
        lines += [f"old mode {change.old_mode}", f"new mode {change.new_mode}"]
    if change.status in ("renamed", "copied"):
        verb = "rename" if change.status == "renamed" else "copy"
        if change.similarity is not None:
            lines.append(f"similarity index {change.similarity}%")
        lines += [f"{verb} from {_quote(old)}", f"{verb} to {_quote(new)}"]
    if change.hunks:
        lines.append("--- " + ("/dev/null" if change.old_path is None else _quote("a/" + old)))
        lines.append("+++ " + ("/dev/null" if change.new_path is None else _quote("b/" + new)))
    return "\n".join(lines) + "\n"


class _Packer:
    """The chunk being filled."""

    def __init__(self, max_tokens: int, count: TokenCounter) -> None:
        self.max_tokens = max_tokens
        self.count = count
        self.index = 0
        self._reset()

    def _reset(self) -> None:
        self.parts: list[str] = []
        self.used = 0
        self.files: list[str] = []
        self.paths: dict[str, None] = {}
        self.open: FileChange | None = None  # the file whose header is already in this chunk

    @property
    def room(self) -> int:
        return self.max_tokens - self.used

    @property
    def empty(self) -> bool:
        return not self.parts

    def add(self, text: str, tokens: int) -> None:
        self.parts.append(text)
        self.used += tokens

    def open_file(self, change: FileChange, header: str, tokens: int) -> None:
        if self.open is not change:
            self.add(header, tokens)
            self.open = change
            if not self.files or self.files[-1] != change.path:
                self.files.append(change.path)
            self.paths.update((path, None) for path in (change.old_path, change.new_path) if path)

    def flush(self) -> Iterator[DiffChunk]:
        if self.parts:
            text = "".join(self.parts)
            yield DiffChunk(tuple(self.files), text, self.index, None, self.count(text), tuple(self.paths))
            self.index += 1
            self._reset()


def _units(hunk: Hunk) -> list[tuple[str, int, int]]:
    """The hunk's lines as (text, old lines, new lines); a `\\ No newline` marker stays with its line."""
    units: list[tuple[str, int, int]] = []
    for line in hunk.lines():
        c = line[:1]
        if c == "\\" and units:
            text, old, new = units[-1]
            units[-1] = (text + line, old, new)
        else:
            units.append((line, int(c in " -"), int(c in " +")))
    return units


def _split_hunk(p: _Packer, change: FileChange, header: str, h_tok: int, hunk: Hunk) -> Iterator[DiffChunk]:
    """Place a hunk too big for one chunk as consecutive smaller hunks, filling chunks in turn."""
    count = p.count
    units = _units(hunk)
    u_tok = [count(u[0]) for u in units]
    section = hunk.section
    # Budget each piece's `@@` line at its largest possible numbers; real ones are never longer.
    far_old, far_new = hunk.old_start + hunk.old_len, hunk.new_start + hunk.new_len
    hh_tok = count(format_hunk_header(far_old, far_old, far_new, far_new, section) + "\n")
    next_old = hunk.old_start if hunk.old_len else hunk.old_start + 1
    next_new = hunk.new_start if hunk.new_len else hunk.new_start + 1
    i = 0
    while i < len(units):
        room = p.room - hh_tok - (0 if p.open is change else h_tok)
        j, tok = i, 0
        while j < len(units) and tok + u_tok[j] <= room:
            tok += u_tok[j]
            j += 1
        if j == i:
            if not p.empty:
                yield from p.flush()
                continue
            j, tok = i + 1, u_tok[i]  # one line bigger than a whole chunk: it goes alone
        piece = units[i:j]
        old = sum(u[1] for u in piece)
        new = sum(u[2] for u in piece)
        # Unified-diff convention: an empty side names the line *before* the change.
        hh = format_hunk_header(next_old if old else next_old - 1, old, next_new if new else next_new - 1, new, section)
        p.open_file(change, header, h_tok)
        p.add(hh + "\n" + "".join(u[0] for u in piece), hh_tok + tok)
        next_old += old
        next_new += new
        i = j
        if i < len(units):
            yield from p.flush()


def chunk_diff(
    changes: Iterable[FileChange], max_tokens: int, *, count_tokens: TokenCounter = estimate_tokens
) -> Iterator[DiffChunk]:
    """Yield chunks of at most `max_tokens` (by `count_tokens`) covering every non-summarized
    file, in order; every changed line lands in exactly one chunk. `total` is None: wrap the
    result in `with_totals` when the count is needed up front (that holds all chunks)."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
    p = _Packer(max_tokens, count_tokens)
    for change in changes:
        if change.summarized_only:
            continue
        header = file_header(change)
        h_tok = count_tokens(header)
        hunk_tok = [count_tokens(h.header + "\n") + count_tokens(h.text) for h in change.hunks]
        whole = h_tok + sum(hunk_tok)
        if whole > p.room and (whole <= max_tokens or not change.hunks):
            yield from p.flush()  # fits a fresh chunk: never split a file that need not be
        if whole <= p.room or not change.hunks:
            p.open_file(change, header, h_tok)
            for hunk, tok in zip(change.hunks, hunk_tok, strict=True):
                p.add(hunk.header + "\n" + hunk.text, tok)
            continue
        # Too big for any chunk: start it fresh, then go hunk by hunk.
        yield from p.flush()
        for hunk, tok in zip(change.hunks, hunk_tok, strict=True):
            need = tok + (0 if p.open is change else h_tok)
            if need > p.room and h_tok + tok <= max_tokens:
                yield from p.flush()
                need = tok + h_tok
            if need <= p.room or not hunk.text:
                p.open_file(change, header, h_tok)
                p.add(hunk.header + "\n" + hunk.text, tok)
            else:
                yield from _split_hunk(p, change, header, h_tok, hunk)
    yield from p.flush()


def with_totals(chunks: Iterable[DiffChunk]) -> list[DiffChunk]:
    """Materialize chunks with `total` filled in (holds them all in memory)."""
    items = list(chunks)
    return [replace(c, total=len(items)) for c in items]


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class DiffStats:
    files: int
    added: int
    removed: int
    by_status: Mapping[str, int]
    summarized: int  # files named but not sent to a model

    def __str__(self) -> str:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.by_status.items()))
        text = f"{self.files} file{'s' if self.files != 1 else ''} changed, +{self.added} -{self.removed}"
        if statuses:
            text += f" ({statuses})"
        if self.summarized:
            text += f"; {self.summarized} summarized only"
        return text


def skipped_line(change: FileChange) -> str:
    """'package-lock.json (lock file, +120 -80)'."""
    name = f"{change.old_path} -> {change.new_path}" if change.status in ("renamed", "copied") else change.path
    bits = [change.summary_reason or "summarized"]
    if change.status != "modified":
        bits.append(change.status)
    if not change.binary:
        bits.append(f"+{change.added} -{change.removed}")
    return f"{name} ({', '.join(bits)})"


class DiffTally:
    """Stats and skipped-file lines gathered while changes stream into `chunk_diff`:

    tally = DiffTally()
    for chunk in chunk_diff(tally.watch(iter_parse_diff(stream)), budget): ...
    tally.stats, tally.skipped
    """

    def __init__(self) -> None:
        self.files = self.added = self.removed = self.summarized = 0
        self.by_status: Counter[str] = Counter()
        self.skipped: list[str] = []

    def add(self, change: FileChange) -> None:
        self.files += 1
        self.added += change.added
        self.removed += change.removed
        self.by_status[change.status] += 1
        if change.summarized_only:
            self.summarized += 1
            self.skipped.append(skipped_line(change))

    def watch(self, changes: Iterable[FileChange]) -> Iterator[FileChange]:
        for change in changes:
            self.add(change)
            yield change

    @property
    def stats(self) -> DiffStats:
        return DiffStats(self.files, self.added, self.removed, dict(self.by_status), self.summarized)


def diff_stats(changes: Iterable[FileChange]) -> DiffStats:
    tally = DiffTally()
    for change in changes:
        tally.add(change)
    return tally.stats


def summarize_skipped(changes: Iterable[FileChange]) -> list[str]:
    """One line per summarized-only file: 'package-lock.json (lock file, +120 -80)'."""
    return [skipped_line(c) for c in changes if c.summarized_only]
