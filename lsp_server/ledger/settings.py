"""The user's own settings for where ledger facts may go: the team ledger and metrics export.

They come only from the user: `config.toml` in the user config dir (`~/.config/ninetyten/`
on Linux) and environment variables, never from a repository's policy, because they send
facts about the user's work to another machine. The policy may declare a team budget; it
only takes effect where the user configured a team ledger.

```toml
[team_ledger]
url = "postgresql://alice@db.example.com/ninetyten"   # libpq URL; or NINETYTEN_TEAM_LEDGER_URL
project = "payments"        # the repository's name in reports (default: a hash of its remote)
user = "pseudonym"          # or "name": who made a request, as a keyed hash or the user name
pseudonym_key_env = "NINETYTEN_PSEUDONYM_KEY"   # a team secret for the hash (default: the database's)

[otel]
enabled = true
endpoint = "http://127.0.0.1:4318"   # OTLP/HTTP; or NINETYTEN_OTEL_ENDPOINT, or OTEL_EXPORTER_OTLP_*
```

Passwords belong in the environment (`PGPASSWORD`) or libpq's password file (`~/.pgpass`,
`PGPASSFILE`), not in the URL.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_FILENAME = "config.toml"
TEAM_URL_ENV = "NINETYTEN_TEAM_LEDGER_URL"
TEAM_PROJECT_ENV = "NINETYTEN_TEAM_PROJECT"
OTEL_ENDPOINT_ENV = "NINETYTEN_OTEL_ENDPOINT"


class SettingsError(Exception):
    """The user's config file cannot be used; names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeamLedgerSettings(_Strict):
    url: str | None = Field(None, min_length=1, description="libpq URL or conninfo of the team database")
    project: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$", description="the repository's name in the team ledger"
    )
    user: Literal["pseudonym", "name"] = "pseudonym"
    pseudonym_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    batch_rows: int = Field(2000, ge=1, le=100_000, description="rows per shipped batch")
    connect_timeout_s: int = Field(5, ge=1, le=120)

    @property
    def configured(self) -> bool:
        return self.url is not None


class OtelSettings(_Strict):
    enabled: bool = False
    endpoint: str | None = Field(None, pattern=r"^https?://")
    export_interval_s: float = Field(60.0, gt=0, le=86_400)


class UserSettings(_Strict):
    team_ledger: TeamLedgerSettings = Field(default_factory=TeamLedgerSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)


def user_config_path() -> Path:
    return Path(platformdirs.user_config_dir("ninetyten")) / CONFIG_FILENAME


def load_user_settings(environ: Mapping[str, str] | None = None, path: Path | None = None) -> UserSettings:
    """The file's settings with the environment's on top; SettingsError if the file is broken."""
    environ = os.environ if environ is None else environ
    path = path or user_config_path()
    data: dict[str, dict[str, object]] = {}
    if path.is_file():
        try:
            loaded = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError) as error:
            raise SettingsError(f"{path}: cannot be read: {error}") from None
        # Other tables may belong to other features; these two are ours.
        data = {key: dict(loaded[key]) for key in ("team_ledger", "otel") if isinstance(loaded.get(key), dict)}
    team = data.setdefault("team_ledger", {})
    otel = data.setdefault("otel", {})
    if url := environ.get(TEAM_URL_ENV, "").strip():
        team["url"] = url
    if project := environ.get(TEAM_PROJECT_ENV, "").strip():
        team["project"] = project
    if endpoint := environ.get(OTEL_ENDPOINT_ENV, "").strip():
        otel.update(enabled=True, endpoint=endpoint)
    try:
        return UserSettings.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors())
        raise SettingsError(f"{path}: {problems}") from None


__all__ = [
    "CONFIG_FILENAME",
    "OTEL_ENDPOINT_ENV",
    "TEAM_PROJECT_ENV",
    "TEAM_URL_ENV",
    "OtelSettings",
    "SettingsError",
    "TeamLedgerSettings",
    "UserSettings",
    "load_user_settings",
    "user_config_path",
]
