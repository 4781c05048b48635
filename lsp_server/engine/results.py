"""What the engine hands back: one attempt on one tier, a completion, a chat answer.

No LSP types here: the language server, the CLI and the eval harness each shape these
for their own audience.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lsp_server.backends.base import Usage
from lsp_server.ledger.row import SERVED_OUTCOMES, Outcome
from lsp_server.routing.router import Decision
from lsp_server.tiers import TierName


@dataclass(frozen=True)
class Attempt:
    """One try on one tier: what the ledger records, and what the client is told."""

    tier: TierName
    backend: str
    model: str
    outcome: Outcome
    usage: Usage
    latency_ms: float
    cost_usd: float = 0.0
    frontier_cost_usd: float = 0.0
    escalation_reason: str | None = None
    error_kind: str | None = None


@dataclass
class CompletionResult:
    """What an editor shows, plus where it came from."""

    text: str | None
    tier: str
    backend: str
    model: str
    usage: Usage
    stop_reason: str
    latency_ms: float
    mean_logprob: float | None = None
    min_logprob: float | None = None
    prompt_mode: str = "fim"
    extra: dict[str, float] = field(default_factory=dict)
    escalated: bool = False
    low_confidence: bool = False
    request_id: str = ""
    alternatives: list[str] = field(default_factory=list)  # other suggestions, best first
    quiet: bool = False  # a suggestion was made but held back (see completion/quiet_gate.py)

    def summary(self) -> dict[str, object]:
        """The content-free description sent to clients and printed by the CLI."""
        return {
            "request_id": self.request_id,
            "tier": self.tier,
            "backend": self.backend,
            "model": self.model,
            "prompt_tokens": self.usage.prompt_tokens,
            "cached_prompt_tokens": self.usage.cached_prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "latency_ms": round(self.latency_ms, 1),
            "generation_ms": round(self.usage.generation_ms, 1),
            "stop_reason": self.stop_reason,
            "prompt_mode": self.prompt_mode,
            "mean_logprob": None if self.mean_logprob is None else round(self.mean_logprob, 4),
            "escalated": self.escalated,
            "low_confidence": self.low_confidence,
            "alternatives": len(self.alternatives),
            "quiet": self.quiet,
            **{key: round(value, 1) for key, value in self.extra.items()},
        }


@dataclass
class AssistResult:
    """The answer to explain / refactor / ask, with the decision and every attempt."""

    text: str | None
    decision: Decision
    attempts: list[Attempt]
    request_id: str
    low_confidence: bool = False
    error: str | None = None  # set when the policy refused the request
    # The answer was written at home from content that had to stay home: what is made from it
    # (a merge of explanations, a commit message) must stay home too.
    kept_home: bool = False

    @property
    def final(self) -> Attempt | None:
        served = [a for a in self.attempts if a.outcome in SERVED_OUTCOMES]
        return served[-1] if served else (self.attempts[-1] if self.attempts else None)

    def usage_summary(self) -> dict[str, object]:
        return {
            "prompt_tokens": sum(a.usage.prompt_tokens for a in self.attempts),
            "completion_tokens": sum(a.usage.completion_tokens for a in self.attempts),
            "latency_ms": round(sum(a.latency_ms for a in self.attempts), 1),
            "cost_usd": round(sum(a.cost_usd for a in self.attempts), 6),
            "attempts": [
                {
                    "tier": a.tier,
                    "model": a.model,
                    "outcome": a.outcome,
                    "escalation_reason": a.escalation_reason,
                    "error_kind": a.error_kind,
                    "latency_ms": round(a.latency_ms, 1),
                }
                for a in self.attempts
            ],
        }

    def to_json(self) -> dict[str, object]:
        final = self.final
        return {
            "text": self.text,
            "tier": final.tier if final else None,
            "model": final.model if final else None,
            "low_confidence": self.low_confidence,
            "error": self.error,
            "decision": self.decision.model_dump(mode="json"),
            "usage": self.usage_summary(),
        }
