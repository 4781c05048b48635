"""The one exception type of this package.

Every message says what went wrong *and* what the user can do about it, because
these errors surface verbatim in the editor, the CLI and the server log.
"""

from __future__ import annotations


class ModelError(Exception):
    """A model could not be located, assembled, verified or understood."""

    def __init__(self, problem: str, remedy: str | None = None) -> None:
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{problem} {remedy}" if remedy else problem)


# Shared wording so every "which model?" failure points at the same three knobs.
CHOOSE_MODEL_HINT = (
    "Pass --model PATH to an existing .gguf, set NINETYTEN_MODEL, "
    "or run `ninetyten models list` to see the known models."
)
