"""What ninetyten changes around llama-cpp-python's `Llama()`: where llama.cpp's log lines go,
no chat template compiled in this process, and (for speculative decoding) no weight repacking.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lsp_server.backends.base import BackendError

_native_log = logging.getLogger("ninetyten.llama_cpp")
_log_callback: Any = None

# Models being loaded right now: while one loads, llama.cpp's lines describe the file.
_loading = 0
# Also given every llama.cpp log line (text, loading): the engine process reads the load's
# report from them (a damaged file's complaint, the layers offloaded to the GPU).
native_log_hook: Callable[[str, bool], None] | None = None
_NATIVE_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_:]{0,80}):")


def native_log_line(text: str, loading: bool) -> str:
    """What a llama.cpp log line may say in our log.

    While a model loads its lines describe the model file (metadata, tensors, buffers);
    afterwards a line could carry part of a prompt or of generated text, so only the
    function that wrote it and its length are kept.
    """
    text = text.rstrip()
    if loading:
        return text
    found = _NATIVE_PREFIX.match(text)
    return f"{found.group(1) if found else 'llama.cpp'}: ({len(text)} characters withheld)"


def route_native_log() -> None:
    """Send llama.cpp's own log lines to Python logging instead of stderr.

    llama-cpp-python maps ggml's log levels with an older numbering and prints
    warnings such as the SWA cache note straight to stderr, which ends up in
    commit hooks and terminals. Installed once; the callback must stay referenced.
    """
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if native_log_hook is not None:
            native_log_hook(text.decode("utf-8", "replace"), _loading > 0)
        if _native_log.isEnabledFor(logging.DEBUG):
            _native_log.debug("%s", native_log_line(text.decode("utf-8", "replace"), _loading > 0))

    _log_callback = forward
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


class _TemplateNotCompiled:
    """Stands in for llama-cpp-python's chat formatter while a model loads.

    `Llama()` compiles every chat template in the GGUF's metadata, in this process, for
    chat handlers ninetyten never uses: a broken or deeply nested template would stop the
    model from loading at all. Templates are rendered by chat_template.py instead,
    sandboxed and with limits, falling back to a plain layout.
    """

    def __init__(self, **_: Any) -> None:
        pass

    def to_chat_handler(self) -> None:
        return None


_swap = threading.Lock()


@contextlib.contextmanager
def loading_llama(*, repack: bool = True) -> Iterator[None]:
    """While `Llama()` runs: its log lines are the model file's, no template is compiled, and
    with `repack=False` the weights are not repacked for llama.cpp's CPU kernels (repacked
    kernels compute a row differently in a batch than alone, which speculative decoding
    cannot allow; `Llama()` has no option for it, so its default parameters are swapped)."""
    global _loading
    import llama_cpp
    from llama_cpp import llama_chat_format

    with _swap:
        formatter = llama_chat_format.Jinja2ChatFormatter
        default_params = llama_cpp.llama_model_default_params

        def unpacked() -> Any:
            params = default_params()
            params.use_extra_bufts = False
            return params

        llama_chat_format.Jinja2ChatFormatter = _TemplateNotCompiled  # type: ignore[misc,assignment]
        if not repack:
            llama_cpp.llama_model_default_params = unpacked  # what Llama() calls, through this module
        _loading += 1
        try:
            yield
        finally:
            _loading -= 1
            llama_chat_format.Jinja2ChatFormatter = formatter  # type: ignore[misc]
            llama_cpp.llama_model_default_params = default_params


def construct_llama(path: Path, *, n_ctx: int, n_batch: int, threads: int, gpu_layers: int, repack: bool = True) -> Any:
    """A llama-cpp-python `Llama` for `path`; BackendError naming the file when it cannot load."""
    import llama_cpp

    route_native_log()
    try:
        with loading_llama(repack=repack):
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0,
                # Keep the whole window for models with sliding-window attention, or
                # a shortened prompt could never reuse the cache.
                swa_full=True,
                logits_all=False,
                verbose=False,
            )
    except Exception as exc:  # llama.cpp reports load failures as ValueError/RuntimeError
        raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc


__all__ = ["construct_llama", "loading_llama", "native_log_line", "route_native_log"]
