"""The native self-test: real llama.cpp in a child process, and what its death means.

A llama.cpp build that uses an instruction the CPU or kernel does not allow does not
raise an exception: the process dies by a signal at the first kernel that executes it.
So the test loads small quantized models and generates a few tokens in a child process,
which reports each stage on stdout as one JSON line before and after it runs; when the
child dies, the last stage it started says where, and the signal says what.

The first model is always a tiny generated one with the quantized types real models use
(Q8_0, Q4_0, Q4_K, Q6_K), so the test runs the same CPU kernels (repacked, AVX-512, AMX)
that a real model would, in about a second. `ninetyten doctor` adds the model the server
would load, which also shows how many layers llama.cpp offloaded to the GPU.

For tests of the machinery, `NINETYTEN_SELFTEST_INJECT=SIGNAL[@stage][:FEATURE]` makes the
child raise that signal itself when it reaches the stage (import, load or generate;
default: generate with the first model), after real llama.cpp has been loaded; with
FEATURE (as llama.cpp's system info names it, e.g. AVX512), only when the build uses that
feature — what a CPU without it would do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

INJECT_ENV = "NINETYTEN_SELFTEST_INJECT"
PROMPT = "def add(a, b):\n    return"
DEFAULT_TOKENS = 8
DEFAULT_TIMEOUT_S = 300.0

# What a death by each signal most likely means for a llama.cpp process.
SIGNAL_CAUSES: dict[str, str] = {
    "SIGILL": "an instruction this CPU or kernel does not allow: the llama.cpp build uses a CPU feature "
    "that is missing here or not enabled by the kernel (AMX tile state, AVX-512 on another CPU); "
    "rebuild with safe flags",
    "SIGSEGV": "invalid memory access inside llama.cpp: a damaged or unsupported GGUF file, or a broken build",
    "SIGBUS": "the mapped model file changed or was truncated while in use, or a misaligned access in the build",
    "SIGABRT": "llama.cpp aborted on a failed check (GGML_ASSERT): an unsupported model or a bug; its message "
    "is in the output below",
    "SIGFPE": "an arithmetic fault inside llama.cpp: a broken build or a damaged model",
    "SIGKILL": "killed from outside, most often by the out-of-memory killer: the model needs more memory than is free",
    "SIGTERM": "terminated from outside",
    "SIGINT": "interrupted",
}
# Signals that point at the build itself; a set-up rebuilds with safer flags after them.
BUILD_SIGNALS = frozenset({"SIGILL", "SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE"})

# Windows ends a crashed process with an NTSTATUS code instead of a signal.
WINDOWS_CRASHES: dict[int, str] = {
    0xC000001D: "SIGILL",  # STATUS_ILLEGAL_INSTRUCTION
    0xC0000005: "SIGSEGV",  # STATUS_ACCESS_VIOLATION
    0xC0000409: "SIGABRT",  # STATUS_STACK_BUFFER_OVERRUN, what abort() ends with
    0xC0000094: "SIGFPE",  # STATUS_INTEGER_DIVIDE_BY_ZERO
}

_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"^\s*(?:load_tensors:)?\s*(\S+) model buffer size\s*=\s*([\d.]+) MiB")


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def likely_cause(name: str) -> str:
    return SIGNAL_CAUSES.get(name, "a native fault inside llama.cpp")


@dataclass(frozen=True)
class ModelSpec:
    label: str  # what the user reads: "self-test model", "your model"
    path: Path
    gpu_layers: int = -1  # -1: all layers when the build supports GPU offload


@dataclass
class ModelResult:
    label: str
    path: str
    load_s: float = 0.0
    tokens: int = 0
    tokens_per_s: float = 0.0
    prompt_tokens_per_s: float = 0.0
    offloaded: str | None = None  # llama.cpp's "N/M" layers on the GPU; None when it has no GPU support
    buffers: dict[str, float] = field(default_factory=dict)  # buffer type -> MiB of weights


@dataclass(frozen=True)
class Failure:
    kind: str  # "signal", "error" or "timeout"
    stage: str  # what the child was doing: "importing llama.cpp", "loading ...", "generating with ..."
    signal: str | None = None
    message: str = ""
    stderr_tail: str = ""

    @property
    def is_build_crash(self) -> bool:
        """A death that a safer build may cure (not an OOM kill, not an error message)."""
        return self.kind == "signal" and self.signal in BUILD_SIGNALS

    def describe(self) -> str:
        if self.kind == "signal":
            return f"crashed with {self.signal} while {self.stage}; likely cause: {likely_cause(self.signal or '')}"
        if self.kind == "timeout":
            return f"did not finish while {self.stage}: {self.message}"
        return f"failed while {self.stage}: {self.message}"


@dataclass
class SelfTestReport:
    llama_version: str | None = None
    system_info: str | None = None
    gpu_offload: bool | None = None
    models: list[ModelResult] = field(default_factory=list)
    failure: Failure | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None

    def cpu_features(self) -> list[str]:
        """The features this llama.cpp build uses, from its system info ("AVX2 = 1 | ...")."""
        features = []
        for item in (self.system_info or "").split("|"):
            name, _, value = item.rpartition("=")
            if value.strip() == "1":
                features.append(name.rpartition(":")[2].strip())  # the first item reads "CPU : SSE3 = 1"
        return features


def parse_load_log(text: str) -> tuple[str | None, dict[str, float]]:
    """From llama.cpp's log of a model load: "N/M" layers offloaded to the GPU (None when it
    does not say), and MiB of weights per buffer type (CPU_Mapped, CPU_REPACK, CUDA0, Metal, AMX...)."""
    offloaded = _OFFLOADED.search(text)
    buffers: dict[str, float] = {}
    for line in text.splitlines():
        found = _BUFFER.match(line)
        if found:
            buffers[found.group(1)] = buffers.get(found.group(1), 0.0) + float(found.group(2))
    return (f"{offloaded.group(1)}/{offloaded.group(2)}" if offloaded else None), buffers


def build_selftest_model(directory: Path) -> Path:
    """The tiny quantized model (256 wide, so K-quant blocks fit) the self-test always runs."""
    from local_models.tiny import build_tiny_model

    return build_tiny_model(
        directory / "selftest-q.gguf", quantized=True, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, context_length=512
    )


def run_self_test(
    extra_models: Sequence[ModelSpec] = (),
    *,
    gpu_layers: int = -1,
    tokens: int = DEFAULT_TOKENS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> SelfTestReport:
    """Build the tiny quantized model, then load and run it (and `extra_models`) in a child."""
    with tempfile.TemporaryDirectory(prefix="ninetyten-selftest-") as tmp:
        models = [ModelSpec("self-test model", build_selftest_model(Path(tmp)), gpu_layers), *extra_models]
        return run_child(models, tokens=tokens, timeout_s=timeout_s, env=env, python=python)


def run_child(
    models: Sequence[ModelSpec],
    *,
    tokens: int = DEFAULT_TOKENS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    command: Sequence[str] | None = None,
) -> SelfTestReport:
    """Run the child (or `command`, which must speak the same JSON lines) and read its fate."""
    spec = {
        "tokens": tokens,
        "models": [{"label": m.label, "path": str(m.path), "gpu_layers": m.gpu_layers} for m in models],
    }
    child = [python, "-X", "faulthandler", "-m", "lsp_server.llama_build.selftest_child", "--child"]
    argv = list(command) if command is not None else child
    child_env = dict(os.environ if env is None else env)
    # The child imports this package; make sure it finds the same tree as the parent.
    root = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            argv, input=json.dumps(spec), capture_output=True, text=True, env=child_env, timeout=timeout_s
        )
        stdout, stderr, returncode = completed.stdout, completed.stderr, completed.returncode
        timed_out = False
    except subprocess.TimeoutExpired as expired:
        stdout = _text(expired.stdout)
        stderr = _text(expired.stderr)
        returncode, timed_out = None, True
    report = parse_child_output(stdout, stderr, returncode, timed_out=timed_out, timeout_s=timeout_s)
    report.seconds = time.perf_counter() - started
    return report


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def parse_child_output(
    stdout: str, stderr: str, returncode: int | None, *, timed_out: bool = False, timeout_s: float = 0.0
) -> SelfTestReport:
    """The report from the child's JSON lines and how it ended (a negative code: killed by that signal)."""
    report = SelfTestReport()
    stage = "starting the self-test"
    error: str | None = None
    finished = False
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a native library printed to stdout
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "start":
            stage = str(event.get("stage", stage))
        elif kind == "import":
            report.llama_version = event.get("version")
            report.system_info = event.get("system_info")
            report.gpu_offload = event.get("gpu_offload")
        elif kind == "model":
            report.models.append(
                ModelResult(**{k: v for k, v in event.items() if k in ModelResult.__dataclass_fields__})
            )
        elif kind == "error":
            error = str(event.get("message", "unknown error"))
        elif kind == "finished":
            finished = True
    tail = "\n".join(stderr.strip().splitlines()[-10:])
    if timed_out:
        report.failure = Failure("timeout", stage, message=f"no result after {timeout_s:.0f} s", stderr_tail=tail)
    elif returncode is not None and returncode < 0:
        report.failure = Failure("signal", stage, signal=signal_name(-returncode), stderr_tail=tail)
    elif returncode is not None and returncode & 0xFFFFFFFF in WINDOWS_CRASHES:
        report.failure = Failure("signal", stage, signal=WINDOWS_CRASHES[returncode & 0xFFFFFFFF], stderr_tail=tail)
    elif error is not None:
        report.failure = Failure("error", stage, message=error, stderr_tail=tail)
    elif returncode != 0 or not finished:
        report.failure = Failure(
            "error", stage, message=f"the self-test exited with status {returncode}", stderr_tail=tail
        )
    return report


