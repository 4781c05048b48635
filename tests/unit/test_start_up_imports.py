"""Every editor window runs a language server and every commit runs the hook, each in its own
Python process: what they import at start-up is memory that each of them carries (see
bench/engine_process.py). Libraries only some paths need are imported on those paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What the hook loads to write a commit message, and what the language server loads to serve.
HOOK = ("lsp_server.cli.main", "lsp_server.explain.hooks", "lsp_server.engine.core", "lsp_server.explain.staged")
SERVER = ("lsp_server.cli.main", "lsp_server.lsp.app", "lsp_server.engine_host.client")


def loaded_after(modules: tuple[str, ...], wanted: tuple[str, ...]) -> list[str]:
    program = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {list(wanted)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("modules", [HOOK, SERVER], ids=["hook", "server"])
def test_remote_clients_templates_and_tables_load_only_where_they_are_used(modules: tuple[str, ...]):
    # httpx: only when a policy has a remote tier (the registry imports the client);
    # jinja2: only to render a model's own chat template (in a child process);
    # rich: only in the commands that print tables and progress bars.
    assert loaded_after(modules, ("httpx", "jinja2", "rich")) == []


def test_the_hook_does_not_load_the_context_index():
    # The hook's facts need a file's language and identifiers, not numpy and the index.
    assert loaded_after(HOOK, ("numpy", "lsp_server.context.index", "lsp_server.context.tokens")) == []
