"""Build, cache, install and prove llama-cpp-python for this machine (`make setup` runs this).

    python -m lsp_server.llama_build plan             what would be built, and what is installed
    python -m lsp_server.llama_build install          build (or reuse) and install the wheel for this machine
    python -m lsp_server.llama_build check            self-test the installed build; rebuild safer if it crashes
    python -m lsp_server.llama_build ensure           install, then check unless this build already passed

Wheels live in a cache directory, one subdirectory per build key (see `flags`), so a
wheel is only ever reused by a machine whose CPU flags and build arguments hash the same.
pip's own wheel cache is never used for llama-cpp-python: it is keyed by the source
archive alone, so it would hand a `-march=native` wheel from one CPU to another.

A build that crashes its self-test by a signal that points at the build (SIGILL, SIGSEGV,
...) is marked as crashed in its key directory and the next, safer level of the ladder is
built and checked, until one passes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsp_server.llama_build.flags import BuildLevel, BuildPlan
from lsp_server.llama_build.state import PACKAGE, SetupError, State, installed_version, locked, now_iso, write_json

if TYPE_CHECKING:  # the self-test needs the project's dependencies; the installer must not
    from lsp_server.llama_build.selftest import SelfTestReport

CRASHED_NAME = "crashed.json"
BUILD_INFO_NAME = "build.json"
SELFTEST_TIMEOUT_S = 300.0

EXIT_OK = 0
EXIT_FAILED = 1


class Installer:
    def __init__(
        self,
        plan: BuildPlan,
        *,
        wheel_dir: Path,
        state_path: Path,
        dry_run: bool = False,
        out: Any = None,
        python: str = sys.executable,
    ) -> None:
        self.plan = plan
        self.wheel_dir = wheel_dir
        self.state_path = state_path
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.python = python

    def say(self, text: str) -> None:
        print(f"llama.cpp build: {text}", file=self.out, flush=True)

    # -- the ladder ----------------------------------------------------------

    def key_dir(self, level: BuildLevel) -> Path:
        return self.wheel_dir / self.plan.key(level)

    def crashed(self, level: BuildLevel) -> dict[str, Any] | None:
        try:
            return json.loads((self.key_dir(level) / CRASHED_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def wheel(self, level: BuildLevel) -> Path | None:
        wheels = sorted(self.key_dir(level).glob("*.whl"))
        return wheels[-1] if wheels else None

    def chosen_level(self, after: str | None = None) -> BuildLevel | None:
        """The best level not known to crash here (after `after`, when that one just crashed)."""
        names = [level.name for level in self.plan.levels]
        start = names.index(after) + 1 if after in names else 0
        for level in self.plan.levels[start:]:
            if self.crashed(level) is None:
                return level
        return None

    def installed_state(self) -> State | None:
        """The state file, if it describes the llama-cpp-python that is installed now."""
        state = State.load(self.state_path)
        if state is None or state.version != installed_version():
            return None
        return state

    # -- building and installing ---------------------------------------------

    def build_command(self, target: Path) -> list[str]:
        return [
            self.python,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "--no-binary",
            PACKAGE,
            "--wheel-dir",
            str(target),
            self.plan.requirement,
        ]

    def build(self, level: BuildLevel) -> Path | None:
        """The wheel for `level`, built unless the cache has it; None in a dry run that would build."""
        existing = self.wheel(level)
        if existing is not None:
            return existing
        key_dir = self.key_dir(level)
        cmake_args = self.plan.cmake_args_text(level)
        if self.dry_run:
            self.say(f"would build level {level.name} ({level.summary}) into {key_dir}:")
            self.say(f"  CMAKE_ARGS={shlex.quote(cmake_args)} {shlex.join(self.build_command(key_dir))}")
            return None
        with locked(self.wheel_dir / f"{key_dir.name}.lock"):
            existing = self.wheel(level)  # another checkout may have built it while we waited
            if existing is not None:
                return existing
            key_dir.mkdir(parents=True, exist_ok=True)
            self.say(
                f"building {self.plan.requirement} for this machine: level {level.name} ({level.summary}), "
                f"backend {self.plan.backend}; this takes several minutes"
            )
            self.say(f"  CMAKE_ARGS={cmake_args}")
            env = {**os.environ, "CMAKE_ARGS": cmake_args}
            env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(dir=key_dir, prefix=".build-") as tmp:
                result = subprocess.run(self.build_command(Path(tmp)), env=env, capture_output=True, text=True)
                if result.returncode != 0:
                    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
                    raise SetupError(f"building {PACKAGE} failed (level {level.name}):\n{tail}")
                built = sorted(Path(tmp).glob("*.whl"))
                if not built:
                    raise SetupError(f"pip built no wheel for {PACKAGE}")
                wheel = key_dir / built[-1].name
                os.replace(built[-1], wheel)
            seconds = time.perf_counter() - started
            write_json(
                key_dir / BUILD_INFO_NAME,
                {
                    "level": level.name,
                    "summary": level.summary,
                    "backend": self.plan.backend,
                    "cmake_args": cmake_args,
                    "cpu": self.plan.cpu.model,
                    "machine": self.plan.cpu.machine,
                    "requirement": self.plan.requirement,
                    "built": now_iso(),
                    "build_seconds": round(seconds, 1),
                },
            )
            self.say(f"built {wheel.name} in {seconds:.0f} s")
            return wheel

    def install(self, level: BuildLevel) -> State | None:
        wheel = self.build(level)
        key = self.plan.key(level)
        if wheel is None:
            self.say(f"would install it (key {key})")
            return None
        if self.dry_run:
            self.say(f"would install {wheel} (level {level.name}, key {key})")
            return None
        # --no-deps --force-reinstall replaces a same-version wheel built elsewhere (pip's
        # cache); the second call only adds missing dependencies.
        for extra in (["--no-deps", "--force-reinstall"], []):
            result = subprocess.run(
                [self.python, "-m", "pip", "install", "--quiet", *extra, str(wheel)], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise SetupError(f"installing {wheel} failed:\n{result.stderr.strip()}")
        version = installed_version() or "?"
        state = State(
            key=key,
            level=level.name,
            backend=self.plan.backend,
            cmake_args=self.plan.cmake_args_text(level),
            wheel=str(wheel),
            version=version,
            user_args=shlex.join(self.plan.user_args),
            amx=self.plan.amx,
            cpu_flags=self.plan.cpu_flags(),
        )
        state.save(self.state_path)
        self.say(f"installed {PACKAGE} {version}, level {level.name} ({level.summary}), key {key}")
        return state

    def ensure_installed(self) -> State | None:
        level = self.chosen_level()
        if level is None:
            raise SetupError(self._nothing_left())
        state = self.installed_state()
        if state is not None and state.key == self.plan.key(level):
            return state
        if state is None and installed_version() is not None:
            self.say(
                f"the installed {PACKAGE} {installed_version()} was not built by this set-up "
                "(it may come from pip's cache, built for another CPU): replacing it"
            )
        return self.install(level)

    # -- proving -------------------------------------------------------------

    def run_self_test(self) -> SelfTestReport:
        from lsp_server.llama_build.selftest import run_self_test

        return run_self_test(timeout_s=SELFTEST_TIMEOUT_S)

    def check(self) -> int:
        """Self-test the installed build; rebuild along the ladder while it crashes."""
        from lsp_server.llama_build.selftest import report_lines

        for _ in range(len(self.plan.levels) + 1):
            state = self.installed_state()
            report = self.run_self_test()
            self.say("self-test of the installed build:")
            for line in report_lines(report):
                print(f"  {line}", file=self.out, flush=True)
            if report.ok:
                if state is not None and not self.dry_run:
                    state.selftest = {
                        "ok": True,
                        "at": now_iso(),
                        "tokens_per_s": [round(model.tokens_per_s, 1) for model in report.models],
                    }
                    state.save(self.state_path)
                return EXIT_OK
            failure = report.failure
            assert failure is not None
            if not failure.is_build_crash:
                self.say("not a problem a safer build can fix; nothing rebuilt")
                return EXIT_FAILED
            level_name = state.level if state is not None else None
            if state is not None and not self.dry_run:
                level = self.plan.level(state.level) if state.level in {lv.name for lv in self.plan.levels} else None
                if level is not None and self.plan.key(level) == state.key:
                    write_json(
                        self.key_dir(level) / CRASHED_NAME,
                        {"signal": failure.signal, "stage": failure.stage, "at": now_iso()},
                    )
            described = f"level {level_name}" if level_name else "the installed build (flags unknown)"
            following = self.chosen_level(after=level_name)
            if following is None:
                self.say(f"{described} crashed and no safer level is left: {self._nothing_left()}")
                return EXIT_FAILED
            self.say(
                f"{described} crashed with {failure.signal}: rebuilding with safer flags, "
                f"level {following.name} ({following.summary})"
            )
            if self.install(following) is None:  # dry run: the command was printed
                return EXIT_FAILED
        return EXIT_FAILED

    def ensure(self) -> int:
        state = self.ensure_installed()
        if state is not None and state.selftest and state.selftest.get("ok"):
            self.say(f"{PACKAGE} {state.version}, level {state.level}, key {state.key}: self-test passed")
            return EXIT_OK
        return self.check()

    def _nothing_left(self) -> str:
        crashed = ", ".join(
            f"{level.name} ({(self.crashed(level) or {}).get('signal', '?')})"
            for level in self.plan.levels
            if self.crashed(level)
        )
        return (
            f"every build level crashed on this machine: {crashed}. Report it with the output of "
            f"`ninetyten doctor`; `python -m lsp_server.llama_build install --retry` forgets the crashes"
        )

    def forget_crashes(self) -> None:
        for level in self.plan.levels:
            marker = self.key_dir(level) / CRASHED_NAME
            if marker.exists() and not self.dry_run:
                marker.unlink()
                self.say(f"forgot the crash of level {level.name}")

    def describe(self) -> None:
        cpu = self.plan.cpu
        self.say(f"cpu {cpu.model or '?'} ({cpu.machine}, {cpu.system}); backend {self.plan.backend}")
        self.say(f"requirement {self.plan.requirement}; wheels in {self.wheel_dir}")
        chosen = self.chosen_level()
        for level in self.plan.levels:
            status = "crashed" if self.crashed(level) else "built" if self.wheel(level) else "not built"
            mark = "->" if chosen is not None and level.name == chosen.name else "  "
            self.say(f"{mark} {level.name:<10} key {self.plan.key(level)}  {status:<9}  {level.summary}")
        state = self.installed_state()
        if state is None:
            version = installed_version()
            self.say(
                f"installed: {PACKAGE} {version}, not built by this set-up" if version else f"installed: no {PACKAGE}"
            )
        else:
            passed = "self-test passed" if state.selftest and state.selftest.get("ok") else "self-test not run"
            self.say(f"installed: level {state.level}, key {state.key}, {passed}")
