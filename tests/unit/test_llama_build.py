"""Building llama.cpp for the running machine: CPU flags, the ladder of levels, build keys,
the self-test's verdicts and the set-up's reaction to a crash."""

from __future__ import annotations

import io
import json
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from lsp_server.llama_build.cpu import CpuInfo, parse_proc_cpuinfo, read_cpu_info
from lsp_server.llama_build.doctor import build_lines
from lsp_server.llama_build.flags import AMX_ENV, BACKEND_ENV, BuildConfigError, choose_backend, cpu_levels, plan_build
from lsp_server.llama_build.install import CRASHED_NAME, Installer
from lsp_server.llama_build.selftest import (
    Failure,
    ModelResult,
    ModelSpec,
    SelfTestReport,
    parse_child_output,
    parse_load_log,
    report_lines,
    run_child,
)
from lsp_server.llama_build.state import State, installed_version, llama_requirement, sticky_env

BASE = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx f16c fma avx2 bmi1 bmi2 hypervisor"
AVX512 = "avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16"
SAPPHIRE_RAPIDS = f"{BASE} {AVX512} amx_tile amx_int8 amx_bf16 avx_vnni"

CPUINFO_X86 = textwrap.dedent(f"""\
    processor\t: 0
    vendor_id\t: GenuineIntel
    model name\t: Intel(R) Xeon(R) Platinum 8488C
    flags\t\t: {SAPPHIRE_RAPIDS}

    processor\t: 1
    model name\t: Intel(R) Xeon(R) Platinum 8488C
    flags\t\t: fpu
    """)
CPUINFO_ARM = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp sve\n\n"

REQUIREMENT = "llama-cpp-python>=0.3.16,<0.4"


def linux_x86(flags: str) -> CpuInfo:
    return CpuInfo(system="Linux", machine="x86_64", model="test cpu", flags=frozenset(flags.split()))


def plan(cpu: CpuInfo, **env: str):
    return plan_build(cpu, env, REQUIREMENT)


# -- the CPU ----------------------------------------------------------------------------


def test_proc_cpuinfo_first_block_x86_and_arm():
    model, flags = parse_proc_cpuinfo(CPUINFO_X86)
    assert model == "Intel(R) Xeon(R) Platinum 8488C"
    assert {"amx_tile", "avx512f", "sse4_2"} <= flags and "fpu" in flags and len(flags) > 5
    _, arm_flags = parse_proc_cpuinfo(CPUINFO_ARM)
    assert {"asimd", "sve", "asimddp"} <= arm_flags


# -- levels and keys ----------------------------------------------------------------------


def test_amx_cpu_gets_no_amx_kernels_by_default():
    levels = plan(linux_x86(SAPPHIRE_RAPIDS)).levels
    assert [level.name for level in levels] == ["tuned", "avx2", "sse42"]
    tuned = levels[0].cmake_args
    assert "-DGGML_NATIVE=OFF" in tuned  # never -march=native
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(tuned)
    assert {"-DGGML_AVX512=ON", "-DGGML_AVX512_VNNI=ON", "-DGGML_AVX_VNNI=ON"} <= set(tuned)
    assert "no AMX" in levels[0].summary
    assert "-DGGML_AVX512=OFF" in levels[1].cmake_args and "-DGGML_AVX2=ON" in levels[1].cmake_args
    assert "-DGGML_AVX=OFF" in levels[2].cmake_args and "-DGGML_SSE42=ON" in levels[2].cmake_args


def test_amx_only_when_asked_and_only_as_the_first_level_to_prove():
    levels = plan(linux_x86(SAPPHIRE_RAPIDS), NINETYTEN_LLAMA_AMX="1").levels
    assert [level.name for level in levels] == ["tuned+amx", "tuned", "avx2", "sse42"]
    assert {"-DGGML_AMX_TILE=ON", "-DGGML_AMX_INT8=ON"} <= set(levels[0].cmake_args)
    # Asking for AMX on a CPU without it changes nothing.
    assert [lv.name for lv in plan(linux_x86(BASE), NINETYTEN_LLAMA_AMX="1").levels] == ["tuned", "sse42"]


