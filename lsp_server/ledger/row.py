"""One ledger row: one attempt of one request, with no content in it; and the vocabulary
of its codes.

The columns accept any short code, so a row written by a newer ninetyten (a new task, tier
or outcome) still reads. The vocabulary below is what this version writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lsp_server.ledger.guards import Code, ModelName, PolicyHash, Reason, RepoKey, RequestId
from lsp_server.ledger.units import NANO, as_utc, to_nusd, utc_now

# What became of an attempt. `escalated`: answered, then handed to a stronger tier;
# `low_confidence`: served although its check failed (escalation was not possible).
Outcome = Literal["ok", "escalated", "failed", "cancelled", "blocked", "low_confidence"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
FAILURE_OUTCOMES: frozenset[str] = frozenset({"failed"})  # cancelled and blocked are not failures
SERVED_OUTCOMES: frozenset[str] = frozenset({"ok", "low_confidence"})


class LedgerRow(BaseModel):
    """One attempt of one request. Every string is a short code: no content can be stored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: int | None = None  # set when read back
    ts: datetime = Field(default_factory=utc_now)
    request_id: RequestId
    attempt: int = Field(1, ge=1, le=1000)
    task: Code
    tier: Code
    backend: Code
    model: ModelName
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    cached_tokens: int = Field(0, ge=0)
    latency_ms: float = Field(0.0, ge=0, allow_inf_nan=False)
    cost_usd: float = Field(0.0, ge=0, allow_inf_nan=False)
    frontier_cost_usd: float = Field(0.0, ge=0, allow_inf_nan=False)
    # Which price stands for the frontier in frontier_cost_usd (see prices.py).
    frontier_price: Code | None = None
    outcome: Code = "ok"
    escalated: bool = False
    escalation_reason: Code | None = None
    error_kind: Code | None = None
    policy_hash: PolicyHash | None = None
    reasons: list[Reason] = Field(default_factory=list, max_length=32)
    shown: bool | None = None
    accepted: bool | None = None
    repo: RepoKey | None = None  # a configured project name or a hash of the remote URL
    # A partial accept (a word or a line at a time): how much of the suggestion was kept, in
    # characters and words, of how much was shown. Counts only, never the text.
    kept_chars: int | None = Field(None, ge=0)
    shown_chars: int | None = Field(None, ge=0)
    kept_words: int | None = Field(None, ge=0)
    shown_words: int | None = Field(None, ge=0)

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("cost_usd", "frontier_cost_usd")
    @classmethod
    def _nano_dollars(cls, value: float) -> float:
        # Quantise to what the database stores so a row reads back equal to what was written.
        return to_nusd(value) / NANO


class PartialAccept(BaseModel):
    """What of a suggestion the user kept by accepting it in parts (so far): content-free counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kept_chars: int = Field(ge=0, le=1_000_000)
    shown_chars: int = Field(ge=0, le=1_000_000)
    kept_words: int = Field(ge=0, le=1_000_000)
    shown_words: int = Field(ge=0, le=1_000_000)

    @field_validator("shown_chars")
    @classmethod
    def _chars(cls, value: int, info: Any) -> int:
        if info.data.get("kept_chars", 0) > value:
            raise ValueError("more characters kept than shown")
        return value

    @field_validator("shown_words")
    @classmethod
    def _words(cls, value: int, info: Any) -> int:
        if info.data.get("kept_words", 0) > value:
            raise ValueError("more words kept than shown")
        return value

    def merged(self, newer: PartialAccept | None) -> PartialAccept:
        """Parts are accepted one after another: the most that was kept counts."""
        if newer is None:
            return self
        return newer.model_copy(
            update={
                "kept_chars": max(self.kept_chars, newer.kept_chars),
                "kept_words": max(self.kept_words, newer.kept_words),
            }
        )

    def row_update(self, row: LedgerRow) -> dict[str, int]:
        """The fields of `row` this partial accept sets."""
        return {
            "kept_chars": max(row.kept_chars or 0, self.kept_chars),
            "kept_words": max(row.kept_words or 0, self.kept_words),
            "shown_chars": self.shown_chars,
            "shown_words": self.shown_words,
        }


def checked(row: LedgerRow) -> LedgerRow:
    """Validate again: model_construct() and model_copy(update=...) skip validation."""
    data = row.model_dump() if isinstance(row, BaseModel) else row
    return LedgerRow.model_validate(data)


__all__ = [
    "FAILURE_OUTCOMES",
    "OUTCOMES",
    "SERVED_OUTCOMES",
    "LedgerRow",
    "Outcome",
    "checked",
]
