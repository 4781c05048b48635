"""The bubblewrap sandbox fixture: tests that run model-written code need it.

By hand, on a machine without a usable bubblewrap, those tests skip and say why. Under
`make test` (NINETYTEN_REQUIRE_SANDBOX=1, after `make system-deps` installed bubblewrap)
they fail instead: a sandbox that silently stopped working must not look like a pass.
"""

from __future__ import annotations

import os

import pytest

from lsp_server.eval.sandbox import BubblewrapSandbox, SandboxUnavailable, require_sandbox

__all__ = ["bubblewrap"]

REQUIRE_ENV = "NINETYTEN_REQUIRE_SANDBOX"


@pytest.fixture(scope="session")
def bubblewrap() -> BubblewrapSandbox:
    try:
        return require_sandbox()
    except SandboxUnavailable as error:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the bubblewrap sandbox cannot run: {error}")
        pytest.skip(
            f"the bubblewrap sandbox cannot run here ({error}); `make test` installs bubblewrap and requires it"
        )
