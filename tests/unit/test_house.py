"""The shape of the code, checked: small modules, thin handlers, one list of protocol ids.

The import contracts (layers, no cycles) are checked by lint-imports in `make check`.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import lsp_server
from lsp_server.lsp import ids
from lsp_server.lsp.app import create_server

PACKAGE = Path(lsp_server.__file__).parent
ROOT = PACKAGE.parent
# Data tables may be long: the secret rules are one list of patterns.
DATA_TABLES = {"sensitivity/secret_rules.py"}
MAX_MODULE_LINES = 400
MAX_HANDLER_LINES = 25


def test_no_module_over_400_lines_except_data_tables():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES and name not in DATA_TABLES} == {}
    assert all(sizes[name] > MAX_MODULE_LINES for name in DATA_TABLES)  # a table that shrank leaves this list


def test_every_lsp_handler_is_short():
    server = create_server()
    handlers = {**server.protocol.fm.features, **server.protocol.fm.commands}
    assert len(handlers) >= 20
    long = {}
    for name, handler in handlers.items():
        function = getattr(handler, "func", handler)
        lines, _ = inspect.getsourcelines(function)
        if len(lines) > MAX_HANDLER_LINES:
            long[name] = len(lines)
    assert long == {}


def test_the_server_speaks_exactly_the_listed_ids():
    server = create_server()
    custom_methods = {name for name in server.protocol.fm.features if name.startswith("ninetyten/")}
    # ninetyten/served is a notification the server sends; it registers no handler for it.
    assert custom_methods == set(ids.METHODS.values()) - {ids.SERVED_NOTIFICATION}
    assert set(server.protocol.fm.commands) == set(ids.COMMANDS.values())


def test_the_editors_ids_are_generated_from_the_servers_list():
    for path, render in ids.GENERATED_FILES.items():
        assert (ROOT / path).read_text() == render(), f"{path} is stale: run python -m lsp_server.lsp.ids"


def test_no_editor_types_a_server_id_by_hand():
    known = set(ids.METHODS.values()) | set(ids.COMMANDS.values())
    sources = [*(ROOT / "editors/vscode/src").glob("*.js"), *(ROOT / "editors/nvim/lua").rglob("*.lua")]
    generated = {ROOT / path for path in ids.GENERATED_FILES}
    typed = {
        (path.relative_to(ROOT).as_posix(), literal)
        for path in sources
        if path not in generated
        for literal in re.findall(r"""["'](ninetyten[./][A-Za-z]+)["']""", path.read_text())
        if literal in known
    }
    assert typed == set()


def test_features_know_nothing_of_lsp():
    features = [PACKAGE / name for name in ("completion", "explain", "assist", "engine", "routing", "backends")]
    offenders = set()
    for folder in features:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                    if any(n.split(".")[0] in ("pygls", "lsprotocol") for n in names):
                        offenders.add(path.relative_to(PACKAGE).as_posix())
    assert offenders == set()
