"""Savings visible out of the box: the frontier counterfactual and which price it used."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from lsp_server.completion.complete import Completer
from lsp_server.completion.prompt import CompletionInput
from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.ledger import Ledger
from lsp_server.ledger.local_report import build_report
from lsp_server.ledger.prices import (
    CONFIGURED,
    FRONTIER_TIER,
    REFERENCE_FRONTIER,
    Price,
    counterfactual,
    describe_price_code,
)
from lsp_server.ledger.terminal import render_report
from lsp_server.routing.policy import LoadedPolicy, Policy, parse_policy

SOURCE = "def total(values):\n    result = 0\n    for value in values:\n        \n"
FRONTIER = """
[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.frontier]
backend = "anthropic"
base_url = "https://api.anthropic.com"
model = "claude-sonnet-4-6"
api_key_env = "ANTHROPIC_API_KEY"
price = { input_per_mtok = 2.0, output_per_mtok = 10.0 }
"""


def test_the_choice_of_price():
    paid = Price(input_per_mtok=2.0, output_per_mtok=10.0)
    mine = Price(input_per_mtok=1.0, output_per_mtok=4.0)
    assert counterfactual(paid, mine) == counterfactual(paid, None)
    assert counterfactual(paid, None).code == FRONTIER_TIER
    assert counterfactual(Price(), mine).code == CONFIGURED  # an unpriced frontier tier says nothing
    assert counterfactual(None, mine).price == mine
    assert counterfactual(None, None).code == REFERENCE_FRONTIER.code
    assert counterfactual(None, None).price.paid
    assert REFERENCE_FRONTIER.as_of in describe_price_code(REFERENCE_FRONTIER.code)
    assert "another ninetyten" in describe_price_code("reference-2099-01-01")


def _run(tmp_path: Path, model: Path, policy: Policy) -> tuple[list, str]:  # type: ignore[type-arg]
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    engine = Engine(
        ServerConfig(model=str(model), completion={"max_tokens": 6}),
        policy=LoadedPolicy(policy, "builtin", None),
        ledger=ledger,
    )
    try:
        Completer(engine).complete_blocking(CompletionInput(path="a.py", text=SOURCE, line=3, character=8))
    finally:
        engine.close()
    rows = ledger.rows()
    console = Console(file=StringIO(), width=200)
    render_report(build_report(ledger, None), console)
    ledger.close()
    return rows, " ".join(console.file.getvalue().split())  # type: ignore[attr-defined]


def test_builtin_policy_prices_local_work_at_the_dated_reference(tmp_path: Path, tiny_model_path: Path):
    rows, text = _run(tmp_path, tiny_model_path, Policy())
    (row,) = rows
    assert row.tier == "local" and row.cost_usd == 0 and row.frontier_price == REFERENCE_FRONTIER.code
    assert row.frontier_cost_usd == pytest.approx(
        (row.prompt_tokens * 3.0 + row.completion_tokens * 15.0) / 1e6, abs=1e-9
    )
    assert row.frontier_cost_usd > 0
    assert "(saved 100%)" in text
    assert "Frontier priced by built-in reference: Claude Sonnet 4.6 list price, $3.00 in / $15.00 out" in text
    assert "as of 2026-03-21 (1 attempts)" in text


def test_a_priced_frontier_tier_wins(tmp_path: Path, tiny_model_path: Path):
    rows, text = _run(tmp_path, tiny_model_path, parse_policy(FRONTIER))
    (row,) = rows
    assert row.frontier_price == FRONTIER_TIER
    assert row.frontier_cost_usd == pytest.approx(
        (row.prompt_tokens * 2.0 + row.completion_tokens * 10.0) / 1e6, abs=1e-9
    )
    assert "Frontier priced by the policy's frontier tier price" in text


def test_the_policy_can_change_the_reference(tmp_path: Path, tiny_model_path: Path):
    policy = parse_policy("[savings]\nreference_price = { input_per_mtok = 1.25, output_per_mtok = 10.0 }\n")
    rows, text = _run(tmp_path, tiny_model_path, policy)
    (row,) = rows
    assert row.frontier_price == CONFIGURED
    assert row.frontier_cost_usd == pytest.approx(
        (row.prompt_tokens * 1.25 + row.completion_tokens * 10) / 1e6, abs=1e-9
    )
    assert "the policy's savings.reference_price" in text
