"""The one token estimate used wherever no tokenizer is at hand.

One token per 3 UTF-8 bytes: conservative for code (real tokenizers average ~3.5-4), so
budgets built on it do not overflow. It is subadditive (estimate(a + b) <= estimate(a) +
estimate(b)), which lets the diff chunker add up the counts of pieces instead of counting
growing text again.
"""

from __future__ import annotations

BYTES_PER_TOKEN = 3


def estimate_tokens(text: str) -> int:
    return (len(text.encode("utf-8", "surrogatepass")) + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN


def tokens_for_chars(chars: int) -> int:
    """The estimate for text of `chars` characters when only its length is known (ASCII-like text)."""
    return (chars + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN


def chars_for_tokens(tokens: int) -> int:
    """About how much text fits a budget of `tokens`."""
    return tokens * BYTES_PER_TOKEN
