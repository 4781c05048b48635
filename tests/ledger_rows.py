"""Varied ledger rows for report tests: tasks, tiers, escalations, feedback, repositories, weeks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from lsp_server.ledger import LedgerRow

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TASKS = ["completion", "completion", "completion", "explain", "refactor", "ask", "commit_message"]
MODELS = {"local": "gemma-3-270m", "in_house": "qwen3-coder-30b", "frontier": "claude-sonnet-4-6"}
BACKENDS = {"local": "llama_cpp", "in_house": "openai", "frontier": "anthropic"}


def random_rows(seed: int, count: int, tag: str) -> list[LedgerRow]:
    rng = random.Random(seed)
    rows = []
    number = 0
    while len(rows) < count:
        number += 1
        task = rng.choice(TASKS)
        ts = NOW - timedelta(days=rng.uniform(0, 50))
        attempts = 2 if rng.random() < 0.15 else 1
        for attempt in range(1, attempts + 1):
            tier = "local" if attempt == 1 and rng.random() < 0.7 else rng.choice(["in_house", "frontier"])
            escalated = attempt < attempts
            prompt, completion = rng.randint(10, 4000), rng.randint(1, 500)
            rows.append(
                LedgerRow(
                    request_id=f"{tag}-{number}",
                    attempt=attempt,
                    task=task,
                    tier=tier,
                    backend=BACKENDS[tier],
                    model=MODELS[tier],
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cached_tokens=rng.randint(0, prompt),
                    latency_ms=round(rng.uniform(5, 4000), 3),
                    cost_usd=0.0 if tier == "local" else prompt * 2e-6 + completion * 8e-6,
                    frontier_cost_usd=prompt * 3e-6 + completion * 15e-6,
                    frontier_price=rng.choice(["reference-2026-03-21", "frontier-tier", None]),
                    outcome="escalated" if escalated else rng.choice(["ok", "ok", "ok", "failed", "low_confidence"]),
                    escalated=escalated,
                    escalation_reason=rng.choice(["low_logprob", "syntax", None]) if escalated else None,
                    shown=rng.choice([None, True, False]),
                    accepted=rng.choice([None, True, False]),
                    repo=rng.choice([None, "payments", "r-00aa11bb22cc33dd"]),
                    ts=ts + timedelta(seconds=attempt),
                )
            )
    return rows
