"""What the suite needs from the machine, and what happens when a piece is missing.

`make test` installs every prerequisite first (the dev extra, `make system-deps`,
`make vscode-deps vsix`) and sets NINETYTEN_STRICT_SKIPS=1: there a missing one means the
set-up is broken, and `missing()` turns into a failure (tests/conftest.py does that). Run by
hand, pytest skips the test with the reason and the command that installs what is missing.

Skips for other reasons (a platform without SIGKILL, say) use plain `pytest.skip`.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["STRICT_ENV", "MissingPrerequisite", "missing", "strict"]

STRICT_ENV = "NINETYTEN_STRICT_SKIPS"


class MissingPrerequisite(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """A skip that `make test`'s own set-up should have made impossible."""


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def missing(what: str, install: str | None = None) -> NoReturn:
    """Skip (by hand) or fail (under `make test`): `what` is missing, `install` brings it
    (or `what` is already the whole reason, with its remedy).

    Call it from a test or a fixture, never at import time (a module-level skip is not a test
    report, so the strict mode could not see it)."""
    reason = what if install is None else f"{what} is missing ({install} installs it)"
    raise MissingPrerequisite(reason, _use_item_location=True)
