"""The guard's audit hook, called directly (nothing is installed in this process), and the seccomp filter."""

from __future__ import annotations

import dis
import os
import re
import types
from pathlib import Path

import pytest

from lsp_server.eval import guard
from lsp_server.eval.guard import make_hook
from lsp_server.eval.seccomp import DENIED, SYSCALLS, build_filter, machine_arch

WORK = "/sandbox"
WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


@pytest.fixture()
def hook():  # type: ignore[no-untyped-def]
    return make_hook(WORK)


def refused(hook, event: str, *args: object) -> bool:  # type: ignore[no-untyped-def]
    try:
        hook(event, args)
    except PermissionError as error:
        assert guard.BLOCKED in str(error)
        return True
    return False


def test_writes_outside_the_working_directory_are_refused(hook):
    assert refused(hook, "open", "/home/user/.bashrc", "a", APPEND)
    assert refused(hook, "open", "/sandbox/../home/user/.profile", "w", WRITE)
    assert refused(hook, "open", "/sandboxed/x", "w", WRITE)  # a sibling that shares the prefix
    assert refused(hook, "open", b"/home/user/.bashrc", "ab", APPEND)
    assert refused(hook, "open", "/proc/self/cwd/../../home/user/.bashrc", "r+", os.O_RDWR)
    assert refused(hook, "os.mkdir", "/home/user/.config/autostart", 0o777, -1)
    assert refused(hook, "os.chmod", "/home/user/.ssh", 0o777, -1)
    assert refused(hook, "os.truncate", "/home/user/.bashrc", 0)
    assert refused(hook, "sqlite3.connect", "/home/user/x.db")


def test_writes_inside_the_working_directory_and_reads_anywhere_are_allowed(hook):
    assert not refused(hook, "open", "/sandbox/out.txt", "w", WRITE)
    assert not refused(hook, "open", "/sandbox/a/../b.txt", "a", APPEND)
    assert not refused(hook, "open", "/etc/passwd", "r", os.O_RDONLY)
    assert not refused(hook, "open", 1, "w", os.O_WRONLY)  # a descriptor already open
    assert not refused(hook, "os.mkdir", "/sandbox/d", 0o777, -1)
    assert not refused(hook, "sqlite3.connect", ":memory:")


def test_relative_paths_resolve_against_the_current_directory(hook, monkeypatch, tmp_path):
    inside = make_hook(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert not refused(inside, "open", "notes.txt", "w", WRITE)
    assert refused(inside, "open", "../escape.txt", "w", WRITE)
    # os.open (mode None) may carry a dir_fd the event does not show: absolute paths only.
    assert refused(inside, "open", "notes.txt", None, WRITE)
    assert not refused(inside, "open", str(tmp_path / "notes.txt"), None, WRITE)
    assert refused(inside, "os.mkdir", "d", 0o777, 3)  # any dir_fd


def test_a_str_subclass_cannot_lie_about_its_path(hook):
    class Innocent(str):
        def startswith(self, *args: object) -> bool:  # type: ignore[override]
            return True

        def split(self, *args: object) -> list[str]:  # type: ignore[override]
            return ["sandbox", "x"]

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    assert refused(hook, "open", Innocent("/home/user/.bashrc"), "a", APPEND)
    assert refused(hook, "import", Innocent("_posixsubprocess"), None, None, None, None)


def test_processes_sockets_links_and_the_hook_s_own_state_are_refused(hook):
    for event, args in [
        ("os.system", ("ls",)),
        ("subprocess.Popen", ("sh", [], None, None)),
        ("os.fork", ()),
        ("os.posix_spawn", ("/bin/sh", [], {})),
        ("socket.connect", (None, ("127.0.0.1", 1))),
        ("os.symlink", ("/home/user/.bashrc", "link", -1)),
        ("os.link", ("a", "b", -1, -1)),
        ("os.remove", ("/sandbox/x", -1)),
        ("ctypes.dlopen", ("libc.so.6",)),
        ("gc.get_objects", (-1,)),
        ("gc.get_referrers", ()),
        ("sys.settrace", ()),
        ("resource.setrlimit", (0, (1, 1))),
        ("import", ("_posixsubprocess", None, [], [], [])),
        ("import", ("ctypes.util", None, [], [], [])),
        ("object.__setattr__", (print, "__code__", None)),
        ("object.__setattr__", (print, "__defaults__", ())),
    ]:
        assert refused(hook, event, *args), event
    # Ordinary attribute setting on classes raises the same event and stays allowed.
    assert not refused(hook, "object.__setattr__", type, "counter", 1)
    assert not refused(hook, "import", "json", None, [], [], [])


def _loads(code: types.CodeType) -> set[str]:
    found = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF", "STORE_GLOBAL"):
            found.add(f"{instruction.opname} {instruction.argval}")
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            found |= _loads(constant)
    return found


def _immutable(value: object) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(item) for item in value)
    return (
        isinstance(
            value, (str, bytes, int, type, types.BuiltinFunctionType, types.MethodDescriptorType, types.FunctionType)
        )
        or value is None
    )


