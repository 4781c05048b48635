"""What the workspace index holds per file and per definition, its limits and its statistics."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from lsp_server.context.imports import Import
from lsp_server.context.records import DEF_WORDS, module_stem, unpack_kind


@dataclass(frozen=True)
class IndexLimits:
    max_file_bytes: int = 512 * 1024
    max_files: int = 10_000
    batch_files: int = 16  # files per worker round trip: small, so a fold is ~1 ms of GIL
    worker: Literal["process", "inline"] = "process"
    watch: bool = True
    watch_debounce_ms: int = 300


@dataclass(slots=True)
class FileEntry:
    file_id: int
    root: int  # index of the workspace folder
    path: str  # relative to that folder, '/'-separated
    language: str
    mtime_ns: int
    size: int
    line_count: int
    names: tuple[str, ...]
    parents: tuple[str | None, ...]
    defs: array[int]  # DEF_WORDS per definition, see records.FileRecord
    imports: tuple[Import, ...]
    first_def: int  # global id of its first definition
    first_chunk: int  # global id of its first chunk
    chunk_lines: array[int]  # 2 per chunk

    @property
    def stem(self) -> str:
        """The module name a file answers to: `pkg/mod.py` -> mod, `pkg/__init__.py` -> pkg."""
        return module_stem(self.path, self.language)

    def definition(self, index: int) -> DefinitionRef:
        at = DEF_WORDS * index
        word, line, end_line, start_col = self.defs[at], self.defs[at + 1], self.defs[at + 2], self.defs[at + 3]
        kind, header_lines, header_col = unpack_kind(word)
        return DefinitionRef(
            self,
            index,
            self.names[index],
            kind,
            self.parents[index],
            line,
            end_line,
            line + header_lines,
            header_col,
            start_col,
        )

    def definitions(self) -> list[DefinitionRef]:
        return [self.definition(i) for i in range(len(self.names))]

    def members(self, parent: str) -> list[DefinitionRef]:
        return [self.definition(i) for i, p in enumerate(self.parents) if p == parent]


@dataclass(frozen=True, slots=True)
class DefinitionRef:
    entry: FileEntry = field(repr=False)
    index: int
    name: str
    kind: str
    parent: str | None
    line: int
    end_line: int
    header_end_line: int
    header_end_col: int  # bytes
    start_col: int  # bytes

    @property
    def qualified_name(self) -> str:
        return f"{self.parent}.{self.name}" if self.parent else self.name


@dataclass
class IndexStats:
    files: int = 0
    definitions: int = 0
    chunks: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    truncated: bool = False
    methods: dict[str, str] = field(default_factory=dict)  # folder -> "git" | "walk"
    build_seconds: float | None = None
    updates: int = 0  # files (re)indexed or removed after the first build
    fold_seconds: float = 0.0  # time the server process spent folding records in
    longest_fold_ms: float = 0.0  # the longest single fold (a batch, or a rebuild of the postings)
