"""Where a completed program runs: the bubblewrap sandbox, or, only when the user says so, without one.

**Bubblewrap** (`bwrap`, the Debian package `bubblewrap`) gives each program:
- a root file system of its own with only the system directories (`/usr` and the links to
  it) and the Python installation, all read-only: not the user's home, the project, `/etc`
  or the rest of the machine;
- a private tmpfs as working directory and another as HOME, with size caps, gone afterwards;
- no network (a new network namespace holds only a downed loopback), a new pid namespace
  (it sees and signals only itself), new IPC and UTS namespaces, its own terminal session;
- an unprivileged user (uid 65534) without capabilities. An ordinary user's bwrap makes a
  user namespace for that (which may not make further ones). Root's bwrap does not: in a
  user namespace of root's the program would still be root to the kernel, which ignores
  RLIMIT_NPROC for root and lets root write root-owned files such as /proc/sys. So root's
  bwrap builds the sandbox and `setpriv` drops to uid 65534 before the program starts;
- a seccomp filter (`seccomp.py`) refusing new processes and kernel-wide interfaces;
- rlimits (CPU, address space, file size, processes), set before its first line by the
  guard (`guard.py`), which also installs the audit hook.

**Without a sandbox** (`--unsafe-no-sandbox`, and only where bubblewrap cannot run) the
program runs as an ordinary child process: `python -I -S` in a temporary directory, a
network namespace when `unshare` can make one, the rlimits and the audit hook. That is not
a security boundary, and the report says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from abc import ABC, abstractmethod
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lsp_server.eval.program_run import run_in_sandbox
from lsp_server.eval.seccomp import build_filter, machine_arch

UNSAFE_FLAG = "--unsafe-no-sandbox"
PROBE_TIMEOUT_S = 30.0

SANDBOX_WORKDIR = "/sandbox"
SANDBOX_HOME = "/home/sandbox"
SANDBOX_UID = 65534  # "nobody" inside the sandbox; the kernel still sees the caller's uid
WORKDIR_TMPFS_BYTES = 64 * 1024**2
HOME_TMPFS_BYTES = 16 * 1024**2

# Top-level names that are links into /usr on a merged-/usr system, or directories elsewhere.
_SYSTEM_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class SandboxUnavailable(Exception):
    """Bubblewrap cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class Launch:
    """How to start one program: the command, its environment and the descriptors it inherits."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    pass_fds: tuple[int, ...] = ()


class Sandbox(ABC):
    """Turns `python ARGS` for a program in a host folder into a command that runs it isolated."""

    #: RLIMIT_NPROC for the program (0: unset). It counts every process of the program's
    #: kernel user, so it is only set where that user is the sandbox's own.
    process_limit: int = 0

    @abstractmethod
    def workdir(self, folder: Path) -> str:
        """The working directory as the program sees it (the only place it may write)."""

    @abstractmethod
    def launch(self, folder: Path, python_args: list[str], stack: ExitStack) -> Launch:
        """The command for `python_args`; `folder` holds candidate.py. Descriptors go on `stack`."""

    @abstractmethod
    def summary(self) -> str:
        """One line for the report: what stands between the program and the machine."""


def _base_python() -> tuple[str, str]:
    """(interpreter, installation prefix) behind this process, outside any virtual environment.

    The program needs the standard library only, so the sandbox shows the base installation
    and not the environment the server runs in."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return executable, os.path.realpath(sys.base_prefix)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@dataclass(frozen=True)
