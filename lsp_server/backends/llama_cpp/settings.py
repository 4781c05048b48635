"""What a local llama.cpp model is loaded with: plain data, importable without llama.cpp or numpy
(a language server whose model runs in the engine process never loads either)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LlamaSettings:
    # A path, or a function that finds one (it may assemble a file: run it on the
    # model thread, not in the LSP initialize handler).
    model: Path | Callable[[], Path]
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = -1  # -1: every layer, when the build supports GPU offload; 0: none
    # Speculative decoding (speculative.py): drafts from n-grams of the prompt and answer, and/or
    # from a small model with the same vocabulary; used only by requests that ask for it
    # (`speculate`), and only where batched rows are checked to equal token-by-token decoding.
    prompt_lookup: bool = False
    draft_model: Path | Callable[[], Path] | None = None
    max_draft: int = 6  # tokens drafted per step (a batch is one more)


def default_threads() -> int:
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(count, 8))


__all__ = ["LlamaSettings", "default_threads"]
