"""The reasons shown for a repository policy's settings that wait for approval."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lsp_server.routing.policy import TierConfig


def show_value(value: Any) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_defaults=True)
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


def tier_list(tiers: Iterable[str | None]) -> str:
    return ", ".join(tier for tier in tiers if tier)


def new_tier_reason(name: str, tier: TierConfig) -> str:
    article = "an" if name[0] in "aeiou" else "a"
    parts = [
        f"{article} {name} tier your policy does not have: would send code to {tier.base_url or 'a local model file'}"
    ]
    if tier.api_key_env:
        parts.append(f"with the value of ${tier.api_key_env} as its key")
    if tier.keeps_data_home:
        parts.append("declared to keep data home, so sensitive content would go there too")
    if tier.price.paid:
        parts.append("at a price")
    return ", ".join(parts)


def tier_field_reason(name: str, field: str, mine: TierConfig, wanted: Any) -> str:
    if field == "base_url":
        return f"would send the {name} tier's requests (and its key) to {wanted} instead of {mine.base_url}"
    if field == "api_key_env":
        return f"would send the value of ${wanted} to {mine.base_url} as the {name} tier's key"
    if field == "keeps_data_home":
        return f"sensitive content would be sent to the {name} tier ({mine.base_url})"
    if field in ("model", "chat_model", "draft_model") and name == "local":
        return "would load a model file (and its chat template) named by the repository"
    if field == "model":
        return f"would ask {mine.base_url} for another model ({mine.model} -> {wanted}), at its price"
    if field == "backend":
        return f"would talk to the {name} tier with another protocol"
    if field == "price":
        return "changes what the tier's requests cost against the budget"
    return f"changes the {name} tier's {field}"
