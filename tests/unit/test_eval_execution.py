"""The sandbox that runs completed programs: pass, fail, time out, no network."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from lsp_server.eval.completion_eval import canonical_answers, score
from lsp_server.eval.execution import network_isolation, run_program, run_programs
from lsp_server.eval.humaneval import all_tasks, sample_tasks


def test_a_correct_completion_passes_and_a_wrong_one_fails():
    task = next(t for t in all_tasks("single") if t.task_id == "HumanEval/0/single/L19")
    assert task.middle == "return False"
    assert run_program(task.program(task.middle)).status == "passed"
    assert run_program(task.program("return True")).status == "failed"
    wrong = run_program(task.program("raise ValueError('not the answer')"))
    assert wrong.status == "failed" and "ValueError" in wrong.detail
    broken = run_program(task.program("if (:"))
    assert broken.status == "failed" and "SyntaxError" in broken.detail


def test_an_infinite_loop_times_out_quickly():
    started = time.perf_counter()
    result = run_program("while True:\n    pass\n", timeout_s=1.0)
    assert result.status == "timeout"
    assert time.perf_counter() - started < 4.0


def test_a_child_process_cannot_outlive_the_timeout():
    # The audit hook refuses subprocesses; even os.fork is refused, so nothing escapes the kill.
    result = run_program("import os\nos.fork()\n", timeout_s=2.0)
    assert result.status == "failed" and "blocked in the evaluation sandbox" in result.detail


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


def test_network_access_is_refused(listener):
    port, accepted = listener
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n"
    result = run_program(program)
    assert result.status == "failed"
    assert "PermissionError" in result.detail or "Error" in result.detail
    time.sleep(0.3)
    assert accepted == []  # nothing reached the listener on this machine's loopback


def test_the_network_namespace_alone_cuts_the_host_off(listener):
    prefix = network_isolation()
    if not prefix:
        pytest.skip("unshare cannot create a network namespace here; the audit hook is the only wall")
    port, accepted = listener
    # Without the audit hook: the namespace has no route to the host's loopback.
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    probe = subprocess.run([*prefix, sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30,
                           check=False)
    assert probe.returncode != 0
    time.sleep(0.3)
    assert accepted == []


def test_environment_is_scrubbed_and_cwd_is_private(monkeypatch):
    monkeypatch.setenv("NINETYTEN_TEST_SECRET", "do-not-leak")
    program = ("import os, sys\n"
               "assert 'NINETYTEN_TEST_SECRET' not in os.environ, 'leaked'\n"
               "assert set(os.listdir('.')) <= {'candidate.py', 'stdout', 'stderr'}\n"
               "assert sys.flags.isolated == 1\n")
    result = run_program(program)
    assert result.status == "passed", result.detail


def test_parallel_runs_keep_their_order():
    sources = [f"import sys\nsys.exit({code})\n" for code in (0, 1, 0, 1, 0)]
    statuses = [r.status for r in run_programs(sources, jobs=3)]
    assert statuses == ["passed", "failed", "passed", "failed", "passed"]


def test_the_canonical_answers_score_pass_at_1_of_one():
    # Proves the scorer: the reference answer put back where it was masked passes every test.
    tasks = sample_tasks("both", 12, seed=0)
    outcomes = score(tasks, {"canonical": canonical_answers(tasks)}, jobs=2)
    assert len(outcomes) == 24
    failed = [(o.task_id, o.error) for o in outcomes if not o.passed]
    assert failed == []
    assert all(o.exact_match and o.edit_similarity == 1.0 and not o.verify_failed for o in outcomes)
