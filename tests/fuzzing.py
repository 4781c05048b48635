"""Shared hypothesis settings for the property tests.

Derandomized by default so CI is repeatable; `NINETYTEN_FUZZ=deep` switches to random
inputs and ten times the examples for a local bug hunt.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEEP = os.environ.get("NINETYTEN_FUZZ") == "deep"


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples * (10 if DEEP else 1),
        deadline=None,
        derandomize=not DEEP,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
