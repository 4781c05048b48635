"""What runs first in every evaluation process: resource limits, an audit hook, then the program.

The process is `python -I -S -c <the text of this file> CPU_S AS_BYTES FSIZE_BYTES NPROC WORKDIR`,
run in the program's working directory, which holds `candidate.py`. Importing this module
only defines functions (the tests call `make_hook` directly); nothing is installed then.

The audit hook is defence in depth under the bubblewrap sandbox, and the only wall inside
the process when the user runs without one. It refuses sockets, new processes, deletion,
links, `ctypes`, and any write outside WORKDIR. Its decisions must not be changeable by the
program it watches, which may walk frames up to any module's globals (the flaw this design
replaces: the denied list used to be a module global), rebind builtins, or pass a `str`
subclass that lies about its text. So:

- every value the hook consults, builtins included, is a positional default bound when the
  hook is made: the hook reads no global and no builtin name. Changing a function's
  `__defaults__` or `__code__` raises an audit event, which the hook refuses; and the only
  ways to reach the hook function itself (gc's object walkers) are refused too;
- a path is copied out of whatever object carries it with `str.join` before it is read, so
  no method of the program's runs inside the hook;
- the hook holds no closure cells (a cell can be rebound without an audit event).

Audit hooks are not a security boundary on their own (CPython's documentation says so):
native code can do what it likes. That is why the real wall is the sandbox around the process.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

BLOCKED = "blocked in the evaluation sandbox"

# Audit events refused outright (prefixes). New processes, the network, deletion and
# renames, links (a link could lead a later write out of the working directory), raw memory,
# tracing hooks that can rewrite a running frame, and gc's walkers that reach any object.
DENIED_EVENTS = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.rename",
    "shutil.rmtree",
    "os.symlink",
    "os.link",
    "os.kill",
    "os.killpg",
    "ctypes.",
    "urllib.Request",
    "http.client.connect",
    "ftplib.",
    "smtplib.",
    "imaplib.",
    "poplib.",
    "nntplib.",
    "telnetlib.",
    "webbrowser.",
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
    "sys.settrace",
    "sys.setprofile",
    "resource.setrlimit",
    "resource.prlimit",
    "sys.remote_exec",
)

# Native modules that act without raising the audit events above: process creation,
# foreign calls, databases and shared memory opened in C, interpreters without our hook.
DENIED_IMPORTS = frozenset(
    {
        "_posixsubprocess",
        "_ctypes",
        "ctypes",
        "_gdbm",
        "_dbm",
        "_posixshmem",
        "_xxsubinterpreters",
        "_xxinterpchannels",
        "_interpreters",
        "_interpchannels",
        "_interpqueues",
        "_testcapi",
        "_testinternalcapi",
        "_testbuffer",
        "_testmultiphase",
        "_testsinglephase",
        "_testimportmultiple",
        "_testclinic",
    }
)

# Events that change a file named by their first argument, with the index of their dir_fd
# argument (-1: none). A dir_fd makes a relative path relative to a directory the hook
# cannot see, so any dir_fd is refused. Pairs, not a dict: the hook's state is immutable.
PATH_EVENTS = (
    ("os.mkdir", 2),
    ("os.chmod", 2),
    ("os.chown", 3),
    ("os.utime", 3),
    ("os.truncate", -1),
    ("os.chflags", -1),
    ("os.lchflags", -1),
    ("os.lchmod", -1),
    ("os.setxattr", -1),
    ("os.removexattr", -1),
)

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# Setting these on a function raises "object.__setattr__"; they are what the hook lives on.
FROZEN_ATTRIBUTES = ("__code__", "__defaults__")


def make_hook(workdir: str) -> Callable[[str, tuple[object, ...]], None]:
    """The audit hook for a program whose only writable place is `workdir` (absolute)."""
    if not workdir.startswith("/") or workdir.rstrip("/") == "":
        raise ValueError(f"the working directory must be an absolute path below /: {workdir!r}")
    workdir = workdir.rstrip("/")

    def writable(
        path: object,
        relative_ok: bool,
        _root: str = workdir,
        _inside: str = workdir + "/",
        _getcwd: Callable[[], str] = os.getcwd,
        _type: type = type,
        _int: type = int,
        _sjoin: Callable[..., str] = str.join,
        _bjoin: Callable[..., bytes] = bytes.join,
        _decode: Callable[..., str] = bytes.decode,
        _errors: tuple[type[BaseException], ...] = (TypeError, ValueError),
    ) -> bool:
        if _type(path) is _int:
            return True  # a descriptor that is already open: opening it was checked
        try:
            text = _sjoin("", (path,))  # the real text of a str or str subclass
        except _errors:
            try:
                text = _decode(_bjoin(b"", (path,)), "utf-8", "surrogateescape")
            except _errors:
                return False
        if not text.startswith("/"):
            if not relative_ok:
                return False
            text = _getcwd() + "/" + text
        parts: list[str] = []
        for part in text.split("/"):
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        normal = "/" + "/".join(parts)
        return normal == _root or normal.startswith(_inside)

    def hook(
        event: str,
        args: tuple[object, ...],
        _denied: tuple[str, ...] = DENIED_EVENTS,
        _imports: frozenset[str] = DENIED_IMPORTS,
        _paths: tuple[tuple[str, int], ...] = PATH_EVENTS,
        _write: int = WRITE_FLAGS,
        _frozen: tuple[str, ...] = FROZEN_ATTRIBUTES,
        _writable: Callable[[object, bool], bool] = writable,
        _error: type[Exception] = PermissionError,
        _sjoin: Callable[..., str] = str.join,
        _blocked: str = BLOCKED,
    ) -> None:
        event = _sjoin("", (event,))
        if event.startswith(_denied):
            raise _error(f"{_blocked}: {event}")
        if event == "open":
            path, mode, flags = args
            # os.open (mode None) may have a dir_fd the event does not show: absolute paths only.
            if flags & _write and not _writable(path, mode is not None):  # type: ignore[operator]
                raise _error(f"{_blocked}: writing outside the working directory")
        elif event == "import":
            name = _sjoin("", (args[0],))
            if name.partition(".")[0] in _imports:
                raise _error(f"{_blocked}: import {name}")
        elif event == "object.__setattr__":
            name = _sjoin("", (args[1],))
            if name in _frozen:
                raise _error(f"{_blocked}: setting {name}")
        elif event == "sqlite3.connect":
            if args[0] != ":memory:" and not _writable(args[0], True):
                raise _error(f"{_blocked}: a database outside the working directory")
        else:
            for name, dir_fd in _paths:
                if event == name:
                    if (dir_fd >= 0 and args[dir_fd] != -1) or not _writable(args[0], True):
                        raise _error(f"{_blocked}: {event} outside the working directory")
                    break

    return hook


def main(argv: list[str]) -> None:
    import resource

    cpu_s, memory, file_size, processes = (int(value) for value in argv[1:5])
    workdir = argv[5]
    limits = [("RLIMIT_CPU", cpu_s), ("RLIMIT_AS", memory), ("RLIMIT_FSIZE", file_size), ("RLIMIT_CORE", 0)]
    if processes > 0:
        limits.append(("RLIMIT_NPROC", processes))
    for name, value in limits:
        resource.setrlimit(getattr(resource, name), (value, value))
    # Audit hooks cannot be removed once added, so the program cannot switch this one off.
    sys.addaudithook(make_hook(workdir))
    import runpy

    runpy.run_path("candidate.py", run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
