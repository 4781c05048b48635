"""The routing policy: one TOML file the whole team commits (`.ninetyten/policy.toml`).

Validated by pydantic; every error names the file, the line and the key. Where the
policy comes from, first found wins: `--policy`, `NINETYTEN_POLICY`, the workspace's
`.ninetyten/policy.toml`, the user config dir, the built-in default (everything local).
The first two and the user's own file are trusted; a workspace's file is laid over the
user's own (or the default), and only as far as the user approved it (`policy_trust`).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lsp_server.backends.registry import backend_names, is_remote
from lsp_server.ledger.prices import Price
from lsp_server.tiers import REMOTE_TIERS, TierName

if TYPE_CHECKING:
    from lsp_server.routing.policy_merge import IgnoredKey

TaskType = Literal["completion", "explain", "refactor", "ask", "commit_message"]
RiskLevel = Literal["low", "high"]
LatencyClass = Literal["interactive", "background"]
Verifier = Literal["syntax", "non_empty", "length"]

POLICY_ENV = "NINETYTEN_POLICY"
WORKSPACE_POLICY = Path(".ninetyten") / "policy.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierConfig(_Strict):
    backend: str = Field(description="a name from lsp_server.backends.registry")
    model: str = Field(min_length=1)
    # The local tier only. A second local model for explain, refactor, ask and commit messages
    # (an instruct model beside a fill-in-the-middle base model); without it `model` serves them.
    chat_model: str | None = Field(None, min_length=1)
    # The local tier only: a small model with the chat model's vocabulary that drafts tokens
    # for its answers (speculative decoding; the answers stay exactly the chat model's own).
    draft_model: str | None = Field(None, min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    keeps_data_home: bool = False
    price: Price = Field(default_factory=Price)
    context_window: int | None = Field(
        None, gt=0, description="tokens; default: 8192 local, 32768 in-house, 200000 frontier"
    )
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(3.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    max_concurrent: int = Field(4, ge=1, le=256, description="requests in flight to this tier at once")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in backend_names():
            known = ", ".join(repr(name) for name in backend_names())
            raise ValueError(f"unknown backend {value!r}: one of {known}")
        return value

    @model_validator(mode="after")
    def _remote_needs_url(self) -> "TierConfig":
        for local_only in ("chat_model", "draft_model"):
            if is_remote(self.backend) and getattr(self, local_only) is not None:
                raise ValueError(f"{local_only} is for the local tier (backend = \"llama_cpp\") only")
        if is_remote(self.backend) and not self.base_url:
            raise ValueError(f"a {self.backend} tier needs base_url")
        if self.base_url and not re.match(r"^https?://", self.base_url):
            raise ValueError("base_url must start with http:// or https://")
        return self


class SensitivityConfig(_Strict):
    paths: list[str] = Field(default_factory=list, description="path globs whose content is always sensitive")
    on_sensitive: Literal["keep_home", "redact", "block"] = "keep_home"
    pii: bool = True
    entropy: bool = True
    allowlist: list[str] = Field(default_factory=list, description="regexes of values never to flag")

    @field_validator("allowlist")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except (re.error, OverflowError, RecursionError) as error:  # a{99999999999}, deep nesting
                raise ValueError(f"allowlist pattern {pattern!r} is not a valid regex: {error}") from None
        return patterns


class RiskConfig(_Strict):
    high: list[str] = Field(default_factory=list, description="path globs that are high risk")
    auto_apply_is_high: bool = Field(True, description="results applied without review count as high risk")


class Rule(_Strict):
    name: str = Field(min_length=1)
    task: list[TaskType] | None = None
    risk: list[RiskLevel] | None = None
    latency: list[LatencyClass] | None = None
    paths: list[str] | None = None
    route: TierName
    escalate_to: TierName | None = None


class EscalationConfig(_Strict):
    # From `ninetyten eval escalation` on the embedded model: -1.2 escalated nothing once
    # answers were whole; about -0.5 escalates the least confident fifth. Run it for your model.
    completion_min_mean_logprob: float = Field(-0.5, le=0)
    # The least confident token predicts failure better than the mean (AUROC 0.80 vs 0.69 on
    # the embedded model), but its scale depends on the model: off unless set.
    completion_min_token_logprob: float | None = Field(None, le=0)
    verify: list[Verifier] = Field(default_factory=lambda: list[Verifier](["syntax", "non_empty"]))
    max_attempts: int = Field(2, ge=1, le=5)
    deadline_ms: int = Field(20_000, ge=100)


class BudgetConfig(_Strict):
    daily_usd: float | None = Field(None, ge=0, description="hard cap on paid tiers per UTC day")
    soft_fraction: float = Field(0.8, gt=0, le=1)
    # Held in the team ledger, atomic across developers; only where the user configured one.
    team_daily_usd: float | None = Field(None, ge=0, description="hard cap on the whole team's paid tiers per UTC day")


class SavingsConfig(_Strict):
    # What "the frontier alone" costs when the policy has no priced frontier tier
    # (default: the dated reference price in lsp_server/ledger/prices.py).
    reference_price: Price | None = None


class Policy(_Strict):
    version: Literal[1] = 1
    offline: bool = False
    default_route: TierName = "local"
    tiers: dict[TierName, TierConfig] = Field(
        default_factory=lambda: dict[TierName, TierConfig]({"local": TierConfig(backend="llama_cpp", model="default")})
    )
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    rules: list[Rule] = Field(default_factory=list)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    savings: SavingsConfig = Field(default_factory=SavingsConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "Policy":
        local = self.tiers.get("local")
        if local is None:
            raise ValueError("tiers.local is required: every feature must work on the local model")
        if is_remote(local.backend):
            local_names = " or ".join(f'"{name}"' for name in backend_names(remote=False))
            raise ValueError(f"tiers.local must use backend = {local_names}")
        for tier in REMOTE_TIERS:
            config = self.tiers.get(tier)
            if config is not None and not is_remote(config.backend):
                remote_names = " or ".join(backend_names(remote=True))
                raise ValueError(f"tiers.{tier} must be a remote backend ({remote_names})")
        return self

    def tier(self, name: TierName) -> TierConfig | None:
        return self.tiers.get(name)

    def keeps_data_home(self, name: TierName) -> bool:
        if name == "local":
            return True
        config = self.tiers.get(name)
        return bool(config and config.keeps_data_home)

    @cached_property
    def digest(self) -> str:
        """A short hash of the effective policy, recorded with every ledger row."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


