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


def awkward_rows(seed: int, count: int, tag: str) -> list[LedgerRow]:
    """Rows that the shortcuts of an aggregation would get wrong: requests of up to four
    attempts (the same tier twice, several models), attempts either side of a Monday 00:00
    UTC, latencies that tie, zero and sub-millisecond latencies, long ones, feedback on any
    attempt, rows without a repository or a price."""
    rng = random.Random(seed)
    monday = datetime(2026, 11, 16, tzinfo=UTC)
    ties = [0.0, 0.25, 7.0, 7.0, 120.5, 1000.0, 1000.0, 1099.999, 86_400_000.0]
    rows: list[LedgerRow] = []
    number = 0
    while len(rows) < count:
        number += 1
        task = rng.choice(TASKS)
        start = (
            monday - timedelta(seconds=rng.choice([2, 30, 3600]))
            if rng.random() < 0.2
            else NOW - timedelta(days=rng.uniform(0, 40))
        )
        attempts = rng.choice([1, 1, 1, 2, 2, 3, 4])
        for attempt in range(1, attempts + 1):
            tier = rng.choice(["local", "local", "in_house", "frontier"])
            latency = rng.choice(ties) if rng.random() < 0.4 else round(rng.lognormvariate(5, 2), rng.choice([0, 3, 9]))
            escalated = attempt < attempts and rng.random() < 0.8
            rows.append(
                LedgerRow(
                    request_id=f"{tag}-{number}",
                    attempt=attempt,
                    task=task,
                    tier=tier,
                    backend=BACKENDS[tier],
                    model=rng.choice([MODELS[tier], f"{MODELS[tier]}-q8"]),
                    prompt_tokens=rng.randint(0, 9000),
                    completion_tokens=rng.randint(0, 900),
                    cached_tokens=rng.randint(0, 50),
                    latency_ms=latency,
                    cost_usd=0.0 if tier == "local" else rng.randint(0, 10**6) * 1e-9,
                    frontier_cost_usd=rng.randint(0, 10**7) * 1e-9,
                    frontier_price=rng.choice(["reference-2026-03-21", "frontier-tier", "user-reference", None]),
                    outcome="escalated"
                    if escalated
                    else rng.choice(["ok", "failed", "cancelled", "blocked", "low_confidence"]),
                    escalated=escalated,
                    escalation_reason=rng.choice(["low_logprob", "syntax", None]) if escalated else None,
                    shown=rng.choice([None, True, False]),
                    accepted=rng.choice([None, None, True, False]),
                    repo=rng.choice([None, "payments", "r-00aa11bb22cc33dd"]),
                    ts=start + timedelta(seconds=attempt * rng.choice([1, 5, 40])),
                )
            )
    return rows