def test_the_hook_reads_no_global_no_builtin_and_nothing_mutable(hook):
    # The escape this closes: a program walked frames to the guard's globals and emptied the
    # denied list the hook read from there. Now every value is a default bound at creation.
    writable = hook.__defaults__[hook.__code__.co_varnames.index("_writable") - 2]
    for function in (hook, writable):
        assert function.__closure__ is None
        assert _loads(function.__code__) == set(), function.__name__
        assert all(_immutable(value) for value in function.__defaults__), function.__defaults__
        assert function.__kwdefaults__ is None


def test_emptying_the_guard_module_and_rebinding_builtins_changes_nothing(hook, monkeypatch):
    # What a frame-walking program can reach: the guard's module globals and builtins.
    import builtins

    for name in ("DENIED_EVENTS", "PATH_EVENTS", "FROZEN_ATTRIBUTES"):
        monkeypatch.setattr(guard, name, ())
    monkeypatch.setattr(guard, "DENIED_IMPORTS", frozenset())
    monkeypatch.setattr(guard, "WRITE_FLAGS", 0)
    outcomes = []
    saved = builtins.PermissionError, builtins.type, builtins.isinstance
    # Rebound only around the calls: pytest itself needs the real ones.
    builtins.PermissionError, builtins.type, builtins.isinstance = KeyError, (lambda value: int), (lambda *a: True)
    try:
        for event, args in (("open", ("/home/user/.bashrc", "a", APPEND)), ("socket.connect", (None, ("::1", 1)))):
            try:
                hook(event, args)
                outcomes.append("allowed")
            except BaseException as error:  # noqa: BLE001 - whatever the class, it must be the real refusal
                outcomes.append(f"{error.__class__.__name__}: {error}")
    finally:
        builtins.PermissionError, builtins.type, builtins.isinstance = saved
    assert outcomes == [
        f"PermissionError: {guard.BLOCKED}: writing outside the working directory",
        f"PermissionError: {guard.BLOCKED}: socket.connect",
    ]


def test_the_working_directory_must_be_absolute_and_not_the_root():
    for bad in ("", "/", "relative/dir", "//"):
        with pytest.raises(ValueError):
            make_hook(bad)


HEADERS = {
    "x86_64": (Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"), r"__NR_(\w+)\s+(\d+)"),
    "aarch64": (Path("/usr/include/asm-generic/unistd.h"), r"__NR(?:3264)?_(\w+)\s+(\d+)"),
}


@pytest.mark.parametrize("arch", sorted(SYSCALLS))
def test_syscall_numbers_match_the_kernel_headers(arch):
    header, pattern = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} is not installed (Debian: linux-libc-dev)")
    numbers = {name: int(number) for name, number in re.findall(r"#define " + pattern, header.read_text())}
    assert {name: numbers.get(name) for name in SYSCALLS[arch]} == SYSCALLS[arch]
    # Every denied call the architecture has is in its table.
    missing = [name for name in DENIED if name in numbers and name not in SYSCALLS[arch]]
    assert missing == []


def test_the_filter_is_a_whole_bpf_program():
    for arch in SYSCALLS:
        program = build_filter(arch)
        assert len(program) % 8 == 0 and 0 < len(program) // 8 < 4096
    assert machine_arch() in (None, *SYSCALLS)