DEFAULT_CONTEXT_WINDOW: dict[TierName, int] = {"local": 8192, "in_house": 32768, "frontier": 200_000}


def context_window(policy: Policy, tier: TierName) -> int:
    config = policy.tier(tier)
    if config is not None and config.context_window:
        return config.context_window
    return DEFAULT_CONTEXT_WINDOW[tier]


# -- loading ---------------------------------------------------------------------


class PolicyError(Exception):
    """A policy file that cannot be used; says where and what."""

    def __init__(self, path: Path | None, problems: list[tuple[int | None, str, str]]) -> None:
        self.path = path
        self.problems = problems  # (line, key, message)
        where = str(path) if path else "<policy>"
        lines = [f"{where}:{line or '?'}: {key or '(file)'}: {message}" for line, key, message in problems]
        super().__init__("invalid policy\n" + "\n".join(lines))

    @property
    def first_line(self) -> int | None:
        return self.problems[0][0] if self.problems else None


Trust = Literal["trusted", "approved", "untrusted"]


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy  # the effective policy (for a workspace: laid over the user's own)
    source: Literal["flag", "env", "workspace", "user", "builtin"]
    path: Path | None
    # The user's own policies are trusted; a workspace policy is approved or untrusted.
    trust: Trust = "trusted"
    # Workspace only: its settings that need the user's approval (applied once approved).
    ignored: tuple[IgnoredKey, ...] = ()
    sha256: str | None = None  # workspace only: the digest of the file's bytes
    base: Path | None = None  # workspace only: the user's policy it is laid over (None: built-in)

    @property
    def digest(self) -> str:
        return self.policy.digest

    @property
    def needs_approval(self) -> bool:
        """A workspace policy of which some settings are ignored until the user approves it."""
        return self.trust == "untrusted" and bool(self.ignored)