def test_levels_only_use_what_the_cpu_lists():
    levels = cpu_levels(linux_x86(BASE))
    # Without AVX-512, "tuned" and "avx2" would be the same build: only one is kept.
    assert [level.name for level in levels] == ["tuned", "sse42"]
    assert "-DGGML_AVX512=OFF" in levels[0].cmake_args and "-DGGML_AVX2=ON" in levels[0].cmake_args
    # AVX-512 needs all five base flags; the extras need AVX-512.
    partial = cpu_levels(linux_x86(f"{BASE} avx512f avx512vbmi"))[0].cmake_args
    assert "-DGGML_AVX512=OFF" in partial and "-DGGML_AVX512_VBMI=OFF" in partial
    bare = cpu_levels(linux_x86("fpu sse sse2"))
    assert len(bare) == 1 and "generic" in bare[0].summary


def test_non_x86_builds_native_then_generic():
    arm = CpuInfo(system="Linux", machine="arm64", model="", flags=frozenset("fp asimd sve".split()))
    levels = cpu_levels(arm)
    assert [(lv.name, lv.cmake_args) for lv in levels] == [
        ("native", ("-DGGML_NATIVE=ON",)),
        ("generic", ("-DGGML_NATIVE=OFF",)),
    ]
    # A native build depends on every flag, so any difference changes the key.
    other = CpuInfo(system="Linux", machine="arm64", model="", flags=frozenset("fp asimd".split()))
    assert plan(arm).key(levels[0]) != plan(other).key(levels[0])


def test_key_changes_with_cpu_flags_args_backend_and_requirement():
    spr = plan(linux_x86(SAPPHIRE_RAPIDS))
    tuned = spr.levels[0]
    key = spr.key(tuned)
    assert len(key) == 16 and key == plan(linux_x86(SAPPHIRE_RAPIDS)).key(tuned)
    # Flags ggml does not use (a hypervisor bit) do not split the cache...
    assert plan(linux_x86(SAPPHIRE_RAPIDS + " constant_tsc")).key(tuned) == key
    # ...flags it uses do, even at the same level.
    assert plan(linux_x86(SAPPHIRE_RAPIDS.replace(" amx_int8", ""))).key(tuned) != key
    assert plan(linux_x86(SAPPHIRE_RAPIDS), CMAKE_ARGS="-DGGML_LTO=ON").key(tuned) != key
    assert plan(linux_x86(SAPPHIRE_RAPIDS), NINETYTEN_LLAMA_BACKEND="cuda").key(tuned) != key
    other = plan_build(linux_x86(SAPPHIRE_RAPIDS), {}, "llama-cpp-python>=0.4")
    assert other.key(tuned) != key
    assert len({spr.key(level) for level in spr.levels}) == len(spr.levels)


def test_backend_choice():
    linux, mac = linux_x86(BASE), CpuInfo(system="Darwin", machine="arm64", model="M2", flags=frozenset())
    assert choose_backend(None, linux) == "cpu" and choose_backend("", linux) == "cpu"
    assert choose_backend(None, mac) == "metal"
    assert choose_backend(" CUDA ", linux) == "cuda" and choose_backend("vulkan", linux) == "vulkan"
    with pytest.raises(BuildConfigError, match="cpu, cuda, metal, vulkan"):
        choose_backend("rocm", linux)
    with pytest.raises(BuildConfigError, match="macOS"):
        choose_backend("metal", linux)
    cuda = plan(linux, NINETYTEN_LLAMA_BACKEND="cuda", CMAKE_ARGS="-DGGML_CUDA_F16=ON")
    args = cuda.cmake_args(cuda.levels[0])
    assert args[0] == "-DLLAVA_BUILD=OFF" and "-DGGML_CUDA=ON" in args
    assert args[-1] == "-DGGML_CUDA_F16=ON"  # the user's own arguments come last and win
    with pytest.raises(BuildConfigError, match="CMAKE_ARGS"):
        plan(linux, CMAKE_ARGS='-DX="unterminated')


def test_requirement_comes_from_the_project(tmp_path):
    assert llama_requirement().startswith("llama-cpp-python>=")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["numpy", "llama_cpp_python[server] >=0.3.20, <0.4"]\n')
    assert llama_requirement(pyproject) == "llama-cpp-python>=0.3.20, <0.4"


