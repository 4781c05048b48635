"""What the indexer keeps of one file: a compact record built from its outline and chunks.

Built in the background worker (`worker.py`) and sent to the server process, so everything
here is plain data that pickles small: names as strings, numbers packed in arrays. Signatures
are not kept: they are read back from the file when a snippet is made (`source_lines.py`),
which keeps the index of a 5,000-file repository in tens of megabytes.
"""

from __future__ import annotations

import os
import stat
from array import array
from dataclasses import dataclass

import numpy as np

from lsp_server.context.identifiers import IDENTIFIER, STOPWORDS, key
from lsp_server.context.imports import Import
from lsp_server.context.languages import CLASS_KINDS
from lsp_server.context.outline import Definition, FileOutline, outline

KINDS = (
    "function",
    "method",
    "class",
    "struct",
    "interface",
    "trait",
    "enum",
    "type",
    "field",
    "constant",
    "variable",
    "macro",
)
KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}

# Chunks for the similarity search follow definitions: a chunk starts at a definition when the
# current one has at least CHUNK_MIN_LINES, and is cut at CHUNK_MAX_LINES whatever happens.
CHUNK_MIN_LINES = 8
CHUNK_MAX_LINES = 40
MIN_CHUNK_KEYS = 3
MAX_DEFINITIONS = 4095  # definition refs pack the index in 12 bits; a file with more is a table
MAX_CHUNKS = 4095

BINARY_SNIFF_BYTES = 8192
# A line longer than this in a file whose lines are long on average: minified or generated.
MINIFIED_LINE_BYTES = 4096
MINIFIED_AVERAGE_BYTES = 300


@dataclass(frozen=True, slots=True)
class FileRecord:
    path: str  # workspace-folder-relative, '/'-separated
    language: str
    mtime_ns: int
    size: int
    line_count: int
    names: tuple[str, ...]
    parents: tuple[str | None, ...]
    # DEF_WORDS uint32 per definition: kind | header_lines << 8 | header_end_col << 16, first line,
    # last line, the header's start column (bytes)
    defs: bytes
    imports: tuple[Import, ...]  # kept only for files that re-export (`__init__.py`, `index.ts`)
    chunk_lines: bytes  # 2 uint32 per chunk: first line, end line (exclusive)
    chunk_sizes: bytes  # 1 uint32 per chunk: how many keys it has
    chunk_keys: bytes  # the chunks' sorted token keys, one after the other (uint32)

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_sizes) // 4


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: str  # "binary", "too large", "minified", "unreadable", "gone"
    mtime_ns: int = 0
    size: int = 0


DEF_WORDS = 4


def pack_definition(d: Definition, data: bytes) -> tuple[int, int, int, int]:
    header_lines = min(d.header_end_line - d.line, 255)
    col = min(d.header_end_col, 0xFFFF)
    start_col = d.start_byte - (data.rfind(b"\n", 0, d.start_byte) + 1)
    return KIND_CODE[d.kind] | header_lines << 8 | col << 16, d.line, d.end_line, min(start_col, 0xFFFFFFFF)


def unpack_kind(word: int) -> tuple[str, int, int]:
    """kind, header lines after the first, header end column."""
    return KINDS[word & 0xFF], (word >> 8) & 0xFF, word >> 16


# Files that stand for their directory: `pkg/__init__.py` is module `pkg`, `lib/index.ts` is `lib`.
PACKAGE_FILES = {
    "python": frozenset({"__init__"}),
    "javascript": frozenset({"index"}),
    "typescript": frozenset({"index"}),
    "tsx": frozenset({"index"}),
    "rust": frozenset({"mod"}),
}


def module_stem(path: str, language: str) -> str:
    """The name a file is imported by: `pkg/mod.py` -> mod, `pkg/__init__.py` -> pkg."""
    parts = path.split("/")
    name = parts[-1].split(".")[0]
    if len(parts) > 1 and name in PACKAGE_FILES.get(language, ()):
        return parts[-2]
    return name