# A TOML key part: bare, "basic" (with escapes) or 'literal'; quoted parts may hold dots and spaces.
_KEY_PART = r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'"""
_KEY = rf"(?:{_KEY_PART})(?:\s*\.\s*(?:{_KEY_PART}))*"


def _key_parts(key: str) -> tuple[str, ...]:
    parts = []
    for match in re.finditer(_KEY_PART, key):
        part = match.group()
        if part[0] in "\"'":
            try:
                part = tomllib.loads(f"k = {part}")["k"]  # the key as pydantic sees it, escapes undone
            except tomllib.TOMLDecodeError:
                part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map dotted key paths to the 1-based line that defines them (headers and keys)."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    array_counts: dict[tuple[str, ...], int] = {}
    header = re.compile(rf"^\s*(\[\[?)\s*({_KEY})\s*\]\]?\s*(#.*)?$")
    assignment = re.compile(rf"^\s*({_KEY})\s*=")
    # TOML lines end only at \n; str.splitlines would also split at U+2028, NEL... inside
    # strings and comments and shift every line number after them.
    for number, line in enumerate(text.split("\n"), start=1):
        match = header.match(line)
        if match:
            parts = _key_parts(match.group(2))
            if match.group(1) == "[[":
                index = array_counts.get(parts, 0)
                array_counts[parts] = index + 1
                table = (*parts, str(index))
            else:
                table = parts
            found.setdefault(table, number)
            continue
        match = assignment.match(line)
        if match:
            key = _key_parts(match.group(1))
            for end in range(1, len(key) + 1):  # `a.b = 1` defines table `a` on this line too
                found.setdefault((*table, *key[:end]), number)
    return found


def _line_for(lines: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def parse_policy(text: str, path: Path | None = None) -> Policy:
    """Parse and validate; raise PolicyError naming file, line and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+)", str(error))
        raise PolicyError(path, [(int(match.group(1)) if match else None, "", f"not valid TOML: {error}")]) from None
    except RecursionError:  # tomllib recurses per nesting level: `a = [[[[...`
        raise PolicyError(path, [(None, "", "not valid TOML: arrays or tables nested too deeply")]) from None
    except ValueError as error:  # tomllib lets int()'s own error through (a number of over 4300 digits)
        digits = re.search(r"[0-9_]{4301,}", text)
        line = text.count("\n", 0, digits.start()) + 1 if digits else None
        raise PolicyError(path, [(line, "", f"not valid TOML: {error}")]) from None
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        lines = _key_lines(text)
        problems = []
        for item in error.errors():
            loc = tuple(str(part) for part in item["loc"])
            if not loc and (named := re.match(r"(?:Value error, )?([a-z_]+(?:\.[a-z_]+)*)\b", item["msg"])):
                # Checks across tables (Policy._consistent) have no location of their own;
                # their messages start with the dotted key they are about.
                if named.group(1).split(".")[0] in Policy.model_fields:
                    loc = tuple(named.group(1).split("."))
            # pydantic adds the union/literal branch to loc for some errors; keep the data keys.
            key = ".".join(loc)
            problems.append((_line_for(lines, loc), key, item["msg"]))
        raise PolicyError(path, problems) from None


def load_policy_file(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(path, [(None, "", f"cannot read the file: {error}")]) from None
    return parse_policy(text, path)


def user_policy_path() -> Path:
    return Path(platformdirs.user_config_dir("ninetyten")) / "policy.toml"


def policy_to_jsonable(policy: Policy) -> dict[str, Any]:
    return policy.model_dump(mode="json")
