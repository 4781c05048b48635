"""A description of the machine a model will run on: RAM, cores, and the GPU llama.cpp sees.

`detect_machine()` asks the operating system and llama.cpp (its ggml device list: name,
type, memory); `parse_machine("ram=16G,cores=8,gpu_mem=0")` builds the same description
from text, so that `models recommend` can be asked about any machine, and tested on many.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from local_models.errors import ModelError

GIB = 1024**3
# Describes the machine instead of detecting it (same syntax as `models recommend --machine`), for
# containers and VMs whose limits detection cannot see, and wherever the recommendation is made.
MACHINE_ENV = "NINETYTEN_MACHINE"

# ggml_backend_dev_type in ggml-backend.h
_DEV_CPU, _DEV_GPU, _DEV_IGPU = 0, 1, 2


class Machine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ram_bytes: int = Field(gt=0)
    cores: int = Field(gt=0)
    gpu_mem_bytes: int = Field(default=0, ge=0, description="memory of the GPU llama.cpp offloads to; 0: none")
    gpu_name: str | None = None
    # An integrated GPU (or Apple's unified memory): what it holds comes out of RAM.
    gpu_shared_memory: bool = False
    mem_bandwidth: float | None = Field(default=None, gt=0, description="RAM bandwidth, bytes/s; None: estimated")
    gpu_bandwidth: float | None = Field(default=None, gt=0, description="GPU memory bandwidth, bytes/s")
    source: Literal["detected", "described"] = "described"
    notes: tuple[str, ...] = ()

    @property
    def has_gpu(self) -> bool:
        return self.gpu_mem_bytes > 0

    def summary(self) -> str:
        gpu = "no GPU offload"
        if self.has_gpu:
            kind = "shared memory" if self.gpu_shared_memory else "dedicated"
            gpu = f"GPU {self.gpu_name or ''} {self.gpu_mem_bytes / GIB:.1f} GiB ({kind})".replace("  ", " ")
        cores = f"{self.cores} core" + ("s" if self.cores != 1 else "")
        return f"{cores}, {self.ram_bytes / GIB:.1f} GiB RAM, {gpu}"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1, "m": 2, "g": 3, "t": 4}


def _parse_size(text: str, *, binary: bool, default_unit: str) -> float:
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size like 16G or 512M")
    number, unit = float(match[1]), (match[2] or default_unit).lower()
    return number * (1024 if binary else 1000) ** _UNITS[unit]


def parse_machine(text: str) -> Machine:
    """`ram=16G,cores=8,gpu_mem=8G[,gpu=NAME][,shared=1][,bw=50G][,gpu_bw=300G]`.

    Memory sizes are binary (16G = 16 GiB, like the RAM a machine is sold with) and default
    to GiB; bandwidths are decimal bytes per second (50G = 50 GB/s).
    """
    fields: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ModelError(f"--machine: {part.strip()!r} is not KEY=VALUE.", "Example: ram=16G,cores=8,gpu_mem=0")
        fields[key.strip().lower().replace("-", "_")] = value.strip()
    aliases = {"vram": "gpu_mem", "memory": "ram", "threads": "cores", "unified": "shared", "mem_bw": "bw"}
    fields = {aliases.get(k, k): v for k, v in fields.items()}
    known = {"ram", "cores", "gpu_mem", "gpu", "shared", "bw", "gpu_bw"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ModelError(f"--machine: unknown key(s) {', '.join(unknown)}.", f"Known keys: {', '.join(sorted(known))}.")
    if "ram" not in fields or "cores" not in fields:
        raise ModelError("--machine needs at least ram= and cores=.", "Example: ram=16G,cores=8,gpu_mem=0")
    try:
        ram = int(_parse_size(fields["ram"], binary=True, default_unit="g"))
        cores = int(fields["cores"])
        gpu_mem = int(_parse_size(fields.get("gpu_mem", "0"), binary=True, default_unit="g"))
        bw = _parse_size(fields["bw"], binary=False, default_unit="g") if "bw" in fields else None
        gpu_bw = _parse_size(fields["gpu_bw"], binary=False, default_unit="g") if "gpu_bw" in fields else None
    except ValueError as exc:
        raise ModelError(f"--machine: {exc}.", "Example: ram=16G,cores=8,gpu_mem=8G") from exc
    shared = fields.get("shared", "0").lower() in ("1", "yes", "true", "on")
    if cores < 1 or ram <= 0:
        raise ModelError("--machine: ram and cores must be positive.", "Example: ram=16G,cores=8,gpu_mem=0")
    return Machine(
        ram_bytes=ram,
        cores=cores,
        gpu_mem_bytes=gpu_mem,
        gpu_name=fields.get("gpu") or None,
        gpu_shared_memory=shared,
        mem_bandwidth=bw or None,
        gpu_bandwidth=gpu_bw or None,
        source="described",
    )


def _ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def _ggml_gpus() -> list[tuple[str, int, bool]]:
    """(description, total memory, shared) of each GPU device llama.cpp's ggml reports.

    llama-cpp-python exposes only `llama_supports_gpu_offload`; the device list comes from
    ggml's C API in the same shared library, through ctypes.
    """
    import ctypes

    from llama_cpp import llama_cpp as bindings

    lib = bindings._lib
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    gpus = []
    for index in range(int(lib.ggml_backend_dev_count())):
        device = lib.ggml_backend_dev_get(index)
        kind = lib.ggml_backend_dev_type(device)
        if kind not in (_DEV_GPU, _DEV_IGPU):
            continue
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        description = (lib.ggml_backend_dev_description(device) or b"GPU").decode("utf-8", "replace")
        gpus.append((description, int(total.value), kind == _DEV_IGPU))
    return gpus


def detect_machine() -> Machine:
    """This machine, as llama.cpp would use it (or as NINETYTEN_MACHINE describes it).

    Never raises: unknowns become notes and defaults, and a description that does not parse is
    a note too."""
    described = os.environ.get(MACHINE_ENV, "").strip()
    notes: list[str] = []
    if described:
        try:
            machine = parse_machine(described)
            return machine.model_copy(update={"notes": (f"described by {MACHINE_ENV}",)})
        except ModelError as error:
            notes.append(f"{MACHINE_ENV} ignored: {error}")
    ram = _ram_bytes()
    if ram is None:
        ram = 8 * GIB
        notes.append("RAM size unknown; assumed 8 GiB")
    gpu_mem, gpu_name, shared = 0, None, False
    try:
        import llama_cpp

        if llama_cpp.llama_supports_gpu_offload():
            gpus = _ggml_gpus()
            if gpus:
                gpu_name, gpu_mem, shared = max(gpus, key=lambda g: g[1])
                if "apple" in gpu_name.lower() or "metal" in gpu_name.lower():
                    shared = True  # unified memory
            else:
                notes.append("llama.cpp supports GPU offload but reports no GPU device")
        else:
            notes.append("this llama.cpp build has no GPU backend (CPU only)")
    except (ImportError, OSError, AttributeError) as exc:
        notes.append(f"could not ask llama.cpp about GPUs ({exc}); assumed none")
    return Machine(
        ram_bytes=ram,
        cores=_cores(),
        gpu_mem_bytes=gpu_mem,
        gpu_name=gpu_name,
        gpu_shared_memory=shared,
        source="detected",
        notes=tuple(notes),
    )
