"""The native self-test on this machine's real llama.cpp build, crashes by real signals in a
real child process, and how `doctor` and the set-up react to them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

from local_models.tiny import QUANTIZED_TYPES
from lsp_server.llama_build.cpu import read_cpu_info
from lsp_server.llama_build.flags import plan_build
from lsp_server.llama_build.selftest import INJECT_ENV, ModelSpec, build_selftest_model, run_self_test
from lsp_server.llama_build.state import State, installed_version, llama_requirement

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=timeout,
    )


def test_the_self_test_model_uses_the_quantized_kernels(tmp_path):
    path = build_selftest_model(tmp_path)
    types = {tensor.name: tensor.tensor_type.name for tensor in gguf.GGUFReader(path).tensors}
    assert types["token_embd.weight"] == "Q8_0" and types["output.weight"] == "Q6_K"
    assert types["blk.1.ffn_up.weight"] == "Q4_K" and types["blk.0.attn_v.weight"] == "Q4_0"
    assert {types[name] for name in types if name.endswith("norm.weight")} == {"F32"}
    assert set(QUANTIZED_TYPES.values()) <= set(types.values())


def test_the_real_build_passes_its_self_test(endless_model_path):
    report = run_self_test([ModelSpec("model", endless_model_path, gpu_layers=-1)], timeout_s=240)
    assert report.ok, report.failure and report.failure.describe()
    assert report.llama_version == installed_version()
    assert [model.label for model in report.models] == ["self-test model", "model"]
    for model in report.models:
        assert model.tokens == 8 and model.tokens_per_s > 0
        # A CPU-only build reports no offload; a GPU build says how many layers llama.cpp placed.
        assert (model.offloaded is None) == (report.gpu_offload is False)
    state = State.load(Path(sys.prefix) / "ninetyten-llama-build.json")
    if state is not None and state.version == installed_version() and not state.amx:
        assert not {"AMX_INT8", "AMX_TILE"} & set(report.cpu_features())  # no AMX kernels unless asked for


def test_a_crash_only_where_the_build_uses_a_feature(tmp_path):
    # The injection can mimic a CPU that lacks one feature: only builds using it die.
    used = run_self_test(env={**os.environ, INJECT_ENV: "SIGILL:SSE3"}, timeout_s=240)
    unused = run_self_test(env={**os.environ, INJECT_ENV: "SIGILL:NO_SUCH_FEATURE"}, timeout_s=240)
    assert unused.ok
    if "SSE3" in unused.cpu_features():
        assert used.failure is not None and used.failure.signal == "SIGILL"
        assert used.failure.stage == "generating with the self-test model"


@pytest.mark.parametrize(
    ("inject", "words"),
    [
        ("SIGILL", ["crashed with SIGILL while generating with the self-test model", "does not allow"]),
        ("SIGSEGV@load", ["crashed with SIGSEGV while loading the self-test model", "damaged or unsupported GGUF"]),
        ("SIGKILL@load", ["crashed with SIGKILL while loading", "out-of-memory"]),
    ],
)
def test_doctor_never_says_ok_for_a_build_that_crashes(inject, words, endless_model_path, tmp_path):
    result = _run(
        ["lsp_server", "doctor"],
        {INJECT_ENV: inject, "NINETYTEN_HOME": str(tmp_path), "NINETYTEN_MODEL": str(endless_model_path)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    for word in words:
        assert word in result.stdout
    assert "self-test      PROBLEM" in result.stdout and "status         problems found" in result.stdout
    assert "status         ok" not in result.stdout and "Traceback" not in result.stderr


def _state_for(level_name: str, tmp_path: Path) -> Path:
    plan = plan_build(read_cpu_info(), os.environ, llama_requirement())
    level = plan.level(level_name)
    path = tmp_path / "state.json"
    State(
        key=plan.key(level),
        level=level.name,
        backend=plan.backend,
        cmake_args=plan.cmake_args_text(level),
        wheel="unused.whl",
        version=installed_version() or "?",
    ).save(path)
    return path


def test_setup_rebuilds_safer_after_a_crash_dry_run(tmp_path):
    plan = plan_build(read_cpu_info(), os.environ, llama_requirement())
    if len(plan.levels) < 2:
        pytest.skip("this CPU has a single build level")
    first, second = plan.levels[0], plan.levels[1]
    state = _state_for(first.name, tmp_path)
    before = state.read_text()
    wheels = tmp_path / "wheels"
    result = _run(
        ["lsp_server.llama_build", "check", "--dry-run", "--state", str(state), "--wheel-dir", str(wheels)],
        {INJECT_ENV: "SIGILL"},
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "crashed with SIGILL while generating with the self-test model" in out
    assert f"level {first.name} crashed with SIGILL: rebuilding with safer flags, level {second.name}" in out
    assert f"would build level {second.name}" in out
    assert f"CMAKE_ARGS='{plan.cmake_args_text(second)}'" in out and "pip wheel" in out
    # A dry run leaves everything as it was.
    assert state.read_text() == before and not wheels.exists()


def test_setup_replaces_a_build_it_did_not_make_when_it_crashes(tmp_path):
    plan = plan_build(read_cpu_info(), os.environ, llama_requirement())
    result = _run(
        [
            "lsp_server.llama_build",
            "check",
            "--dry-run",
            "--state",
            str(tmp_path / "none.json"),
            "--wheel-dir",
            str(tmp_path / "wheels"),
        ],
        {INJECT_ENV: "SIGILL"},
    )
    assert result.returncode == 1
    assert "the installed build (flags unknown) crashed with SIGILL" in result.stdout
    assert f"would build level {plan.levels[0].name}" in result.stdout


def test_setup_check_passes_on_the_real_build(tmp_path):
    state = _state_for(plan_build(read_cpu_info(), os.environ, llama_requirement()).levels[0].name, tmp_path)
    result = _run(["lsp_server.llama_build", "check", "--state", str(state), "--wheel-dir", str(tmp_path / "w")], {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test      ok" in result.stdout
    recorded = State.load(state)
    assert recorded is not None and recorded.selftest is not None and recorded.selftest["ok"] is True