class BubblewrapSandbox(Sandbox):
    bwrap: str
    python: str
    read_only: tuple[str, ...]  # host paths bound read-only at the same place
    links: tuple[tuple[str, str], ...]  # (target, link) recreated inside, as on the host
    arch: str  # the seccomp table to use
    setpriv: str | None = None  # set when running as root: see the module's docstring
    size_caps: bool = True  # bwrap >= 0.7 knows --size
    disable_userns: bool = True  # bwrap >= 0.8 knows --disable-userns
    process_limit: int = 32

    @classmethod
    def for_this_machine(cls, bwrap: str) -> BubblewrapSandbox:
        arch = machine_arch()
        if arch is None:
            raise SandboxUnavailable(
                f"no seccomp filter for this architecture ({os.uname().machine}); x86_64 and aarch64 are supported"
            )
        setpriv = None
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise SandboxUnavailable("running as root needs setpriv (util-linux) to drop to an unprivileged user")
        python, prefix = _base_python()
        read_only = ["/usr"]
        links = []
        for name in _SYSTEM_TOP_LEVEL:
            path = f"/{name}"
            if os.path.islink(path):
                links.append((os.readlink(path), path))
            elif os.path.isdir(path):
                read_only.append(path)
        # The standard library lives under the prefix; the shared library dir may not.
        for extra in (prefix, os.path.dirname(python), sysconfig.get_config_var("LIBDIR") or ""):
            extra = os.path.realpath(extra) if extra else ""
            if extra and not any(_under(extra, kept) for kept in read_only):
                read_only.append(extra)
        help_text = _bwrap_help(bwrap)
        return cls(
            bwrap=bwrap,
            python=python,
            read_only=tuple(read_only),
            links=tuple(links),
            arch=arch,
            setpriv=setpriv,
            size_caps="--size" in help_text,
            disable_userns="--disable-userns" in help_text,
        )

    def workdir(self, folder: Path) -> str:
        return SANDBOX_WORKDIR

    def launch(self, folder: Path, python_args: list[str], stack: ExitStack) -> Launch:
        candidate = stack.enter_context(open(folder / "candidate.py", "rb"))
        rules = folder / "seccomp.bpf"
        rules.write_bytes(build_filter(self.arch))
        seccomp = stack.enter_context(open(rules, "rb"))
        argv = [self.bwrap, *self._namespaces(), "--die-with-parent", "--new-session", "--hostname", "sandbox"]
        # Parents of a bound path get bwrap's default mode 0700, which the unprivileged
        # user cannot cross: make them 0755 first (they hold nothing else).
        made: set[str] = set()
        for path in self.read_only:
            for parent in reversed(Path(path).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind", path, path]
        for target, link in self.links:
            argv += ["--symlink", target, link]
        argv += ["--dev", "/dev"]
        for mount, size in ((SANDBOX_WORKDIR, WORKDIR_TMPFS_BYTES), (SANDBOX_HOME, HOME_TMPFS_BYTES)):
            argv += [*(["--size", str(size)] if self.size_caps else []), "--perms", "1777", "--tmpfs", mount]
        argv += [
            "--perms",
            "0644",
            "--file",
            str(candidate.fileno()),
            f"{SANDBOX_WORKDIR}/candidate.py",
            "--chdir",
            SANDBOX_WORKDIR,
            "--clearenv",
        ]
        for name, value in _program_env(home=SANDBOX_HOME, tmp=SANDBOX_WORKDIR).items():
            argv += ["--setenv", name, value]
        argv += ["--seccomp", str(seccomp.fileno()), "--"]
        if self.setpriv is not None:
            argv += [
                self.setpriv,
                f"--reuid={SANDBOX_UID}",
                f"--regid={SANDBOX_UID}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]
        argv += [self.python, *python_args]
        return Launch(
            argv=argv,
            env={"PATH": os.defpath, "LANG": "C.UTF-8"},
            cwd=str(folder),
            pass_fds=(candidate.fileno(), seccomp.fileno()),
        )

    def _namespaces(self) -> list[str]:
        if self.setpriv is not None:
            # No user namespace for root: setpriv needs a real uid to switch to. It keeps the
            # capabilities for that switch only; it drops them all before the program starts.
            return [
                "--unshare-pid",
                "--unshare-net",
                "--unshare-ipc",
                "--unshare-uts",
                "--unshare-cgroup-try",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
                "--cap-add",
                "CAP_SETPCAP",
            ]
        return [
            "--unshare-all",
            "--unshare-user",
            *(["--disable-userns"] if self.disable_userns else []),
            "--cap-drop",
            "ALL",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
        ]

    def summary(self) -> str:
        return (
            "bubblewrap sandbox: read-only system dirs, private tmpfs cwd and HOME, no network, own pid "
            "namespace, unprivileged user, no capabilities, seccomp (no new processes), rlimits; audit hook inside"
        )


@dataclass(frozen=True)
class UnsandboxedProcess(Sandbox):
    """The program as a plain child process. Used only with --unsafe-no-sandbox (and to measure the sandbox)."""

    network_prefix: tuple[str, ...] = ()  # `unshare -n` / `unshare -rn`, when it works

    @classmethod
    def for_this_machine(cls) -> UnsandboxedProcess:
        return cls(network_prefix=network_isolation())

    def workdir(self, folder: Path) -> str:
        return os.path.realpath(folder)

    def launch(self, folder: Path, python_args: list[str], stack: ExitStack) -> Launch:
        work = os.path.realpath(folder)
        return Launch(
            argv=[*self.network_prefix, sys.executable, *python_args], env=_program_env(home=work, tmp=work), cwd=work
        )

    def summary(self) -> str:
        namespace = (
            f"network namespace ({' '.join(['unshare', *self.network_prefix[1:]])})"
            if self.network_prefix
            else "no network namespace"
        )
        return (
            f"NO SANDBOX ({UNSAFE_FLAG}): {namespace} + audit hook, python -I -S, scrubbed env, rlimits, temp cwd; "
            "not a security boundary"
        )


def _program_env(*, home: str, tmp: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _bwrap_help(bwrap: str) -> str:
    try:
        shown = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return shown.stdout + shown.stderr


@lru_cache(maxsize=1)
def network_isolation() -> tuple[str, ...]:
    """The command prefix that gives a process a network namespace of its own, or ()."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    for flags in ("-n", "-rn"):
        try:
            probe = subprocess.run(
                [unshare, flags, sys.executable, "-c", "pass"],
                capture_output=True,
                timeout=PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return (unshare, flags)
    return ()


@lru_cache(maxsize=1)
def _bubblewrap_or_reason() -> BubblewrapSandbox | str:
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        sandbox = BubblewrapSandbox.for_this_machine(bwrap)
    except SandboxUnavailable as error:
        return str(error)
    # The probe is a real run through the guard: whatever stops it would stop every program.
    result = run_in_sandbox("import sys\nassert sys.flags.isolated\n", PROBE_TIMEOUT_S, sandbox)
    if not result.passed:
        return f"bwrap cannot start a program here ({result.detail or result.status})"
    return sandbox


def require_sandbox() -> BubblewrapSandbox:
    """The bubblewrap sandbox, checked once per process by running a program in it."""
    found = _bubblewrap_or_reason()
    if isinstance(found, str):
        raise SandboxUnavailable(unavailable_message(found))
    return found


def choose_sandbox(*, allow_unsafe: bool) -> Sandbox:
    """Bubblewrap when it runs; without it, no sandbox only if the user allowed that."""
    try:
        return require_sandbox()
    except SandboxUnavailable:
        if not allow_unsafe:
            raise
        return UnsandboxedProcess.for_this_machine()


def unavailable_reason() -> str | None:
    """Why bubblewrap cannot run here, or None when it can."""
    found = _bubblewrap_or_reason()
    return found if isinstance(found, str) else None


def unavailable_message(reason: str) -> str:
    return (
        f"refusing to run model-written code without a sandbox: {reason}. Install bubblewrap "
        "(Debian/Ubuntu: apt install bubblewrap; Fedora: dnf install bubblewrap) on Linux with user "
        f"namespaces enabled, or pass {UNSAFE_FLAG} to run the test programs as plain child processes "
        "with only an audit hook and resource limits between them and your files (not a security boundary)"
    )
