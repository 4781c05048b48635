"""A repository's policy laid over the user's own: what it may change without being asked.

A repository's `.ninetyten/policy.toml` is untrusted input (anyone can commit one, and a
`git pull` brings it in). Whatever in it can only keep more at home applies at once: more
local routes, more sensitive or high-risk paths, lower budgets and thresholds, `offline`.
Anything that could send code, keys or money elsewhere is left out, and listed with the
repository's value and the reason, until the user approves that file; an approved file's
values apply as well. One rule decides both cases, so "what approving would allow" is exactly
the list of keys left out.

`merge_repository_policy` is a pure function of the two policies; it never reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsp_server.routing.merge_reasons import new_tier_reason, show_value, tier_field_reason
from lsp_server.routing.policy import DEFAULT_CONTEXT_WINDOW, Policy, RiskLevel, Rule, TierConfig
from lsp_server.routing.rule_outcomes import TIER_RANK, further_than_base, risk_change_verdict
from lsp_server.tiers import TierName

_ON_SENSITIVE_RANK = {"redact": 0, "keep_home": 1, "block": 2}
# Tier settings where a smaller number can only mean fewer or shorter remote calls.
_LOWER_IS_STRICTER = ("context_window", "max_concurrent", "max_retries", "timeout_s", "connect_timeout_s")


@dataclass(frozen=True)
class IgnoredKey:
    """One setting of a repository policy that waits for the user's approval."""

    key: str  # dotted, as in the file: "tiers.frontier.base_url", "rules[2]"
    value: str  # the repository's value, as JSON; environment variables by name only
    reason: str  # what it would do

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.key} = {self.value}: {self.reason}"


@dataclass(frozen=True)
class MergedPolicy:
    policy: Policy  # what is in force
    ignored: tuple[IgnoredKey, ...]  # what approval allows (applied already when trusted)


def merge_repository_policy(base: Policy, repo: Policy, *, trusted: bool = False) -> MergedPolicy:
    """`base` (the user's policy or the built-in default) with `repo` laid over it.

    Untrusted (the default), the repository's looser settings are left out and listed;
    `trusted`, they apply too and the same list says what the approval allowed."""
    return _Merge(base, repo, trusted).run()


