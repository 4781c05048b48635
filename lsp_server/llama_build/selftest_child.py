"""The self-test's child process: imports llama.cpp, loads each model, generates a few tokens,
and reports each stage as one JSON line on stdout (so that a crash shows where it happened).

    python -m lsp_server.llama_build.selftest_child --child   (a JSON spec on stdin)"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from lsp_server.llama_build.selftest import INJECT_ENV, PROMPT, SelfTestReport, parse_load_log


def _emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _maybe_inject(stage: str, model_index: int, build_features: Sequence[str] = ()) -> None:
    value = os.environ.get(INJECT_ENV, "").strip()
    if not value:
        return
    value, _, feature = value.partition(":")
    name, _, where = value.partition("@")
    if (where or "generate") != stage or (stage != "import" and model_index != 0):
        return
    if feature and feature.upper() not in build_features:
        return  # as a CPU without that feature would: only builds that use it die
    os.kill(os.getpid(), getattr(signal, name.upper()))


def _child(spec: dict[str, Any]) -> int:
    import ctypes

    stage = "importing llama.cpp"
    _emit(event="start", stage=stage)
    _maybe_inject("import", 0)
    import llama_cpp
    import numpy as np

    native_log: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        native_log.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
    system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    features = SelfTestReport(system_info=system_info).cpu_features()
    _emit(event="import", version=llama_cpp.__version__, gpu_offload=gpu_offload, system_info=system_info)
    threads = max(
        1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2), 8)
    )
    for index, model in enumerate(spec["models"]):
        label, path = model["label"], model["path"]
        stage = f"loading the {label} ({path})"
        _emit(event="start", stage=stage)
        _maybe_inject("load", index, features)
        native_log.clear()
        started = time.perf_counter()
        try:
            llm = llama_cpp.Llama(
                model_path=path,
                n_ctx=512,
                n_batch=64,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=model["gpu_layers"] if gpu_offload else 0,
                verbose=False,
            )
        except Exception as exc:  # a load error is a message, not a crash
            _emit(event="error", message=f"llama.cpp could not load {path}: {exc}")
            return 1
        load_s = time.perf_counter() - started
        offloaded, buffers = parse_load_log("".join(native_log))
        stage = f"generating with the {label}"
        _emit(event="start", stage=stage)
        _maybe_inject("generate", index, features)
        prompt = llm.tokenize(PROMPT.encode("utf-8"), add_bos=True)
        started = time.perf_counter()
        llm.eval(prompt)
        prompt_s = time.perf_counter() - started
        ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()
        started = time.perf_counter()
        for _ in range(int(spec["tokens"])):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            if not np.isfinite(logits).all():
                _emit(
                    event="error", message=f"the {label} produced non-finite logits: the build computes wrong results"
                )
                return 1
            llm.eval([int(np.argmax(logits))])
        generate_s = time.perf_counter() - started
        _emit(
            event="model",
            label=label,
            path=path,
            load_s=load_s,
            tokens=int(spec["tokens"]),
            tokens_per_s=int(spec["tokens"]) / max(generate_s, 1e-9),
            prompt_tokens_per_s=len(prompt) / max(prompt_s, 1e-9),
            offloaded=offloaded or ("0/?" if gpu_offload else None),
            buffers=buffers,
        )
        llm.close()
    _emit(event="finished")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--child"]:
        print("usage: python -m lsp_server.llama_build.selftest_child --child  (a JSON spec on stdin)", file=sys.stderr)
        return 2
    return _child(json.loads(sys.stdin.read()))


if __name__ == "__main__":
    sys.exit(main())
