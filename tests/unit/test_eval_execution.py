"""The sandbox that runs completed programs: pass, fail, time out, no network, no way out."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from lsp_server.eval import sandbox as eval_sandbox
from lsp_server.eval.completion_eval import canonical_answers, score
from lsp_server.eval.execution import run_program, run_programs
from lsp_server.eval.humaneval import all_tasks, sample_tasks
from lsp_server.eval.sandbox import BubblewrapSandbox, UnsandboxedProcess, network_isolation


def test_a_correct_completion_passes_and_a_wrong_one_fails(bubblewrap):
    task = next(t for t in all_tasks("single") if t.task_id == "HumanEval/0/single/L19")
    assert task.middle == "return False"
    assert run_program(task.program(task.middle)).status == "passed"
    assert run_program(task.program("return True")).status == "failed"
    wrong = run_program(task.program("raise ValueError('not the answer')"))
    assert wrong.status == "failed" and "ValueError" in wrong.detail
    broken = run_program(task.program("if (:"))
    assert broken.status == "failed" and "SyntaxError" in broken.detail


def test_an_infinite_loop_times_out_quickly(bubblewrap):
    started = time.perf_counter()
    result = run_program("while True:\n    pass\n", timeout_s=1.0)
    assert result.status == "timeout"
    assert time.perf_counter() - started < 4.0


def test_a_child_process_cannot_outlive_the_timeout(bubblewrap):
    # The audit hook refuses subprocesses; even os.fork is refused, so nothing escapes the kill.
    result = run_program("import os\nos.fork()\n", timeout_s=2.0)
    assert result.status == "failed" and "blocked in the evaluation sandbox" in result.detail


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_a_timed_out_program_leaves_no_process_behind(bubblewrap):
    # A busy thread and a busy main thread; the kill of bwrap must take the sandbox with it.
    program = "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\nwhile True: pass\n"
    results: list[object] = []
    already = _descendants(os.getpid())  # children of other fixtures are not ours to judge
    runner = threading.Thread(target=lambda: results.append(run_program(program, timeout_s=3.0, sandbox=bubblewrap)))
    runner.start()
    seen: set[int] = set()
    while runner.is_alive() and len(seen) < 2:
        seen |= _descendants(os.getpid()) - already
        time.sleep(0.05)
    runner.join()
    assert results[0].status == "timeout"  # type: ignore[attr-defined]
    assert len(seen) >= 2  # bwrap and what it runs
    assert seen & _descendants(os.getpid()) == set()


@pytest.fixture()
def listener():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_network_access_is_refused(bubblewrap, listener):
    port, accepted = listener
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n"
    result = run_program(program)
    assert result.status == "failed"
    # The guard's audit hook refuses the first socket event (name lookup or connect), whatever
    # the network namespace would have done.
    assert re.fullmatch(r"PermissionError: blocked in the evaluation sandbox: socket\.\w+", result.detail), (
        result.detail
    )
    time.sleep(0.3)
    assert accepted == []  # nothing reached the listener on this machine's loopback


def test_the_network_namespace_alone_cuts_the_host_off(listener):
    prefix = network_isolation()
    if not prefix:
        pytest.skip("unshare cannot create a network namespace here; the audit hook is the only wall")
    port, accepted = listener
    # Without the audit hook: the namespace has no route to the host's loopback.
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    probe = subprocess.run(
        [*prefix, sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert probe.returncode != 0
    time.sleep(0.3)
    assert accepted == []


def test_environment_is_scrubbed_and_cwd_is_private(bubblewrap, monkeypatch):
    monkeypatch.setenv("NINETYTEN_TEST_SECRET", "do-not-leak")
    program = (
        "import os, sys\n"
        "assert 'NINETYTEN_TEST_SECRET' not in os.environ, 'leaked'\n"
        "assert os.listdir('.') == ['candidate.py'], os.listdir('.')\n"
        "assert os.getcwd() == '/sandbox' and os.environ['HOME'] == '/home/sandbox'\n"
        "assert sys.flags.isolated == 1 and sys.flags.no_site == 1\n"
    )
    result = run_program(program)
    assert result.status == "passed", result.detail


def test_parallel_runs_keep_their_order(bubblewrap):
    sources = [f"import sys\nsys.exit({code})\n" for code in (0, 1, 0, 1, 0)]
    statuses = [r.status for r in run_programs(sources, jobs=3)]
    assert statuses == ["passed", "failed", "passed", "failed", "passed"]


def test_the_canonical_answers_score_pass_at_1_of_one(bubblewrap):
    # Proves the scorer: the reference answer put back where it was masked passes every test.
    tasks = sample_tasks("both", 12, seed=0)
    outcomes = score(tasks, {"canonical": canonical_answers(tasks)}, jobs=2)
    assert len(outcomes) == 24
    failed = [(o.task_id, o.error) for o in outcomes if not o.passed]
    assert failed == []
    assert all(o.exact_match and o.edit_similarity == 1.0 and not o.verify_failed for o in outcomes)


# --- Programs that try to get out -------------------------------------------------------
#
# Each attack is run four ways: through `run_program` (bubblewrap + guard, what `ninetyten
# eval` does), in bubblewrap without the guard (the walls alone), with the guard alone and
# no namespace (what --unsafe-no-sandbox leaves), and with nothing at all, which must let it
# through: that last run proves each attack really does what it claims when unstopped.
# Afterwards nothing outside may have changed: a stand-in home with shell start-up files,
# the rest of the test's directory, and a loopback listener on the host.

ATTACK_PRELUDE = '''
import json, os, sys
HOME = {home!r}
PORT = {port}
report = {{"attempts": {{}}}}

def attempt(name, action):
    try:
        action()
        report["attempts"][name] = "done"
    except BaseException as error:
        report["attempts"][name] = f"{{type(error).__name__}}: {{error}}"[:200]

def append(path, text="echo pwned\\n"):
    with open(path, "a") as handle:
        handle.write(text)
'''

ATTACK_FINISH = '''
sys.stderr.write("\\n")
sys.exit("REPORT " + json.dumps(report))
'''

ATTACKS = {
    # The guard's state used to be a module global: walk every frame and empty what is there,
    # rebind the exception the guard raises, then try everything.
    "frame_walking": '''
import builtins
reached = 0
frame = sys._getframe()
while frame is not None:
    for key, value in list(frame.f_globals.items()) if frame.f_globals is not globals() else ():
        if isinstance(value, (tuple, frozenset)) and value and all(isinstance(v, (str, tuple)) for v in value):
            frame.f_globals[key] = type(value)()
            reached += 1
        elif type(value) is int and key.isupper():
            frame.f_globals[key] = 0
    frame = frame.f_back
report["reached"] = reached
builtins.PermissionError = KeyError
attempt("bashrc", lambda: append(HOME + "/.bashrc"))
attempt("socket", lambda: __import__("socket").create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"x"))
attempt("shell", lambda: __import__("subprocess").run(["/bin/sh", "-c", f"echo pwned >> {HOME}/.profile"]))
''',
    "writing_to_home": '''
attempt("tilde", lambda: append(os.path.expanduser("~/.bashrc")))
attempt("bashrc", lambda: append(HOME + "/.bashrc"))
attempt("profile", lambda: append(HOME + "/.profile"))
attempt("new_file", lambda: append(HOME + "/.config-autostart"))
attempt("dotdot", lambda: append(os.getcwd() + "/../../../../../../../../" + HOME + "/.bashrc"))
attempt("truncate", lambda: os.truncate(HOME + "/.profile", 0))
attempt("chmod", lambda: os.chmod(HOME + "/.bashrc", 0o777))
''',
    "links_and_descriptors": '''
def via_symlink():
    os.symlink(HOME + "/.bashrc", "link")
    append("link")

def via_dir_fd():
    directory = os.open(HOME, os.O_RDONLY)
    fd = os.open(".bashrc", os.O_WRONLY | os.O_APPEND, dir_fd=directory)
    os.write(fd, b"echo pwned\\n")

class Innocent(str):
    def startswith(self, *args):
        return True

attempt("symlink", via_symlink)
attempt("dir_fd", via_dir_fd)
attempt("str_subclass", lambda: append(Innocent(HOME + "/.bashrc")))
''',
    "sockets": '''
import socket
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"x"))
attempt("tcp6", lambda: socket.create_connection(("localhost", PORT), timeout=2).sendall(b"x"))
''',
    "subprocesses": '''
attempt("run", lambda: __import__("subprocess").run(["/bin/sh", "-c", f"echo pwned >> {HOME}/.bashrc"], check=True))
attempt("system", lambda: os.system(f"echo pwned >> {HOME}/.profile"))
attempt("spawn", lambda: os.posix_spawn("/bin/sh", ["sh", "-c", f"echo pwned > {HOME}/spawned"], {}))
def via_ctypes():
    import ctypes
    ctypes.CDLL(None).system(f"echo pwned > {HOME}/ctypes".encode())
attempt("ctypes", via_ctypes)
''',
    # Bounded, and every child exits at once: this also runs with nothing around it.
    "fork_bomb": '''
import time
forks = 0
def bomb():
    global forks
    while forks < 50:
        if os.fork() == 0:
            try:
                open(f"{HOME}/forked-{os.getpid()}", "w").close()
            finally:
                os._exit(0)
        forks += 1
attempt("fork", bomb)
report["forks"] = forks
time.sleep(0.2)
''',
}


@dataclasses.dataclass
class Host:
    root: Path  # everything the test owns outside the sandbox
    home: Path  # a stand-in for the user's home
    port: int
    accepted: list[object]

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        return {
            str(path.relative_to(self.root)): (path.stat().st_mode, path.read_bytes() if path.is_file() else b"")
            for path in sorted(self.root.rglob("*"))
        }


@pytest.fixture()
def host(tmp_path, listener):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# the user's shell start-up file\n")
    (home / ".profile").write_text("# the user's login profile\n")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "main.py").write_text("print('hello')\n")
    port, accepted = listener
    return Host(root=tmp_path, home=home, port=port, accepted=accepted)


def attack_source(name: str, host: Host) -> str:
    prelude = ATTACK_PRELUDE.format(home=str(host.home), port=host.port)
    return prelude + ATTACKS[name] + ATTACK_FINISH


def parse_report(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("REPORT "):
            return json.loads(line.removeprefix("REPORT "))
    raise AssertionError(f"the attack did not report (it did not run to its end): {text[-1500:]}")


def run_outside_the_guard(
    argv_for: Callable[[Path], tuple[list[str], dict[str, str], tuple[int, ...]]], source: str
) -> str:
    with tempfile.TemporaryDirectory(prefix="ninetyten-attack-") as work:
        folder = Path(work)
        (folder / "candidate.py").write_text(source)
        argv, env, fds = argv_for(folder)
        done = subprocess.run(
            argv, cwd=folder, env=env, pass_fds=fds, capture_output=True, text=True, timeout=60, check=False
        )
        return done.stderr


def run_attack(mode: str, name: str, host: Host, request: pytest.FixtureRequest) -> dict:
    source = attack_source(name, host)
    if mode == "guard only":  # runs everywhere: no bubblewrap needed
        return parse_report(run_program(source, timeout_s=20, sandbox=UnsandboxedProcess(network_prefix=())).detail)
    bubblewrap: BubblewrapSandbox = request.getfixturevalue("bubblewrap")
    if mode == "bubblewrap+guard":
        return parse_report(run_program(source, timeout_s=20, sandbox=bubblewrap).detail)
    with ExitStack() as stack:

        def in_bubblewrap(folder: Path):  # type: ignore[no-untyped-def]
            launch = bubblewrap.launch(folder, ["-I", "-S", "candidate.py"], stack)
            return launch.argv, launch.env, launch.pass_fds

        return parse_report(run_outside_the_guard(in_bubblewrap, source))


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("mode", ["bubblewrap+guard", "bubblewrap only", "guard only"])
def test_an_escaping_program_changes_nothing_outside(mode, name, host, request):
    before = host.snapshot()
    report = run_attack(mode, name, host, request)
    time.sleep(0.3)  # let the listener's accept loop see any late connection
    assert host.snapshot() == before, report
    assert host.accepted == [], report
    if name == "fork_bomb":
        assert report["forks"] == 0, report
    if name == "frame_walking" and mode != "bubblewrap only":
        assert report["reached"] > 0, "the walk must reach the guard's module globals for the test to mean anything"
    done = [key for key, outcome in report["attempts"].items() if outcome == "done"]
    if mode == "bubblewrap+guard":
        assert done == [], report
    if mode == "guard only":
        # The guard refuses every attempt itself (HOME is the working directory there).
        assert done in ([], ["tilde"]), report
        assert all(
            "blocked in the evaluation sandbox" in outcome
            for key, outcome in report["attempts"].items()
            if outcome != "done"
        ), report


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_attack_gets_out_when_nothing_stops_it(name, host):
    # The control: a plain interpreter with the stand-in home as HOME.
    before = host.snapshot()

    def naked(folder: Path):  # type: ignore[no-untyped-def]
        return [sys.executable, "-I", "-S", "candidate.py"], {"HOME": str(host.home), "PATH": os.defpath}, ()

    report = parse_report(run_outside_the_guard(naked, attack_source(name, host)))
    time.sleep(0.3)
    assert host.snapshot() != before or host.accepted, report


def test_the_program_runs_as_an_unprivileged_user_without_capabilities(bubblewrap):
    program = (
        "import os\n"
        "assert os.getresuid() == (65534,) * 3 and os.getresgid() == (65534,) * 3, os.getresuid()\n"
        "for change in (lambda: os.setuid(0), lambda: os.setgroups([0]), lambda: os.chroot('/')):\n"
        "    try:\n"
        "        change()\n"
        "    except PermissionError:\n"
        "        continue\n"
        "    raise SystemExit('a privileged call succeeded')\n"
    )
    with ExitStack() as stack:

        def in_bubblewrap(folder: Path):  # type: ignore[no-untyped-def]
            launch = bubblewrap.launch(folder, ["-I", "-S", "-c", program], stack)
            return launch.argv, launch.env, launch.pass_fds

        assert run_outside_the_guard(in_bubblewrap, "") == ""


def test_threads_still_work_inside(bubblewrap):
    program = (
        "import threading\n"
        "results = []\n"
        "threads = [threading.Thread(target=results.append, args=(n,)) for n in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "assert sorted(results) == list(range(8))\n"
    )
    assert run_program(program, sandbox=bubblewrap).status == "passed"


def test_the_sandbox_works_for_an_ordinary_user(bubblewrap):
    # As root, run the whole path (probe, bwrap in a user namespace, guard) as uid 65534,
    # with the system interpreter: the test interpreter may live where that user cannot read.
    system_python = Path("/usr/bin/python3")
    if os.geteuid() != 0 or not system_python.exists():
        pytest.skip(
            "needs root (to become another user) and /usr/bin/python3; as a non-root user every "
            "other sandbox test already runs this path"
        )
    with tempfile.TemporaryDirectory(prefix="ninetyten-user-") as place:  # pytest's tmp dirs are root-only
        check_as_ordinary_user(Path(place), system_python)


def check_as_ordinary_user(tmp_path: Path, system_python: Path) -> None:
    package = tmp_path / "code" / "lsp_server"
    (package / "eval").mkdir(parents=True)
    source = Path(eval_sandbox.__file__).parent
    (package / "__init__.py").write_text("")
    for name in ("__init__.py", "sandbox.py", "execution.py", "program_run.py", "guard.py", "seccomp.py"):
        shutil.copy(source / name, package / "eval" / name)
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    write_program = f"open({str(tmp_path / 'escaped')!r}, 'w')"
    script = (
        "import os\n"
        "from lsp_server.eval.sandbox import require_sandbox\n"
        "from lsp_server.eval.execution import run_program\n"
        "sandbox = require_sandbox()\n"
        "assert sandbox.setpriv is None  # a user namespace, not the root path\n"
        "print(run_program('import os\\nassert os.getresuid() == (65534,) * 3', sandbox=sandbox).status)\n"
        "print(run_program('import os\\nos.fork()', sandbox=sandbox).detail)\n"
        f"print(run_program({write_program!r}, sandbox=sandbox).detail)\n"
    )
    done = subprocess.run(
        [str(system_python), "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'code')!r})\n" + script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        user=65534,
        group=65534,
        extra_groups=[],
    )
    assert done.returncode == 0, done.stderr
    passed, fork, write = done.stdout.splitlines()
    assert passed == "passed"
    assert "blocked in the evaluation sandbox: os.fork" in fork
    assert "blocked in the evaluation sandbox" in write and not (tmp_path / "escaped").exists()
