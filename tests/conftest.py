from __future__ import annotations

from tests.conftest_models import *  # noqa: F401,F403  (model fixtures)
from tests.lsp_session import *  # noqa: F401,F403  (LSP session helpers)
from tests.conftest_sandbox import *  # noqa: F401,F403  (the bubblewrap sandbox)
from tests.conftest_postgres import *  # noqa: F401,F403  (a real PostgreSQL server)