# -- verdicts of the self-test ------------------------------------------------------------


def _events(*events: dict) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


def test_a_death_by_sigill_names_the_stage_and_the_cause():
    stdout = _events(
        {"event": "start", "stage": "importing llama.cpp"},
        {
            "event": "import",
            "version": "0.3.36",
            "system_info": "CPU : AVX2 = 1 | AMX_INT8 = 1 |",
            "gpu_offload": False,
        },
        {"event": "start", "stage": "generating with the self-test model"},
    )
    report = parse_child_output(
        stdout + "garbage a library printed\n", "Fatal Python error: Illegal instruction\n", -signal.SIGILL
    )
    assert not report.ok and report.failure is not None
    assert report.failure.kind == "signal" and report.failure.signal == "SIGILL"
    assert report.failure.stage == "generating with the self-test model"
    assert report.failure.is_build_crash
    assert report.cpu_features() == ["AVX2", "AMX_INT8"]
    text = "\n".join(report_lines(report))
    assert "crashed with SIGILL while generating" in text and "does not allow" in text and "AMX" in text
    assert "Illegal instruction" in text and "self-test      ok" not in text


@pytest.mark.parametrize(
    ("signum", "build_crash", "cause"),
    [
        (signal.SIGSEGV, True, "damaged or unsupported GGUF"),
        (signal.SIGABRT, True, "GGML_ASSERT"),
        (signal.SIGBUS, True, "truncated"),
        (signal.SIGKILL, False, "out-of-memory"),
    ],
)
def test_each_signal_has_a_likely_cause(signum, build_crash, cause):
    report = parse_child_output(_events({"event": "start", "stage": "loading the model (m.gguf)"}), "", -signum)
    assert report.failure is not None and report.failure.is_build_crash is build_crash
    assert cause in report.failure.describe() and signal.Signals(signum).name in report.failure.describe()


def test_windows_crash_codes_read_as_signals():
    report = parse_child_output(_events({"event": "start", "stage": "generating with the model"}), "", 0xC000001D)
    assert report.failure is not None and report.failure.signal == "SIGILL" and report.failure.is_build_crash


def test_errors_and_timeouts_are_not_crashes():
    error = parse_child_output(
        _events(
            {"event": "start", "stage": "loading the model (x.gguf)"},
            {"event": "error", "message": "llama.cpp could not load x.gguf"},
        ),
        "",
        1,
    )
    assert error.failure == Failure("error", "loading the model (x.gguf)", message="llama.cpp could not load x.gguf")
    assert not error.failure.is_build_crash
    silent = parse_child_output("", "Traceback ...\nImportError: no llama_cpp\n", 1)
    assert silent.failure is not None and "status 1" in silent.failure.message
    assert "ImportError" in silent.failure.stderr_tail
    hung = parse_child_output(
        _events({"event": "start", "stage": "generating with the model"}), "", None, timed_out=True, timeout_s=30
    )
    assert hung.failure is not None and hung.failure.kind == "timeout" and not hung.failure.is_build_crash
    unfinished = parse_child_output(_events({"event": "start", "stage": "x"}), "", 0)
    assert unfinished.failure is not None  # exit 0 without "finished" is not a pass


def test_a_real_child_killed_by_a_real_signal(tmp_path):
    # Any command that speaks the JSON lines will do; this one segfaults the way llama.cpp would.
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent("""\
        import json, os, signal, sys
        spec = json.loads(sys.stdin.read())
        print(json.dumps({"event": "start", "stage": "loading the " + spec["models"][0]["label"]}), flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
        """)
    )
    report = run_child(
        [ModelSpec("self-test model", tmp_path / "m.gguf")], command=[sys.executable, str(script)], timeout_s=60
    )
    assert report.failure is not None and report.failure.signal == "SIGSEGV"
    assert report.failure.stage == "loading the self-test model"


# -- the set-up's reaction ----------------------------------------------------------------


