"""Telling the user about the engine: once per run of crashes, not once per request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from lsp_server.engine_host.runtime import CrashRecord

log = logging.getLogger(__name__)

Severity = Literal["warning", "error"]
Notice = Callable[[Severity, str], None]


class Notices:
    """What the user hears (through `on_notice`, from any thread): a crash once until a
    generation succeeds again, a model marked bad every time it is refused."""

    def __init__(self, on_notice: Notice | None) -> None:
        self.on_notice = on_notice
        self._told = False  # the user heard about the current run of crashes

    def crashed(self, crash: CrashRecord, model: str) -> None:
        if self._told:
            return
        self._told = True
        self._tell(
            "warning",
            f"the local engine crashed with {crash.describe(cause=False)} ({model}); it is "
            f"restarting, and requests in flight got no answer. Likely cause: {crash.cause}",
        )

    def marked_bad(self, message: str) -> None:
        self._tell("error", message)

    def worked(self) -> None:
        """A generation succeeded: a later crash is news."""
        self._told = False

    def _tell(self, severity: Severity, message: str) -> None:
        log.warning("%s", message)
        if self.on_notice is not None:
            try:
                self.on_notice(severity, message)
            except Exception:
                log.exception("telling the user failed")
