"""The engine's extension points: attempt observers, injected backends, the backend registry.

Real llama.cpp on a tiny GGUF, a real SQLite ledger.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings
from lsp_server.backends.registry import REGISTRY, backend_class, backend_names, is_remote
from lsp_server.completion.complete import Completer
from lsp_server.completion.prompt import CompletionInput
from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.engine.observers import AttemptLog
from lsp_server.ledger import Ledger
from lsp_server.routing.policy import LoadedPolicy, Policy, PolicyError, parse_policy

SOURCE = "def total(values):\n    result = 0\n    for value in values:\n        \n"


def test_an_observer_hears_every_attempt_the_ledger_records(tmp_path: Path, tiny_model_path: Path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    engine = Engine(
        ServerConfig(model=str(tiny_model_path), completion={"max_tokens": 6}),
        policy=LoadedPolicy(Policy(), "builtin", None),
        ledger=ledger,
    )
    heard = AttemptLog()
    unsubscribe = engine.subscribe(heard)
    completer = Completer(engine)
    try:
        first = completer.complete_blocking(CompletionInput(path="a.py", text=SOURCE, line=3, character=8))
        unsubscribe()
        completer.complete_blocking(CompletionInput(path="a.py", text=SOURCE, line=3, character=8))
    finally:
        engine.close()
    rows = ledger.rows()
    ledger.close()
    assert len(rows) == 2  # the ledger heard both requests, the observer only the first
    [event] = heard.events
    assert event.request_id == first.request_id == rows[0].request_id
    attempt = event.attempt
    assert (attempt.tier, attempt.backend, attempt.outcome) == (rows[0].tier, rows[0].backend, rows[0].outcome)
    assert attempt.usage.completion_tokens == rows[0].completion_tokens == first.usage.completion_tokens


def test_a_local_backend_is_injected_not_built(tiny_model_path: Path):
    local = LlamaCppBackend(LlamaSettings(model=tiny_model_path, n_ctx=512))
    engine = Engine(ServerConfig(), local=local)
    try:
        assert engine.local is local
        engine.start()
        result = Completer(engine).complete_blocking(CompletionInput(path="a.py", text=SOURCE, line=3, character=8))
        assert result.backend == local.name and result.model == tiny_model_path.name
    finally:
        engine.close()


def test_the_policy_reads_backend_names_from_the_registry():
    for name, entry in REGISTRY.items():
        assert backend_class(name).name == name  # the name a policy writes is the backend's own
        assert is_remote(name) == entry.remote
    with pytest.raises(PolicyError) as refused:
        parse_policy('[tiers.local]\nbackend = "carrier-pigeon"\nmodel = "m"\n')
    assert all(repr(name) in str(refused.value) for name in backend_names())
    remote = backend_names(remote=True)[0]
    with pytest.raises(PolicyError, match="tiers.local must use backend"):
        parse_policy(f'[tiers.local]\nbackend = "{remote}"\nbase_url = "http://127.0.0.1:1"\nmodel = "m"\n')
