"""Staying quiet: a suggestion the model was unsure of is usually wrong, and a wrong
suggestion costs the user more (reading it, dismissing it) than no suggestion.

The gate reads the generation's own confidence: the mean log-probability of the tokens it
chose. The threshold is calibrated on `ninetyten eval completion` (the cross-file and real-line
suites): below it, few suggestions were right. The eval reports the trade as the share of
suggestions shown against the share of shown suggestions that were right ("accepted if
correct"); see docs/evaluation.md for the numbers behind the default.

Only suggestions made while typing are held back: a request the user made explicitly is
always answered, and the setting `completion.quiet` turns the gate off.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuietGate:
    min_mean_logprob: float

    def holds_back(self, mean_logprob: float | None) -> bool:
        return mean_logprob is not None and mean_logprob < self.min_mean_logprob
