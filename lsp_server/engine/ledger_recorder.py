"""The ledger's subscription to the engine: one row per settled attempt, and today's savings.

Rows are built and validated on the ledger thread, off the request path; only the scrubbed
values (no content) are captured here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from lsp_server.backends.base import Usage
from lsp_server.engine.observers import AttemptEvent
from lsp_server.ledger import LedgerError, LedgerRow, LedgerSink, safe_reason, utc_midnight
from lsp_server.ledger.prices import Counterfactual, counterfactual
from lsp_server.routing.policy import Policy
from lsp_server.tiers import FRONTIER, TierName

log = logging.getLogger(__name__)


def counterfactual_for(policy: Policy) -> Counterfactual:
    """What prices the frontier's side of the savings under this policy."""
    frontier = policy.tier(FRONTIER)
    return counterfactual(frontier.price if frontier else None, policy.savings.reference_price)


def price_costs(policy: Policy, tier: TierName, usage: Usage) -> tuple[float, float]:
    """(cost on `tier`, cost of the same tokens on the frontier) in USD."""
    config = policy.tier(tier)
    cost = config.price.cost(usage.prompt_tokens, usage.completion_tokens) if config else 0.0
    frontier_cost = counterfactual_for(policy).price.cost(usage.prompt_tokens, usage.completion_tokens)
    return cost, frontier_cost


class LedgerRecorder:
    """Writes each attempt to the ledger (through its sink) and keeps today's savings."""

    def __init__(self, sink: LedgerSink, policy: Callable[[], Policy]) -> None:
        self.sink = sink
        self._policy = policy
        self._savings_day: datetime | None = None
        self._savings_usd = 0.0

    def savings_today_usd(self) -> float:
        """Frontier cost avoided since UTC midnight: read once a day, then kept up to date."""
        day = utc_midnight()
        if self._savings_day != day:
            self._savings_day, self._savings_usd = day, 0.0
            ledger = self.sink.reader
            if ledger is not None:
                try:
                    self._savings_usd = ledger.savings_usd(day) + self.sink.pending_savings_usd
                except LedgerError:
                    log.debug("savings unreadable", exc_info=True)
        return self._savings_usd

    def attempt_settled(self, event: AttemptEvent) -> None:
        # Every attempt gets its counterfactual, local completions too: the savings are the point.
        attempt, decision = event.attempt, event.decision
        priced = counterfactual_for(self._policy())
        frontier_cost = priced.price.cost(attempt.usage.prompt_tokens, attempt.usage.completion_tokens)
        values = dict(
            request_id=event.request_id,
            attempt=event.number,
            task=event.task,
            tier=attempt.tier,
            backend=attempt.backend,
            model=Path(attempt.model).name or "unknown",
            prompt_tokens=attempt.usage.prompt_tokens,
            completion_tokens=attempt.usage.completion_tokens,
            cached_tokens=attempt.usage.cached_prompt_tokens,
            latency_ms=max(attempt.latency_ms, 0.0),
            cost_usd=attempt.cost_usd,
            frontier_cost_usd=frontier_cost,
            frontier_price=priced.code,
            outcome=attempt.outcome,
            escalated=attempt.outcome == "escalated",
            escalation_reason=attempt.escalation_reason,
            error_kind=attempt.error_kind,
            policy_hash=decision.policy_hash or None,
            # Reason texts are scrubbed before they touch the disk (the journal).
            reasons=[safe_reason(r) for r in decision.reasons[:32]],
        )
        self.savings_today_usd()  # start today's running total before this row is queued
        self._savings_usd += frontier_cost - attempt.cost_usd
        values["ts"] = datetime.now(timezone.utc)
        self.sink.put(lambda: LedgerRow(**values), event.reservation, journal=values)
