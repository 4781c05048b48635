"""What a scan finds: where, which rule, of which kind; never the matched text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["secret", "pii", "path"]

PiiHit = tuple[str, int, int]  # a PII detector's (rule, start, end)


@dataclass(frozen=True)
class Finding:
    kind: Kind
    rule: str  # e.g. "github-pat", "email", "path:secrets/**"
    family: str  # e.g. "vcs", "cloud", "pii", "path"
    start: int  # character offsets into the scanned text; (0, 0) for path findings
    end: int
    # Deliberately no `value` field: findings are logged and put in ledgers.


_KIND_ORDER = {"path": 0, "secret": 1, "pii": 2}


@dataclass(frozen=True)
class SensitivityReport:
    findings: tuple[Finding, ...] = ()

    @property
    def sensitive(self) -> bool:
        return bool(self.findings)

    @property
    def rules(self) -> list[str]:
        """Sorted unique rule names (safe to log)."""
        return sorted({f.rule for f in self.findings})

    def summary(self) -> str:
        """E.g. "secret:aws-access-key-id, pii:email" (no values)."""
        pairs = sorted({(f.kind, f.rule) for f in self.findings}, key=lambda p: (_KIND_ORDER[p[0]], p[1]))
        # Path rules already read "path:<glob>".
        return ", ".join(rule if rule.startswith(f"{kind}:") else f"{kind}:{rule}" for kind, rule in pairs)