class RecordingInstaller(Installer):
    """The real decision logic, with building and installing replaced by a record of the calls."""

    def __init__(self, *args, reports: list[SelfTestReport], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reports = reports
        self.installed: list[str] = []

    def install(self, level):
        self.installed.append(level.name)
        if self.dry_run:
            return None
        state = State(
            key=self.plan.key(level),
            level=level.name,
            backend=self.plan.backend,
            cmake_args=self.plan.cmake_args_text(level),
            wheel="w.whl",
            version="0.3.36",
        )
        state.save(self.state_path)
        return state

    def installed_state(self):
        return State.load(self.state_path)

    def run_self_test(self):
        return self.reports.pop(0)


def _crash(name: str) -> SelfTestReport:
    return SelfTestReport(failure=Failure("signal", "generating with the self-test model", signal=name))


def _installer(tmp_path: Path, reports: list[SelfTestReport], *, dry_run: bool = False, level: str | None = "tuned"):
    build_plan = plan(linux_x86(SAPPHIRE_RAPIDS))
    out = io.StringIO()
    installer = RecordingInstaller(
        build_plan,
        wheel_dir=tmp_path / "wheels",
        state_path=tmp_path / "state.json",
        dry_run=dry_run,
        out=out,
        reports=reports,
    )
    if level is not None:
        chosen = build_plan.level(level)
        State(
            key=build_plan.key(chosen), level=level, backend="cpu", cmake_args="", wheel="w.whl", version="0.3.36"
        ).save(tmp_path / "state.json")
    return installer, out


def test_a_crash_rebuilds_one_level_safer_and_remembers_it(tmp_path):
    installer, out = _installer(tmp_path, [_crash("SIGILL"), SelfTestReport()])
    assert installer.check() == 0
    assert installer.installed == ["avx2"]
    tuned = installer.plan.levels[0]
    marker = json.loads((installer.key_dir(tuned) / CRASHED_NAME).read_text())
    assert marker["signal"] == "SIGILL"
    state = State.load(tmp_path / "state.json")
    assert state is not None and state.level == "avx2" and state.selftest and state.selftest["ok"]
    assert "level tuned crashed with SIGILL: rebuilding with safer flags, level avx2" in out.getvalue()
    # The next set-up goes straight to the level that works here.
    assert installer.chosen_level().name == "avx2"


def test_an_unknown_build_that_crashes_is_replaced_by_the_best_level(tmp_path):
    installer, out = _installer(tmp_path, [_crash("SIGILL"), SelfTestReport()], level=None)
    assert installer.check() == 0
    assert installer.installed == ["tuned"]
    assert "the installed build (flags unknown) crashed with SIGILL" in out.getvalue()


def test_the_ladder_ends(tmp_path):
    installer, out = _installer(tmp_path, [_crash("SIGILL"), _crash("SIGILL"), _crash("SIGILL")])
    assert installer.check() == 1
    assert installer.installed == ["avx2", "sse42"]
    assert "no safer level is left" in out.getvalue() and "every build level crashed" in out.getvalue()
    assert installer.chosen_level() is None


def test_oom_kill_or_error_does_not_rebuild(tmp_path):
    for report in (_crash("SIGKILL"), SelfTestReport(failure=Failure("error", "loading", message="bad file"))):
        installer, out = _installer(tmp_path, [report])
        assert installer.check() == 1
        assert installer.installed == [] and "nothing rebuilt" in out.getvalue()
        assert not list((tmp_path / "wheels").glob(f"*/{CRASHED_NAME}"))


def test_dry_run_changes_nothing(tmp_path):
    installer, out = _installer(tmp_path, [_crash("SIGILL")], dry_run=True)
    before = (tmp_path / "state.json").read_text()
    assert installer.check() == 1
    assert installer.installed == ["avx2"]
    assert (tmp_path / "state.json").read_text() == before
    assert not (tmp_path / "wheels").exists()


def test_dry_run_build_prints_the_command(tmp_path):
    build_plan = plan(linux_x86(SAPPHIRE_RAPIDS))
    out = io.StringIO()
    installer = Installer(
        build_plan, wheel_dir=tmp_path / "wheels", state_path=tmp_path / "s.json", dry_run=True, out=out
    )
    assert installer.build(build_plan.level("avx2")) is None
    printed = out.getvalue()
    assert "would build level avx2" in printed and "-DGGML_AVX512=OFF" in printed
    assert "--no-cache-dir" in printed and "--no-binary llama-cpp-python" in printed
    assert not (tmp_path / "wheels").exists()


def test_a_cached_wheel_is_reused_only_under_its_key(tmp_path):
    build_plan = plan(linux_x86(SAPPHIRE_RAPIDS))
    installer = Installer(
        build_plan, wheel_dir=tmp_path, state_path=tmp_path / "s.json", dry_run=True, out=io.StringIO()
    )
    tuned = build_plan.level("tuned")
    wheel = installer.key_dir(tuned) / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"")
    assert installer.build(tuned) == wheel
    other = Installer(
        plan(linux_x86(BASE)), wheel_dir=tmp_path, state_path=tmp_path / "s.json", dry_run=True, out=io.StringIO()
    )
    assert other.build(other.plan.levels[0]) is None  # another CPU: a different key, so a build


