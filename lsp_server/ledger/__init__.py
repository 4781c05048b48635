"""The ledger: every attempt of every request, without its content; spend, savings and budgets.

Modules, one concept each:

- `units`: nano-dollars and UTC days / weeks.
- `guards`: the string types a row may hold (no content can get in), `safe_reason`.
- `row`: `LedgerRow`, the outcome vocabulary.
- `prices`: `Price` and the frontier counterfactual (with a dated reference price).
- `schema`, `connection`: the SQLite schema with its migrations; opening it for many writers.
- `journal`: the crash journal of answered rows.
- `reservations`, `budget`: budget holds, local and team-wide.
- `store`: `Ledger`, the SQLite file, source of truth.
- `sink`: `LedgerSink`, the thread that writes rows off the request path.
- `report`, `terminal`, `html`, `charts`: the report and its terminal, JSON and HTML views.
- `settings`: the user's own settings for the team ledger and metrics export.
- `team/`: the team ledger on PostgreSQL (shipper, team budget, team report).
- `otel`: OpenTelemetry metrics export.
"""

from __future__ import annotations

from lsp_server.ledger.errors import LedgerError, TeamLedgerError
from lsp_server.ledger.guards import safe_reason
from lsp_server.ledger.journal import JOURNAL_DIRNAME, Journal
from lsp_server.ledger.prices import Price
from lsp_server.ledger.reservations import BudgetHold, Reservation
from lsp_server.ledger.row import FAILURE_OUTCOMES, OUTCOMES, LedgerRow, Outcome, PartialAccept
from lsp_server.ledger.schema import SCHEMA_VERSION, migrate
from lsp_server.ledger.sink import LedgerSink
from lsp_server.ledger.store import LEDGER_FILENAME, Ledger
from lsp_server.ledger.units import NANO, utc_midnight

__all__ = [
    "FAILURE_OUTCOMES",
    "JOURNAL_DIRNAME",
    "LEDGER_FILENAME",
    "NANO",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "BudgetHold",
    "Journal",
    "Ledger",
    "LedgerError",
    "LedgerRow",
    "PartialAccept",
    "LedgerSink",
    "Outcome",
    "Price",
    "Reservation",
    "TeamLedgerError",
    "migrate",
    "safe_reason",
    "utc_midnight",
]