class _Merge:
    def __init__(self, base: Policy, repo: Policy, trusted: bool) -> None:
        self.base = base
        self.repo = repo
        self.trusted = trusted
        self.data: dict[str, Any] = base.model_dump()
        self.ignored: list[IgnoredKey] = []
        # What the rules and default route are without approval: risk changes are judged
        # against these, so that the list of what approval allows is the same either way.
        self.strict_rules: list[Rule] = list(base.rules)
        self.strict_default: TierName = base.default_route

    def run(self) -> MergedPolicy:
        given = self.repo.model_fields_set
        if "offline" in given:
            self._offline()
        if "tiers" in given:
            self._tiers()
        if "sensitivity" in given:
            self._sensitivity()
        if "escalation" in given:
            self._escalation()
        if "budget" in given:
            self._budget()
        if "rules" in given:
            self._rules()
        if "default_route" in given:
            self._default_route()
        if "risk" in given:  # after the rules: whether risk matters depends on them
            self._risk()
        if "savings" in given:
            self._savings()
        handled = {
            "version",
            "offline",
            "tiers",
            "sensitivity",
            "escalation",
            "budget",
            "rules",
            "default_route",
            "risk",
            "savings",
        }
        self._unjudged("", self.repo, given - handled)
        return MergedPolicy(Policy.model_validate(self.data), tuple(self.ignored))

    def _unjudged(self, section: str, model: Any, fields: set[str]) -> None:
        """Settings this merge does not know how to judge (added to the policy later): they
        wait for approval rather than slip through, or vanish without a word."""
        for field in sorted(fields):
            key = f"{section}.{field}" if section else field
            value = getattr(model, field)
            if self._looser(key, value, "a setting whose effect this version does not judge"):
                target = self.data[section] if section else self.data
                target[field] = value.model_dump() if hasattr(value, "model_dump") else value

    def _looser(self, key: str, value: Any, reason: str) -> bool:
        """Record a setting that needs approval; True when it applies anyway (trusted)."""
        self.ignored.append(IgnoredKey(key, show_value(value), reason))
        return self.trusted

    # -- top level --------------------------------------------------------------------

    def _offline(self) -> None:
        if self.repo.offline:
            self.data["offline"] = True
        elif self.base.offline and self._looser(
            "offline", False, "would let requests leave the machine; your policy keeps everything local"
        ):
            self.data["offline"] = False

    def _default_route(self) -> None:
        wanted, current = self.repo.default_route, self.base.default_route
        if TIER_RANK[wanted] <= TIER_RANK[current]:
            self.data["default_route"] = self.strict_default = wanted
        elif self._looser(
            "default_route", wanted, f"requests no rule matches would go to {wanted} instead of {current}"
        ):
            self.data["default_route"] = wanted

    # -- tiers ------------------------------------------------------------------------

    def _tiers(self) -> None:
        for name, tier in self.repo.tiers.items():
            mine = self.base.tiers.get(name)
            if mine is None:
                if self._looser(f"tiers.{name}", tier, new_tier_reason(name, tier)):
                    self.data["tiers"][name] = tier.model_dump()
                continue
            for field in sorted(tier.model_fields_set):
                self._tier_field(name, field, mine, tier)

    def _tier_field(self, name: TierName, field: str, mine: TierConfig, theirs: TierConfig) -> None:
        wanted, current = getattr(theirs, field), getattr(mine, field)
        if wanted == current:
            return
        key = f"tiers.{name}.{field}"
        if field in _LOWER_IS_STRICTER:
            effective = current if current is not None or field != "context_window" else DEFAULT_CONTEXT_WINDOW[name]
            if wanted is not None and wanted < effective:
                self.data["tiers"][name][field] = wanted
                return
            reason = f"raises {field} from {effective} to {wanted}"
        elif field == "keeps_data_home" and not wanted:
            self.data["tiers"][name][field] = False  # fewer requests may go there
            return
        else:
            reason = tier_field_reason(name, field, mine, wanted)
        if self._looser(key, wanted, reason):
            self.data["tiers"][name][field] = wanted.model_dump() if hasattr(wanted, "model_dump") else wanted

    # -- sensitivity --------------------------------------------------------------------

    def _sensitivity(self) -> None:
        theirs, mine = self.repo.sensitivity, self.base.sensitivity
        out = self.data["sensitivity"]
        given = theirs.model_fields_set
        if "paths" in given:
            for glob in dict.fromkeys(theirs.paths):  # a repeated entry is one setting
                if glob in out["paths"]:
                    continue
                if glob.strip().startswith("!"):
                    if not self._looser(
                        "sensitivity.paths", glob, "re-includes paths: files there would no longer count as sensitive"
                    ):
                        continue
                out["paths"].append(glob)
        if "on_sensitive" in given and theirs.on_sensitive != mine.on_sensitive:
            if _ON_SENSITIVE_RANK[theirs.on_sensitive] > _ON_SENSITIVE_RANK[mine.on_sensitive]:
                out["on_sensitive"] = theirs.on_sensitive
            elif self._looser(
                "sensitivity.on_sensitive",
                theirs.on_sensitive,
                f"sensitive content would be handled by {theirs.on_sensitive!r} instead of "
                f"{mine.on_sensitive!r} (redacted and sent out instead of kept home)",
            ):
                out["on_sensitive"] = theirs.on_sensitive
        for flag, what in (
            ("pii", "e-mail addresses, phone, card and IBAN numbers"),
            ("entropy", "random-looking keys without a known format"),
        ):
            if flag not in given or getattr(theirs, flag) == getattr(mine, flag):
                continue
            if getattr(theirs, flag):
                out[flag] = True
            elif self._looser(f"sensitivity.{flag}", False, f"turns off detection of {what}"):
                out[flag] = False
        if "allowlist" in given:
            for pattern in dict.fromkeys(theirs.allowlist):
                if pattern in out["allowlist"]:
                    continue
                if self._looser(
                    "sensitivity.allowlist",
                    pattern,
                    "values matching it would no longer count as secrets and could be sent out",
                ):
                    out["allowlist"].append(pattern)
        self._unjudged("sensitivity", theirs, given - {"paths", "on_sensitive", "pii", "entropy", "allowlist"})

    # -- escalation and budget ----------------------------------------------------------------

    def _escalation(self) -> None:
        theirs, mine = self.repo.escalation, self.base.escalation
        out = self.data["escalation"]
        given = theirs.model_fields_set
        if "completion_min_mean_logprob" in given:
            self._at_most(
                "escalation.completion_min_mean_logprob",
                theirs.completion_min_mean_logprob,
                mine.completion_min_mean_logprob,
                out,
                "more completions would be sent to a remote tier (escalated)",
            )
        if "completion_min_token_logprob" in given and theirs.completion_min_token_logprob is not None:
            if mine.completion_min_token_logprob is None:
                if self._looser(
                    "escalation.completion_min_token_logprob",
                    theirs.completion_min_token_logprob,
                    "completions would also escalate to a remote tier on their least confident token",
                ):
                    out["completion_min_token_logprob"] = theirs.completion_min_token_logprob
            else:
                self._at_most(
                    "escalation.completion_min_token_logprob",
                    theirs.completion_min_token_logprob,
                    mine.completion_min_token_logprob,
                    out,
                    "more completions would be sent to a remote tier (escalated)",
                )
        if "verify" in given:
            # Checks on answers: escalation still goes only where the rules in force allow.
            out["verify"] = list(dict.fromkeys([*mine.verify, *theirs.verify]))
        if "max_attempts" in given:
            self._at_most(
                "escalation.max_attempts",
                theirs.max_attempts,
                mine.max_attempts,
                out,
                "more attempts per request, on more tiers",
            )
        if "deadline_ms" in given:
            self._at_most(
                "escalation.deadline_ms",
                theirs.deadline_ms,
                mine.deadline_ms,
                out,
                "escalation would start later into a request",
            )
        self._unjudged(
            "escalation",
            theirs,
            given
            - {"completion_min_mean_logprob", "completion_min_token_logprob", "verify", "max_attempts", "deadline_ms"},
        )

    def _budget(self) -> None:
        theirs, mine = self.repo.budget, self.base.budget
        out = self.data["budget"]
        given = theirs.model_fields_set
        for field, whose in (("daily_usd", "your"), ("team_daily_usd", "the whole team's")):
            wanted, current = getattr(theirs, field), getattr(mine, field)
            if field not in given or wanted is None:
                continue
            if current is None or wanted <= current:  # a cap where there was none, or a lower one
                out[field] = wanted
            elif self._looser(
                f"budget.{field}", wanted, f"raises the daily cap on {whose} paid tiers from {current} to {wanted} USD"
            ):
                out[field] = wanted
        if "soft_fraction" in given:
            self._at_most(
                "budget.soft_fraction",
                theirs.soft_fraction,
                mine.soft_fraction,
                out,
                "paid tiers would be used directly for longer before going local first",
            )
        self._unjudged("budget", theirs, given - {"daily_usd", "team_daily_usd", "soft_fraction"})

    def _savings(self) -> None:
        # Only what reports compare against (the frontier's price when none is priced): no
        # request goes anywhere and nothing is spent because of it.
        theirs = self.repo.savings
        out = self.data["savings"]
        if "reference_price" in theirs.model_fields_set:
            value = theirs.reference_price
            out["reference_price"] = value.model_dump() if value is not None else None
        self._unjudged("savings", theirs, theirs.model_fields_set - {"reference_price"})

    def _at_most(self, key: str, wanted: float, current: float, out: dict[str, Any], reason: str) -> None:
        """Numbers where lower keeps more at home."""
        field = key.rsplit(".", 1)[1]
        if wanted <= current:
            out[field] = wanted
        elif self._looser(key, wanted, f"{reason} ({current} -> {wanted})"):
            out[field] = wanted

    # -- rules and risk ---------------------------------------------------------------------

    def _rules(self) -> None:
        taken: list[dict[str, Any]] = []
        strict: list[Rule] = []
        for index, rule in enumerate(self.repo.rules):
            further = further_than_base(rule, self.base)
            if further is None:
                taken.append(rule.model_dump())
                strict.append(rule)
            elif self._looser(f"rules[{index}]", rule, f"rule {rule.name!r} {further}"):
                taken.append(rule.model_dump())
        self.strict_rules = [*strict, *self.base.rules]
        # The repository's rules come first: a request they do not match is routed as before.
        self.data["rules"] = [*taken, *self.data["rules"]]

    def _risk(self) -> None:
        theirs, mine = self.repo.risk, self.base.risk
        out = self.data["risk"]
        given = theirs.model_fields_set
        verdicts: dict[RiskLevel, str | None] = {}

        def verdict(more: RiskLevel) -> str | None:
            if more not in verdicts:
                verdicts[more] = risk_change_verdict(self.strict_rules, self.strict_default, more)
            return verdicts[more]

        if "high" in given:
            for glob in dict.fromkeys(theirs.high):
                if glob in out["high"]:
                    continue
                why = verdict("low" if glob.strip().startswith("!") else "high")
                if why is None or self._looser("risk.high", glob, why):
                    out["high"].append(glob)
        self._unjudged("risk", theirs, given - {"high", "auto_apply_is_high"})
        if "auto_apply_is_high" in given and theirs.auto_apply_is_high != mine.auto_apply_is_high:
            why = verdict("high" if theirs.auto_apply_is_high else "low")
            if why is None or self._looser("risk.auto_apply_is_high", theirs.auto_apply_is_high, why):
                out["auto_apply_is_high"] = theirs.auto_apply_is_high


# -- what a rule set does with a request, ignoring paths ------------------------------------