def keeps_imports(path: str, language: str) -> bool:
    """Files whose imports are re-exports that name resolution follows."""
    return path.rsplit("/", 1)[-1].split(".")[0] in PACKAGE_FILES.get(language, ())


def chunk_bounds(definitions: tuple[Definition, ...], line_count: int) -> list[tuple[int, int]]:
    cuts = sorted({d.line for d in definitions if d.parent is None or d.kind == "method"})
    bounds: list[tuple[int, int]] = []
    start = 0
    for cut in [*cuts, line_count]:
        while cut - start > CHUNK_MAX_LINES:
            bounds.append((start, start + CHUNK_MAX_LINES))
            start += CHUNK_MAX_LINES
        if cut - start >= CHUNK_MIN_LINES or (cut == line_count and cut > start):
            bounds.append((start, cut))
            start = cut
    return bounds


def build_record(path: str, language: str, data: bytes, mtime_ns: int = 0, size: int | None = None) -> FileRecord:
    """The record of one file's bytes (pure: no I/O)."""
    parsed: FileOutline = outline(data, language)
    definitions = parsed.definitions[:MAX_DEFINITIONS]
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    packed = array("I")
    for d in definitions:
        packed.extend(pack_definition(d, data))
    chunk_lines = array("I")
    chunk_sizes = array("I")
    pieces = []
    hashed: dict[str, int] = {}  # a file repeats its identifiers: hash each once
    for start, end in chunk_bounds(definitions, len(lines))[:MAX_CHUNKS]:
        tokens = set(IDENTIFIER.findall("\n".join(lines[start:end])))
        tokens.difference_update(STOPWORDS)
        values = []
        for tok in tokens:
            if len(tok) > 1:
                value = hashed.get(tok)
                if value is None:
                    value = hashed[tok] = key(tok)
                values.append(value)
        if len(values) < MIN_CHUNK_KEYS:
            continue
        keys = np.unique(np.array(values, dtype=np.uint32))
        chunk_lines.extend((start, end))
        chunk_sizes.append(len(keys))
        pieces.append(keys)
    chunk_keys = np.concatenate(pieces).astype(np.uint32).tobytes() if pieces else b""
    return FileRecord(
        path=path,
        language=language,
        mtime_ns=mtime_ns,
        size=len(data) if size is None else size,
        line_count=len(lines),
        names=tuple(d.name for d in definitions),
        parents=tuple(d.parent for d in definitions),
        defs=packed.tobytes(),
        imports=parsed.imports if keeps_imports(path, language) else (),
        chunk_lines=chunk_lines.tobytes(),
        chunk_sizes=chunk_sizes.tobytes(),
        chunk_keys=chunk_keys,
    )


def looks_binary(head: bytes) -> bool:
    return b"\0" in head[:BINARY_SNIFF_BYTES]


def looks_minified(data: bytes) -> bool:
    newlines = data.count(b"\n")
    if len(data) // (newlines + 1) <= MINIFIED_AVERAGE_BYTES:
        return False
    return any(len(line) > MINIFIED_LINE_BYTES for line in data.split(b"\n"))


def read_record(root: str, path: str, language: str, max_bytes: int) -> FileRecord | Skipped:
    """Read and index one file under `root`; never raises for a bad file."""
    full = os.path.join(root, path)
    try:
        with open(full, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                return Skipped(path, "unreadable")
            if info.st_size > max_bytes:
                return Skipped(path, "too large", info.st_mtime_ns, info.st_size)
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return Skipped(path, "gone")
    except OSError:
        return Skipped(path, "unreadable")
    if len(data) > max_bytes:
        return Skipped(path, "too large", info.st_mtime_ns, info.st_size)
    if looks_binary(data):
        return Skipped(path, "binary", info.st_mtime_ns, info.st_size)
    if looks_minified(data):
        return Skipped(path, "minified", info.st_mtime_ns, info.st_size)
    return build_record(path, language, data, info.st_mtime_ns, info.st_size)


def is_class_kind(kind: str) -> bool:
    return kind in CLASS_KINDS
