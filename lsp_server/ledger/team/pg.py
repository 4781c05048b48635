"""Connections to the team's PostgreSQL database, through psycopg 3 (the `team` extra).

The URL is a libpq URL or conninfo string from the user's own settings. Passwords come from
libpq itself (`PGPASSWORD`, the password file); one written into the URL works too, but is
never shown: everything printed or logged describes the target by user, host and database.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lsp_server.ledger.errors import TeamLedgerError
from lsp_server.ledger.settings import TeamLedgerSettings

if TYPE_CHECKING:
    import psycopg

INSTALL_HINT = "pip install 'ninetyten[team]'"
APPLICATION_NAME = "ninetyten"


def driver() -> ModuleType:
    """The psycopg module; TeamLedgerError saying how to install it when it is missing."""
    try:
        return importlib.import_module("psycopg")
    except ImportError:
        raise TeamLedgerError(f"the team ledger needs psycopg 3, which is not installed: {INSTALL_HINT}") from None


def _params(url: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return dict(conninfo_to_dict(url))
    except Exception:
        raise TeamLedgerError("the team ledger URL is not a valid libpq URL or conninfo string") from None


def describe(url: str) -> str:
    """user@host:port/dbname, without a password; for messages."""
    try:
        driver()
        params = _params(url)
    except TeamLedgerError:
        return "the team ledger"
    host = params.get("host") or "localhost"
    if params.get("port"):
        host = f"{host}:{params['port']}"
    user = f"{params['user']}@" if params.get("user") else ""
    return f"postgresql {user}{host}/{params.get('dbname') or params.get('user') or ''}".rstrip("/")


def scrub(message: str, url: str) -> str:
    """An error message with the URL's password (if it has one) taken out."""
    try:
        password = _params(url).get("password")
    except TeamLedgerError:
        return message.replace(url, "<team ledger URL>")
    if password:
        message = message.replace(str(password), "***")
    return message.replace(url, "<team ledger URL>")


def connect(settings: TeamLedgerSettings, *, autocommit: bool = False, role: str = "client") -> psycopg.Connection[Any]:
    """A connection to the team database; TeamLedgerError naming the target when it fails."""
    psycopg_module = driver()
    url = settings.url
    if url is None:
        raise TeamLedgerError("no team ledger is configured")
    params = _params(url)
    # Which process and what for, in pg_stat_activity: a DBA can tell shippers from reports.
    params.setdefault("application_name", f"{APPLICATION_NAME}-{role}-{os.getpid()}")
    params["connect_timeout"] = settings.connect_timeout_s
    try:
        conn = psycopg_module.connect(**params, autocommit=autocommit)
    except psycopg_module.Error as error:
        raise TeamLedgerError(
            f"cannot reach the team ledger ({describe(url)}): {scrub(str(error).strip(), url)}"
        ) from None
    return conn


def is_connection_error(error: BaseException) -> bool:
    """The server went away (restart, network cut) rather than refusing what we sent."""
    try:
        from psycopg import OperationalError, errors
    except ImportError:
        return False
    return isinstance(error, (OperationalError, errors.AdminShutdown, errors.CannotConnectNow))


__all__ = ["INSTALL_HINT", "connect", "describe", "driver", "is_connection_error", "scrub"]
