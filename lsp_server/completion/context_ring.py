"""Extra context from the files the user has been working in, in a stable order.

Chunks of recently opened or edited files go into the prompt before the current
file. The ring only changes when the user moves to another file or opens one, and
new chunks are appended at the end, so across keystrokes the start of the prompt
stays the same and llama.cpp reuses its KV cache for it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from lsp_server.completion.prompt import ContextFile

MAX_LINE_CHARS = 300


@dataclass(frozen=True)
class Chunk:
    uri: str
    path: str
    start: int  # first line
    text: str


class ContextRing:
    def __init__(self, max_chunks: int = 8, chunk_lines: int = 32, max_chars: int = 6000) -> None:
        self.max_chunks = max_chunks
        self.chunk_lines = chunk_lines
        self.max_chars = max_chars  # about the prompt's extra-token budget at ~3 chars a token
        self._chunks: deque[Chunk] = deque()
        self._editing: tuple[str, int] | None = None  # (uri, line) of the last edit

    def __len__(self) -> int:
        return len(self._chunks)

    def chunks(self) -> list[Chunk]:
        return list(self._chunks)

    def add(self, uri: str, path: str, text: str, line: int = 0) -> bool:
        """Take the lines around `line`; False when the ring already holds (almost) them."""
        lines = text.split("\n")
        start = max(0, min(line - self.chunk_lines // 2, len(lines) - self.chunk_lines))
        # Minified or generated lines would crowd out everything else: keep their start.
        body = "\n".join(row[:MAX_LINE_CHARS] for row in lines[start : start + self.chunk_lines])
        if not body.strip():
            return False
        for chunk in self._chunks:
            if chunk.uri == uri and abs(chunk.start - start) < self.chunk_lines // 2:
                if chunk.text == body:
                    return False
                # Same place, new text: replace it (this reorders, but only when the user left that file).
                self._chunks.remove(chunk)
                break
        self._chunks.append(Chunk(uri, path, start, body))
        while len(self._chunks) > self.max_chunks or (
            len(self._chunks) > 1 and sum(len(c.text) for c in self._chunks) > self.max_chars
        ):
            self._chunks.popleft()
        return True

    def edited(self, uri: str, line: int) -> tuple[str, int] | None:
        """Note an edit; returns the (uri, line) of the file the user just left, if any."""
        previous = self._editing
        self._editing = (uri, line)
        if previous is not None and previous[0] != uri:
            return previous
        return None

    def forget(self, uri: str) -> None:
        self._chunks = deque(chunk for chunk in self._chunks if chunk.uri != uri)
        if self._editing is not None and self._editing[0] == uri:
            self._editing = None

    def context_for(self, uri: str) -> list[ContextFile]:
        """Every chunk not from the current file, oldest first."""
        return [ContextFile(chunk.path, chunk.text) for chunk in self._chunks if chunk.uri != uri]
