"""The ledger's errors."""

from __future__ import annotations


class LedgerError(Exception):
    """The ledger database cannot be used; the message names the file and the cause."""


class TeamLedgerError(Exception):
    """The team ledger cannot be used (not configured, the driver is missing, unreachable,
    or a schema this version cannot write); the message says which and what to do.
    Never contains a password."""


__all__ = ["LedgerError", "TeamLedgerError"]
