"""`ninetyten doctor`'s native part: which build is installed, and does it run here.

Doctor never imports llama.cpp itself: a build that uses an instruction this CPU lacks
can die at import, and doctor must live to say so. Everything native runs in the
self-test's child process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lsp_server.llama_build.cpu import read_cpu_info
from lsp_server.llama_build.flags import BuildConfigError, plan_build
from lsp_server.llama_build.selftest import ModelSpec, report_lines, run_self_test
from lsp_server.llama_build.state import (
    SetupError,
    State,
    default_state_path,
    installed_version,
    llama_requirement,
    sticky_env,
)


def build_lines(env: Mapping[str, str] = os.environ, state_path: Path | None = None) -> tuple[list[str], bool]:
    """What the set-up recorded about the installed build, and whether it fits this machine."""
    state = State.load(state_path or default_state_path())
    version = installed_version()
    if version is None:
        return ["llama.cpp build PROBLEM: llama-cpp-python is not installed (run `make setup`)"], False
    if state is None or state.version != version:
        return [
            f"llama.cpp build llama-cpp-python {version} not built by `make setup`: its compile flags are "
            "unknown (the self-test below says whether it runs here)"
        ], True
    proven = "passed at set-up" if state.selftest and state.selftest.get("ok") else "not run at set-up"
    lines = [f"llama.cpp build level {state.level}, backend {state.backend}, key {state.key} (self-test {proven})"]
    try:
        plan = plan_build(read_cpu_info(), sticky_env(env, state), llama_requirement())
    except (BuildConfigError, SetupError) as error:
        lines.append(f"  {error}")
        return lines, True
    missing = sorted(set(state.cpu_flags) - set(plan.cpu_flags()))
    if missing:
        lines.append(f"  PROBLEM: built on a CPU with {', '.join(missing)}, which this one lacks: run `make setup`")
        return lines, False
    if state.key not in {plan.key(level) for level in plan.levels}:
        lines.append("  built for other settings or another CPU than this one now: `make setup` rebuilds it")
    return lines, True


def native_check(
    model: Path | None, *, gpu_layers: int = -1, env: Mapping[str, str] | None = None
) -> tuple[list[str], bool]:
    """Doctor's lines for the build and the self-test (with `model` as well, when given), and
    whether all is well: the self-test passed and the build was not made for another CPU."""
    lines, build_ok = build_lines(env if env is not None else os.environ)
    extra = [ModelSpec("model", model, gpu_layers)] if model is not None else []
    report = run_self_test(extra, gpu_layers=gpu_layers, env=env)
    return lines + report_lines(report), build_ok and report.ok
