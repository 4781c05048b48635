"""Prices, and the frontier counterfactual: what a request would have cost on the frontier.

Every ledger row carries two amounts: what the attempt cost on its tier, and what the same
tokens would have cost on the frontier. The second is the product's central figure (the
savings), so it must not be zero just because a policy has no frontier tier. It is priced,
first match wins:

1. the policy's frontier tier, when it has a price;
2. the policy's `savings.reference_price`;
3. the built-in reference below: a published list price with the date it was read.

Each row records which one priced it (`frontier_price`), and reports say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    """A tier's price in USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000

    @property
    def paid(self) -> bool:
        return self.input_per_mtok > 0 or self.output_per_mtok > 0


@dataclass(frozen=True)
class ReferencePrice:
    """A dated, published price used when the policy names none."""

    code: str  # what rows record in `frontier_price`
    model: str
    price: Price
    as_of: str  # ISO date the price was read from the provider's price list
    source: str

    def describe(self) -> str:
        return (
            f"{self.model} list price, ${self.price.input_per_mtok:.2f} in / "
            f"${self.price.output_per_mtok:.2f} out per million tokens, as of {self.as_of}"
        )


# Anthropic's standard (non-batch, under 200K tokens of context) API price for Claude Sonnet 4.6,
# the mid-range frontier model most coding assistants default to. Change it with the policy's
# `savings.reference_price`; a newer built-in reference gets a new code, so rows priced with
# this one stay recognisable.
REFERENCE_FRONTIER = ReferencePrice(
    code="reference-2026-03-21",
    model="Claude Sonnet 4.6",
    price=Price(input_per_mtok=3.0, output_per_mtok=15.0),
    as_of="2026-03-21",
    source="Anthropic API pricing, standard rate",
)
BUILTIN_REFERENCES = {REFERENCE_FRONTIER.code: REFERENCE_FRONTIER}

FRONTIER_TIER = "frontier-tier"  # priced by the policy's frontier tier
CONFIGURED = "configured"  # priced by the policy's savings.reference_price


@dataclass(frozen=True)
class Counterfactual:
    price: Price
    code: str  # FRONTIER_TIER, CONFIGURED or a built-in reference's code


def counterfactual(frontier_tier_price: Price | None, configured: Price | None) -> Counterfactual:
    """The price that stands for "the frontier alone" (see the module docstring)."""
    if frontier_tier_price is not None and frontier_tier_price.paid:
        return Counterfactual(frontier_tier_price, FRONTIER_TIER)
    if configured is not None:
        return Counterfactual(configured, CONFIGURED)
    return Counterfactual(REFERENCE_FRONTIER.price, REFERENCE_FRONTIER.code)


def describe_price_code(code: str | None) -> str:
    """What a row's `frontier_price` code means, for a report."""
    if code is None:
        return "not recorded (rows from before ninetyten recorded it: the policy's frontier tier, or nothing)"
    if code == FRONTIER_TIER:
        return "the policy's frontier tier price"
    if code == CONFIGURED:
        return "the policy's savings.reference_price"
    reference = BUILTIN_REFERENCES.get(code)
    if reference is not None:
        return f"built-in reference: {reference.describe()}"
    return f"{code} (recorded by another ninetyten version)"


__all__ = [
    "BUILTIN_REFERENCES",
    "CONFIGURED",
    "FRONTIER_TIER",
    "REFERENCE_FRONTIER",
    "Counterfactual",
    "Price",
    "ReferencePrice",
    "counterfactual",
    "describe_price_code",
]
