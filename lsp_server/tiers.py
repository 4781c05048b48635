"""The tiers a request can go to, named once for the policy, the engine and the ledger."""

from __future__ import annotations

from typing import Final, Literal

TierName = Literal["local", "in_house", "frontier"]

LOCAL: Final = "local"  # llama.cpp on this machine
IN_HOUSE: Final = "in_house"  # the team's own OpenAI-compatible server
FRONTIER: Final = "frontier"  # a frontier provider

# Cheapest and closest first: the router's order, and the order reports list tiers in.
TIER_ORDER: tuple[TierName, ...] = (LOCAL, IN_HOUSE, FRONTIER)
REMOTE_TIERS: tuple[TierName, ...] = (IN_HOUSE, FRONTIER)