def report_lines(report: SelfTestReport) -> list[str]:
    """Lines for `doctor` and the set-up, aligned like the rest of doctor's output."""
    lines = []
    if report.llama_version:
        lines.append(f"llama.cpp      llama-cpp-python {report.llama_version}")
    features = report.cpu_features()
    if features:
        lines.append(f"cpu features   {', '.join(features)}")
    if report.gpu_offload is not None:
        lines.append(
            "gpu offload    " + ("supported by this build" if report.gpu_offload else "not in this build (CPU only)")
        )
    if report.failure is None:
        lines.append(f"self-test      ok ({len(report.models)} model(s), {report.seconds:.1f} s)")
    for model in report.models:
        where = "on the CPU" if model.offloaded is None else f"{model.offloaded} layers on the GPU"
        weights = ", ".join(f"{name} {mib:.1f} MiB" for name, mib in model.buffers.items())
        lines.append(
            f"  {model.label}: {model.tokens} tokens at {model.tokens_per_s:.1f} tok/s "
            f"(load {model.load_s:.2f} s), {where}" + (f"; weights: {weights}" if weights else "")
        )
    if report.failure is not None:
        lines.append(f"self-test      PROBLEM: {report.failure.describe()}")
        lines += ["  | " + line for line in report.failure.stderr_tail.splitlines()]
    return lines
