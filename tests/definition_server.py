"""A second language server for editor tests: it answers textDocument/definition, as Pylance
or gopls would, with the location given on its command line (`FILE LINE`), and nothing else.
The ninetyten clients forward such answers to the ninetyten server (`ninetyten/definitions`).

    python -m tests.definition_server /path/to/lib.py 3
"""

from __future__ import annotations

import sys
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer


def main() -> None:
    target, line = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    server = LanguageServer("definition-stub", "1")
    asked: list[str] = []

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: LanguageServer, params: types.DefinitionParams) -> types.Location:
        asked.append(params.text_document.uri)
        start = types.Position(line=line, character=4)
        return types.Location(uri=target.as_uri(), range=types.Range(start, types.Position(line, 9)))

    server.start_io()


if __name__ == "__main__":
    main()
