"""The engine processes a test run starts: private to the run, quick to idle out, stopped at the end.

Servers, the CLI and the hook in the tests start the shared engine like a user's would. The
run gets a runtime directory of its own (so it never attaches to a user's engine, or to
another checkout's test run), engines exit after a short idle period, and whatever still
runs when the session ends is stopped. A test that needs an engine of its own (crashes,
sharing) uses `private_runtime`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_server.engine_host.runtime import IDLE_ENV, RUNTIME_ENV, stop_engines

__all__ = ["engine_env", "engine_runtime", "private_runtime", "stop_engines"]

TEST_IDLE_S = "10"


def engine_env() -> dict[str, str]:
    """The engine settings of this test run, for a test that builds a subprocess's environment
    from scratch (without NINETYTEN_*): its engines must stay in the run's runtime directory."""
    return {key: os.environ[key] for key in (RUNTIME_ENV, IDLE_ENV) if key in os.environ}


@pytest.fixture(scope="session", autouse=True)
def engine_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("run")
    saved = {key: os.environ.get(key) for key in (RUNTIME_ENV, IDLE_ENV)}
    os.environ[RUNTIME_ENV] = str(directory)
    os.environ[IDLE_ENV] = TEST_IDLE_S
    try:
        yield directory
    finally:
        stop_engines(directory)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def private_runtime(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory for this test alone: its engines meet no other test's."""
    directory = tmp_path_factory.mktemp("run-private")
    monkeypatch.setenv(RUNTIME_ENV, str(directory))
    try:
        yield directory
    finally:
        stop_engines(directory)
