"""`ninetyten doctor`: the installation checked: llama.cpp, CPU features, model, policy."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsp_server import __version__
from lsp_server.cli import models
from lsp_server.cli.common import (
    EXIT_FAILURE,
)

if TYPE_CHECKING:
    from lsp_server.routing.policy import LoadedPolicy


def register(commands: Any) -> None:
    commands.add_parser("doctor", help="check the installation: llama.cpp, CPU features, model, config")


def run(args: argparse.Namespace) -> int:
    from local_models import ModelError, models_dir, ninetyten_home, resolve_model
    from lsp_server.llama_build.doctor import native_check
    from lsp_server.routing.policy import PolicyError
    from lsp_server.routing.policy_lookup import load_policy
    from lsp_server.routing.policy_trust import trust_summary

    ok = True
    print(f"ninetyten      {__version__}")
    print(f"python         {platform.python_version()} ({sys.executable})")
    print(f"platform       {platform.platform()}")
    print(f"cores          {os.cpu_count()}")
    print(f"home           {ninetyten_home()}  (NINETYTEN_HOME={os.environ.get('NINETYTEN_HOME', 'unset')})")
    print(f"models dir     {models_dir()}")
    print(f"NINETYTEN_MODEL {os.environ.get('NINETYTEN_MODEL', 'unset')}")
    # Read once: it names the local models (checked first) and is reported further down.
    loaded: LoadedPolicy | None = None
    policy_error: PolicyError | None = None
    try:
        loaded = load_policy(None, Path.cwd())
    except PolicyError as error:
        policy_error = error
    names = _local_model_names(loaded)
    try:
        resolved = resolve_model(None, names.completion, progress=True)
        size = resolved.path.stat().st_size / 1e6
        print(f"model          {resolved.path} ({size:.1f} MB, from {resolved.origin})")
        model_path: Path | None = resolved.path
        embedded = resolved.source == "embedded"
    except ModelError as error:
        ok = False
        model_path, embedded = None, False
        print(f"model          PROBLEM: {error}")
    ok = _chat_and_draft(names) and ok
    # llama.cpp runs in a child process first: a build that crashes here is reported, never
    # "ok", and doctor itself asks llama.cpp for its devices only after the build proved safe.
    lines, native_ok = native_check(model_path)
    print("\n".join(lines), flush=True)
    ok = ok and native_ok
    if embedded and native_ok:
        print("\n".join(models.doctor_lines()))
    from lsp_server.engine_host.status import doctor_lines as engine_lines

    lines, engine_ok = engine_lines(model_path)
    print("\n".join(lines))
    ok = ok and engine_ok
    if loaded is not None:
        print(
            f"policy         {loaded.path or 'built-in default (everything local)'} "
            f"(from {loaded.source}, hash {loaded.digest})"
        )
        for line in trust_summary(loaded):
            print(f"  {line}")
        for tier, config in loaded.policy.tiers.items():
            key = ""
            if config.api_key_env:
                # Say whether the key is there, never what it is.
                key = f", key {config.api_key_env} {'set' if os.environ.get(config.api_key_env) else 'NOT SET'}"
            print(f"  tier {tier:<9} {config.backend} {config.model}{key}")
            if config.api_key_env and config.base_url and _key_in_clear(config.base_url):
                ok = False
                print(
                    f"  PROBLEM: {tier} would send its key over plain http to another machine; its requests "
                    "are refused (use https://, or a loopback address for a server on this machine)"
                )
        if loaded.policy.offline:
            print("  offline: nothing leaves the machine")
    else:
        ok = False
        print(f"policy         PROBLEM: {policy_error}")
    print(f"ledger         {ninetyten_home() / 'ledger.sqlite3'}")
    from lsp_server.cli.ledger import doctor_lines as ledger_lines

    team_lines, team_ok = ledger_lines()
    print("\n".join(team_lines))
    ok = ok and team_ok
    print("status         " + ("ok" if ok else "problems found (see above)"))
    return 0 if ok else EXIT_FAILURE


def _local_model_names(loaded: LoadedPolicy | None) -> Any:
    """Which models the settings name (the user's choice, the policy here: None when it is broken)."""
    from lsp_server.config import ServerConfig
    from lsp_server.engine.local_tier import local_model_names
    from lsp_server.tiers import LOCAL

    return local_model_names(ServerConfig(), loaded.policy.tier(LOCAL) if loaded is not None else None)


def _chat_and_draft(names: Any) -> bool:
    """The chat and draft models' lines; False when a named chat model cannot be found."""
    from local_models import ModelError, resolve_model
    from local_models.resolve import CHAT_MODEL_ENV

    ok = True
    if names.separate_chat:
        try:
            chat = resolve_model(None, names.chat, progress=True, env_var=CHAT_MODEL_ENV)
            size = chat.path.stat().st_size / 1e6
            print(f"chat model     {chat.path} ({size:.1f} MB, from {chat.origin}): explain, refactor, ask, commits")
        except ModelError as error:
            ok = False
            print(f"chat model     PROBLEM: {error}")
    else:
        print("chat model     the model above (none of its own: tiers.local.chat_model, `models use --chat`)")
    if names.draft:
        print(f"draft model    {names.draft} (speculative decoding of chat answers, where exact)")
    return ok


def _key_in_clear(base_url: str) -> bool:
    import httpx

    from lsp_server.backends.http.errors import key_would_travel_in_clear

    try:
        return key_would_travel_in_clear(httpx.URL(base_url))
    except httpx.InvalidURL:
        return False