def test_the_last_choice_sticks_until_named_again():
    state = State(
        key="k",
        level="tuned",
        backend="cuda",
        cmake_args="",
        wheel="w",
        version="1",
        user_args="-DGGML_CUDA_F16=ON",
        amx=True,
    )
    merged = sticky_env({}, state)
    assert merged[BACKEND_ENV] == "cuda" and merged["CMAKE_ARGS"] == "-DGGML_CUDA_F16=ON" and merged[AMX_ENV] == "1"
    named = sticky_env({BACKEND_ENV: "cpu", "CMAKE_ARGS": "", AMX_ENV: "0"}, state)
    assert named[BACKEND_ENV] == "cpu" and named["CMAKE_ARGS"] == "" and named[AMX_ENV] == "0"
    assert sticky_env({"X": "1"}, None) == {"X": "1"}


def test_doctor_flags_a_build_made_for_another_cpu(tmp_path):
    version = installed_version()
    assert version is not None
    current = plan_build(read_cpu_info(), {}, llama_requirement())
    path = tmp_path / "state.json"
    State(
        key=current.key(current.levels[0]),
        level=current.levels[0].name,
        backend=current.backend,
        cmake_args="",
        wheel="w",
        version=version,
        cpu_flags=current.cpu_flags(),
    ).save(path)
    lines, ok = build_lines({}, path)
    assert ok and lines[0].startswith(f"llama.cpp build level {current.levels[0].name}") and len(lines) == 1
    State(
        key="0" * 16,
        level="tuned",
        backend=current.backend,
        cmake_args="",
        wheel="w",
        version=version,
        cpu_flags=[*current.cpu_flags(), "avx_from_elsewhere"],
    ).save(path)
    lines, ok = build_lines({}, path)
    assert not ok and "avx_from_elsewhere, which this one lacks" in lines[1]
    lines, ok = build_lines({}, tmp_path / "missing.json")
    assert ok and "not built by `make setup`" in lines[0]


def test_what_llama_cpp_offloaded_is_read_from_its_load_log():
    log = textwrap.dedent("""\
        load_tensors: offloading 18 repeating layers to GPU
        load_tensors: offloading output layer to GPU
        load_tensors: offloaded 19/19 layers to GPU
        load_tensors:        CUDA0 model buffer size =   230.10 MiB
        load_tensors:   CPU_Mapped model buffer size =    80.00 MiB
        load_tensors:   CPU_Mapped model buffer size =     2.50 MiB
        """)
    assert parse_load_log(log) == ("19/19", {"CUDA0": 230.1, "CPU_Mapped": 82.5})
    assert parse_load_log("load_tensors:          AMX model buffer size =    10.00 MiB\n") == (None, {"AMX": 10.0})
    report = SelfTestReport(
        gpu_offload=True,
        models=[ModelResult("model", "m.gguf", tokens=8, tokens_per_s=50, offloaded="19/19", buffers={"CUDA0": 230.1})],
    )
    text = "\n".join(report_lines(report))
    assert "gpu offload    supported by this build" in text
    assert "model: 8 tokens at 50.0 tok/s" in text and "19/19 layers on the GPU; weights: CUDA0 230.1 MiB" in text
