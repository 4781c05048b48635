"""ninetyten: a local-first AI coding assistant language server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ninetyten")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
