"""The seccomp filter of the evaluation sandbox: no new processes, no kernel-wide interfaces.

A classic BPF program in the layout the kernel reads (`struct sock_filter`, 8 bytes per
instruction), handed to bubblewrap with `--seccomp FD`. It is what contains a fork bomb for
every user, root included: RLIMIT_NPROC does not bind a process whose kernel user is root,
and a pid limit would need a cgroup. Threads stay allowed (the address-space limit bounds
them); `fork`, `vfork`, `clone` without CLONE_THREAD and `clone3` fail, so
`subprocess`, `os.fork` and `posix_spawn` fail too.

Syscall numbers are per architecture; they come from the kernel's `unistd_64.h` (x86_64)
and `asm-generic/unistd.h` (aarch64). Another architecture gets no filter, and the sandbox
says it cannot run there.
"""

from __future__ import annotations

import errno
import platform
import struct

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_NR_OFFSET = 0
_ARCH_OFFSET = 4
_ARG0_LOW_OFFSET = 16  # the low 32 bits of args[0] on a little-endian machine

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

CLONE_THREAD = 0x00010000
X32_SYSCALL_BIT = 0x40000000

# Denied with EPERM. Process creation, plus what a container runtime's default profile
# refuses: namespaces and mounts, kernel keyrings (not namespaced: the caller's keys are
# reachable from any namespace), tracing other processes, loading code into the kernel.
DENIED = (
    "fork",
    "vfork",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_by_handle_at",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "syslog",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "quotactl",
    "personality",
    "iopl",
    "ioperm",
)

SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "fork": 57,
        "vfork": 58,
        "clone": 56,
        "clone3": 435,
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "pidfd_getfd": 438,
        "mount": 165,
        "umount2": 166,
        "pivot_root": 155,
        "chroot": 161,
        "unshare": 272,
        "setns": 308,
        "open_by_handle_at": 304,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "open_tree": 428,
        "move_mount": 429,
        "mount_setattr": 442,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "bpf": 321,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "kexec_load": 246,
        "kexec_file_load": 320,
        "init_module": 175,
        "finit_module": 313,
        "delete_module": 176,
        "syslog": 103,
        "acct": 163,
        "swapon": 167,
        "swapoff": 168,
        "reboot": 169,
        "sethostname": 170,
        "setdomainname": 171,
        "quotactl": 179,
        "personality": 135,
        "iopl": 172,
        "ioperm": 173,
    },
    # The generic table: no fork, vfork, iopl or ioperm (they do not exist there).
    "aarch64": {
        "clone": 220,
        "clone3": 435,
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "pidfd_getfd": 438,
        "mount": 40,
        "umount2": 39,
        "pivot_root": 41,
        "chroot": 51,
        "unshare": 97,
        "setns": 268,
        "open_by_handle_at": 265,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "open_tree": 428,
        "move_mount": 429,
        "mount_setattr": 442,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "bpf": 280,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "kexec_load": 104,
        "kexec_file_load": 294,
        "init_module": 105,
        "finit_module": 273,
        "delete_module": 106,
        "syslog": 116,
        "acct": 89,
        "swapon": 224,
        "swapoff": 225,
        "reboot": 142,
        "sethostname": 161,
        "setdomainname": 162,
        "quotactl": 60,
        "personality": 92,
    },
}

# AUDIT_ARCH_* from linux/audit.h: the machine type with the 64-bit and little-endian flags.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def machine_arch() -> str | None:
    """The architecture name this module has a table for, or None."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return machine if machine in SYSCALLS else None


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def build_filter(arch: str) -> bytes:
    """The BPF program for `arch` ("x86_64" or "aarch64"), ready for `bwrap --seccomp`."""
    table = SYSCALLS[arch]
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    program = [
        # A foreign calling convention (i386 on x86_64) has other numbers: kill, never guess.
        _insn(_LD_W_ABS, _ARCH_OFFSET),
        _insn(_JEQ_K, AUDIT_ARCH[arch], jt=1),
        _insn(_RET_K, SECCOMP_RET_KILL_PROCESS),
        _insn(_LD_W_ABS, _NR_OFFSET),
    ]
    if arch == "x86_64":
        # x32 numbers are the x86_64 ones with a high bit set: refuse them all.
        program += [_insn(_JGE_K, X32_SYSCALL_BIT, jf=1), _insn(_RET_K, eperm)]
    for name in DENIED:
        if name in table:
            program += [_insn(_JEQ_K, table[name], jf=1), _insn(_RET_K, eperm)]
    # clone3 answers ENOSYS, so that the C library falls back to clone for threads.
    program += [_insn(_JEQ_K, table["clone3"], jf=1), _insn(_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    # clone: a thread (CLONE_THREAD) is allowed, anything else is a new process.
    program += [
        _insn(_JEQ_K, table["clone"], jf=3),
        _insn(_LD_W_ABS, _ARG0_LOW_OFFSET),
        _insn(_JSET_K, CLONE_THREAD, jt=1),
        _insn(_RET_K, eperm),
        _insn(_RET_K, SECCOMP_RET_ALLOW),
    ]
    return b"".join(program)
