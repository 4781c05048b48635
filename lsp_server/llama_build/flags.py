"""Which llama.cpp build to make for this machine: the backend, a ladder of CPU levels, the key.

llama.cpp's default (GGML_NATIVE=ON) compiles with `-march=native`: every instruction the
*build* machine's CPU reports, AMX included. That wheel then crashes wherever the CPU or
kernel lacks one of them — on another machine it was copied to or cached for, or on the
same machine when the kernel has not granted AMX tile state. So on x86-64 the build names
each instruction-set extension explicitly (GGML_NATIVE=OFF): those `/proc/cpuinfo` lists,
never AMX unless asked for (`NINETYTEN_LLAMA_AMX=1`), and only as a level the self-test
must then prove. If a level crashes, the set-up falls back to the next, safer one.

The build key hashes everything that decides what the wheel may execute (the CMake
arguments, the CPU's relevant flags, the platform, the llama-cpp-python requirement), so
a wheel is never reused on a machine it was not built for.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from lsp_server.llama_build.cpu import CpuInfo

BACKENDS: tuple[str, ...] = ("cpu", "cuda", "metal", "vulkan")
BACKEND_ENV = "NINETYTEN_LLAMA_BACKEND"
AMX_ENV = "NINETYTEN_LLAMA_AMX"

# Always: the vision library (llava/mtmd) is not used and would double the build time.
BASE_ARGS: tuple[str, ...] = ("-DLLAVA_BUILD=OFF",)

_BACKEND_ARGS: dict[str, tuple[str, ...]] = {
    "cpu": (),
    "cuda": ("-DGGML_CUDA=ON",),
    "metal": ("-DGGML_METAL=ON",),
    "vulkan": ("-DGGML_VULKAN=ON",),
}

# ggml's x86 build options and the /proc/cpuinfo flags each one needs, in ggml's order.
X86_OPTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("GGML_SSE42", ("sse4_2",), "SSE4.2"),
    ("GGML_AVX", ("avx",), "AVX"),
    ("GGML_F16C", ("f16c",), "F16C"),
    ("GGML_FMA", ("fma",), "FMA"),
    ("GGML_AVX2", ("avx2",), "AVX2"),
    ("GGML_BMI2", ("bmi2",), "BMI2"),
    ("GGML_AVX_VNNI", ("avx_vnni",), "AVX-VNNI"),
    # GGML_AVX512 compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"), "AVX-512"),
    ("GGML_AVX512_VBMI", ("avx512vbmi",), "AVX-512 VBMI"),
    ("GGML_AVX512_VNNI", ("avx512_vnni",), "AVX-512 VNNI"),
    ("GGML_AVX512_BF16", ("avx512_bf16",), "AVX-512 BF16"),
    ("GGML_AMX_TILE", ("amx_tile",), "AMX-TILE"),
    ("GGML_AMX_INT8", ("amx_int8",), "AMX-INT8"),
    ("GGML_AMX_BF16", ("amx_bf16",), "AMX-BF16"),
)
_AMX = frozenset({"GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"})
_AVX512_EXTRAS = frozenset({"GGML_AVX512_VBMI", "GGML_AVX512_VNNI", "GGML_AVX512_BF16"})
_ALL_X86 = frozenset(option for option, _, _ in X86_OPTIONS)
_AVX2_LEVEL = frozenset({"GGML_SSE42", "GGML_AVX", "GGML_F16C", "GGML_FMA", "GGML_AVX2", "GGML_BMI2"})
X86_RELEVANT_FLAGS = frozenset(flag for _, flags, _ in X86_OPTIONS for flag in flags)


class BuildConfigError(ValueError):
    """A setting that asks for a build this machine cannot make."""


@dataclass(frozen=True)
class BuildLevel:
    """One rung of the ladder: a name, what it enables, and its CMake arguments."""

    name: str
    summary: str
    cmake_args: tuple[str, ...]


@dataclass(frozen=True)
class BuildPlan:
    backend: str
    cpu: CpuInfo
    levels: tuple[BuildLevel, ...]  # best first, each safer than the one before
    user_args: tuple[str, ...]  # the user's own CMAKE_ARGS, applied last (they win)
    requirement: str  # the llama-cpp-python requirement the wheel must satisfy
    amx: bool = False  # the user asked to try AMX kernels

    def level(self, name: str) -> BuildLevel:
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(name)

    def cmake_args(self, level: BuildLevel) -> tuple[str, ...]:
        return (*BASE_ARGS, *_BACKEND_ARGS[self.backend], *level.cmake_args, *self.user_args)

    def cmake_args_text(self, level: BuildLevel) -> str:
        return shlex.join(self.cmake_args(level))

    def cpu_flags(self) -> list[str]:
        """The CPU flags a build depends on: those ggml uses on x86, every one elsewhere (native)."""
        return sorted(self.cpu.flags & X86_RELEVANT_FLAGS if self.cpu.is_x86 else self.cpu.flags)

    def key(self, level: BuildLevel) -> str:
        """A short hash naming the wheel: equal keys mean the same wheel is safe to reuse."""
        material = {
            "requirement": self.requirement,
            "backend": self.backend,
            "cmake_args": list(self.cmake_args(level)),
            "system": self.cpu.system,
            "machine": self.cpu.machine,
            "cpu_flags": self.cpu_flags(),
        }
        digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()
        return digest[:16]

    def next_level(self, after: str | None) -> BuildLevel | None:
        """The level to build after `after` crashed; the best one when the build is unknown."""
        if after is None:
            return self.levels[0]
        names = [level.name for level in self.levels]
        if after not in names:
            return self.levels[0]
        index = names.index(after) + 1
        return self.levels[index] if index < len(self.levels) else None


def default_backend(cpu: CpuInfo) -> str:
    return "metal" if cpu.system == "Darwin" and cpu.machine == "arm64" else "cpu"


def choose_backend(value: str | None, cpu: CpuInfo) -> str:
    if value is None or not value.strip():
        return default_backend(cpu)
    backend = value.strip().lower()
    if backend not in BACKENDS:
        raise BuildConfigError(f"{BACKEND_ENV}={value!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    if backend == "metal" and cpu.system != "Darwin":
        raise BuildConfigError(f"{BACKEND_ENV}=metal needs macOS; on {cpu.system} use cpu, cuda or vulkan")
    return backend


def _x86_level(name: str, allowed: frozenset[str], cpu: CpuInfo) -> tuple[BuildLevel, frozenset[str]]:
    enabled = {option for option, needs, _ in X86_OPTIONS if option in allowed and set(needs) <= cpu.flags}
    if "GGML_AVX512" not in enabled:
        enabled -= _AVX512_EXTRAS | _AMX
    if "GGML_AVX512_VNNI" not in enabled or "GGML_AMX_TILE" not in enabled:
        enabled -= _AMX  # ggml's AMX kernels need both
    args = ["-DGGML_NATIVE=OFF"] + [
        f"-D{option}={'ON' if option in enabled else 'OFF'}" for option, _, _ in X86_OPTIONS
    ]
    names = [label for option, _, label in X86_OPTIONS if option in enabled]
    summary = ", ".join(names) if names else "no SIMD extensions (generic x86-64)"
    if not enabled & _AMX:
        summary += "; no AMX"
    return BuildLevel(name, summary, tuple(args)), frozenset(enabled)


def cpu_levels(cpu: CpuInfo, *, amx: bool = False) -> tuple[BuildLevel, ...]:
    """The ladder for this CPU, best first, without duplicates."""
    if not cpu.is_x86:
        return (
            BuildLevel("native", "tuned by the compiler for this CPU (GGML_NATIVE)", ("-DGGML_NATIVE=ON",)),
            BuildLevel("generic", "the architecture's baseline (GGML_NATIVE=OFF)", ("-DGGML_NATIVE=OFF",)),
        )
    candidates = []
    if amx:
        candidates.append(("tuned+amx", _ALL_X86))
    candidates += [("tuned", _ALL_X86 - _AMX), ("avx2", _AVX2_LEVEL), ("sse42", frozenset({"GGML_SSE42"}))]
    levels: list[BuildLevel] = []
    seen: set[frozenset[str]] = set()
    for name, allowed in candidates:
        level, enabled = _x86_level(name, allowed, cpu)
        if enabled in seen or (name == "tuned+amx" and not enabled & _AMX):
            continue
        seen.add(enabled)
        levels.append(level)
    return tuple(levels)


def wants_amx(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "yes", "true", "on")


def plan_build(cpu: CpuInfo, env: Mapping[str, str], requirement: str) -> BuildPlan:
    """The plan the environment asks for: NINETYTEN_LLAMA_BACKEND, NINETYTEN_LLAMA_AMX, CMAKE_ARGS."""
    backend = choose_backend(env.get(BACKEND_ENV), cpu)
    amx = wants_amx(env.get(AMX_ENV))
    try:
        user_args = tuple(shlex.split(env.get("CMAKE_ARGS", "")))
    except ValueError as error:
        raise BuildConfigError(f"CMAKE_ARGS cannot be parsed: {error}") from None
    return BuildPlan(
        backend=backend, cpu=cpu, levels=cpu_levels(cpu, amx=amx), user_args=user_args, requirement=requirement, amx=amx
    )
