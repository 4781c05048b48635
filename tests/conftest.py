from __future__ import annotations

from collections.abc import Generator

import pytest
from hypothesis import settings

from tests.conftest_engine import *  # noqa: F401,F403  (the engine processes of this test run)
from tests.conftest_models import *  # noqa: F401,F403  (model fixtures)
from tests.conftest_postgres import *  # noqa: F401,F403  (a real PostgreSQL server)
from tests.conftest_sandbox import *  # noqa: F401,F403  (the bubblewrap sandbox)
from tests.lsp_session import *  # noqa: F401,F403  (LSP session helpers)
from tests.prerequisites import STRICT_ENV, MissingPrerequisite, strict

# Timing is never what a property test checks, and a busy machine makes Hypothesis's
# default 200 ms deadline fail for no bug: off for every @given, with or without @settings.
settings.register_profile("ninetyten", deadline=None)
settings.load_profile("ninetyten")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and call.excinfo is not None and call.excinfo.errisinstance(MissingPrerequisite) and strict():
        # Under `make test` the set-up installs every prerequisite: a missing one is its bug.
        report.outcome = "failed"
        report.longrepr = (
            f"{call.excinfo.value.msg}\n"
            f"{STRICT_ENV}=1 (set by `make test`): a missing prerequisite fails instead of skipping"
        )
