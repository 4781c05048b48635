"""The extension point for whoever wants to know about attempts: the ledger, the eval harness.

The engine tells every subscribed observer about each attempt once it is settled (its
outcome known). Observers run on the request's path: they queue, they do not block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lsp_server.engine.results import Attempt
from lsp_server.ledger.reservations import BudgetHold
from lsp_server.routing.policy import TaskType
from lsp_server.routing.router import Decision


@dataclass(frozen=True)
class AttemptEvent:
    """One settled attempt of one request, and what decided it."""

    request_id: str
    number: int  # 1 for the first attempt of the request
    task: TaskType
    attempt: Attempt
    decision: Decision
    # The budget held for a paid call: whoever records the attempt settles it.
    reservation: BudgetHold | None = None


class AttemptObserver(Protocol):
    def attempt_settled(self, event: AttemptEvent) -> None: ...


class AttemptLog:
    """Keeps every attempt it is told about (the eval harness reads usage, latency and cost)."""

    def __init__(self) -> None:
        self.events: list[AttemptEvent] = []

    def attempt_settled(self, event: AttemptEvent) -> None:
        self.events.append(event)

    @property
    def attempts(self) -> list[Attempt]:
        return [event.attempt for event in self.events]

    def clear(self) -> None:
        self.events.clear()
