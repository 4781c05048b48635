"""What the running CPU and kernel allow, read the way the kernel reports it.

On Linux `/proc/cpuinfo` is the kernel's view, not the raw CPUID: the kernel leaves out
features whose register state it does not manage (AVX-512 without XSAVE support, AMX on
kernels without tile support), so a flag listed there is one a process may use. AMX is
the exception that proves the need for a self-test: the kernel lists it, yet a process
must still ask for tile state before its first tile instruction.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuInfo:
    system: str  # platform.system(): Linux, Darwin, Windows
    machine: str  # normalised: x86_64 or arm64, else what the platform says
    model: str
    flags: frozenset[str]

    @property
    def is_x86(self) -> bool:
        return self.machine == "x86_64"


def normalise_machine(machine: str) -> str:
    lowered = machine.lower()
    if lowered in ("x86_64", "amd64", "x64"):
        return "x86_64"
    if lowered in ("aarch64", "arm64", "armv8", "armv8l"):
        return "arm64"
    return lowered


def parse_proc_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, flags) from the first processor block of /proc/cpuinfo.

    x86 lists `flags`, ARM lists `Features`; every core lists the same set on the
    machines we build for, so the first block is enough.
    """
    first_block = text.strip().split("\n\n", 1)[0]
    model = ""
    flags: frozenset[str] = frozenset()
    for line in first_block.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
        elif key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
    return model, flags


def _darwin_cpu() -> tuple[str, frozenset[str]]:
    def sysctl(*args: str) -> str:
        try:
            return subprocess.run(["sysctl", *args], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    model = sysctl("-n", "machdep.cpu.brand_string").strip()
    flags = set()
    for line in sysctl("hw.optional").splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip() == "1":
            flags.add(name.strip().removeprefix("hw.optional."))
    return model, frozenset(flags)


def read_cpu_info() -> CpuInfo:
    system = platform.system()
    machine = normalise_machine(platform.machine())
    model, flags = "", frozenset[str]()
    if system == "Linux":
        try:
            model, flags = parse_proc_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            pass
    elif system == "Darwin":
        model, flags = _darwin_cpu()
    return CpuInfo(system=system, machine=machine, model=model or platform.processor(), flags=flags)
