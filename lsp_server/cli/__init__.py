"""The `ninetyten` command: one module per command group."""

from lsp_server.cli.main import main

__all__ = ["main"]
