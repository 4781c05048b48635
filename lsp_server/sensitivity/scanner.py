"""Data-sensitivity detection, run on every request before any routing decision.

A hit keeps the request home (or gets it redacted, as the policy says), so the scanner
favours recall on real credentials while keeping false positives on ordinary code low.

These detectors feed one report:

* provider rules (``secret_rules.RULES``): token prefixes, keys in context, private keys,
  JWTs, connection strings, HTTP credentials;
* named services' credentials and vendor-prefixed tokens (``service_secrets``), and
  credentials that their format gives away (``structured_secrets``: curl options,
  Kubernetes Secrets, Google credential files);
* generic assignments: ``password = "..."``, ``api_key: ...``, ``.env`` lines, XML
  elements, when the name says "secret" and the value is not a placeholder or a reference;
* high-entropy literals: long base64/hex strings that look random (hex only next to a
  secret-ish name, since bare hex strings in code are almost always hashes);
* PII (``pii.py``): e-mail, phone, payment card (Luhn), IBAN (mod-97); can be turned off.

Plus path globs (gitignore-style) whose files are sensitive whatever they contain.

Findings never hold the matched text: they are logged and written to the ledger.
Overlaps are resolved by precision: a provider rule beats a structural rule (URL, header),
which beats a generic assignment, which beats an entropy hit; PII inside a secret is
dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from lsp_server.sensitivity.assignments import (
    find_generic,
    is_config_path,
)
from lsp_server.sensitivity.concat_view import concat_view
from lsp_server.sensitivity.entropy import find_entropy
from lsp_server.sensitivity.findings import Finding, SensitivityReport
from lsp_server.sensitivity.paths import compile_globs, match_compiled
from lsp_server.sensitivity.pii import DIGIT_SHAPE_TABLE, find_pii
from lsp_server.sensitivity.resolution import (
    PII_TIER,
    STRUCTURED_TIER,
    Hit,
    resolve_overlaps,
)
from lsp_server.sensitivity.scan_views import View, base64_view, decoded_blobs, diff_views, json_view, url_view
from lsp_server.sensitivity.secret_engines import SecretEngine
from lsp_server.sensitivity.secret_rules import (
    RULES,
    SecretRule,
    is_placeholder,
    shannon_entropy,
)
from lsp_server.sensitivity.shapes import Excerpt, excerpt, lines_around, long_token_runs
from lsp_server.sensitivity.structured_secrets import find_structured
from lsp_server.sensitivity.token_runs import find_companions, find_service_tokens

# --- the scanner --------------------------------------------------------------------------

# The rules by where they run, each with the pattern that must occur first: its anchor, or
# the rule itself. Most rules find nothing; one search in C tells so before any Python work.
_TOKEN_RULES = tuple((r, r.anchor or r.regex) for r in RULES if r.scope == "tokens")
_LINE_RULES = tuple((r, r.anchor or r.regex) for r in RULES if r.scope == "lines")
_TEXT_RULES = tuple((r, r.anchor or r.regex) for r in RULES if r.scope == "text")


class SensitivityScanner:
    """Scans text (and its path) for secrets, PII and sensitive locations.

    `path_globs` are gitignore-style; a later `!glob` re-includes. `allowlist` holds
    regexes: a finding whose matched value contains a match is dropped. Immutable after
    construction, so one instance can be shared across requests."""

    def __init__(
        self,
        path_globs: Sequence[str] = (),
        *,
        pii: bool = True,
        entropy: bool = True,
        allowlist: Sequence[str] = (),
        engines: Sequence[SecretEngine] = (),
    ) -> None:
        self.path_globs = tuple(path_globs)
        self.pii = pii
        self.entropy = entropy
        self.allowlist = tuple(allowlist)
        self.engines = tuple(engines)  # other engines answering too (secret_engines)
        self._globs = compile_globs(self.path_globs)
        self._allow = tuple(re.compile(p) for p in self.allowlist)
        self._groups = {
            id(rule): (
                "secret" if "secret" in rule.regex.groupindex else 0,
                "body" if "body" in rule.regex.groupindex else None,
            )
            for rule in RULES
        }

    def __repr__(self) -> str:
        return f"SensitivityScanner(path_globs={self.path_globs!r}, pii={self.pii}, entropy={self.entropy})"

    # ---- paths

    def path_is_sensitive(self, path: str) -> str | None:
        """The glob that makes `path` sensitive, or None (a later `!glob` can undo a match)."""
        return match_compiled(path, self._globs)

    # ---- text

    def scan(self, text: str, path: str | None = None) -> SensitivityReport:
        findings: list[Finding] = []
        if path:
            glob = self.path_is_sensitive(path)
            if glob:
                findings.append(Finding("path", f"path:{glob}", "path", 0, 0))
        if not text:
            return SensitivityReport(tuple(findings))
        config_like = is_config_path(path)
        # The detectors read an ASCII copy (one `?` for each other character, so offsets
        # hold): a single `–` or `’` makes the whole text a 2- or 4-byte string and every pass
        # over it 2-4x slower. Credentials are ASCII; PII is read from the text as it is.
        source = text if text.isascii() else text.encode("ascii", "replace").decode("ascii")
        hits, runs = self._detect(source, config_like, path is None, pii_text=text)
        hits += self._normalised(source, runs, config_like, path is None)
        for engine in self.engines:
            for rule, start, end in engine.find(text):
                if 0 <= start < end <= len(text):
                    hits.append(Hit(0, "secret", rule, f"engine:{engine.name}", start, end))
        if runs or hits:
            find_companions(source, hits)
        if self._allow:
            hits = [h for h in hits if not any(rx.search(text[h.start : h.end]) for rx in self._allow)]
        findings.extend(resolve_overlaps(hits))
        return SensitivityReport(tuple(findings))

    def scan_paths(self, text: str, paths: Sequence[str]) -> dict[str, SensitivityReport]:
        """`scan(text, path)` for each path (the files a diff chunk holds), reading the text
        once per kind of file: a path changes only its own path finding and whether the text
        is read as a config file."""
        text_findings: dict[bool, tuple[Finding, ...]] = {}
        reports: dict[str, SensitivityReport] = {}
        for path in paths:
            config_like = is_config_path(path)
            if config_like not in text_findings:
                text_findings[config_like] = tuple(f for f in self.scan(text, path).findings if f.kind != "path")
            glob = self.path_is_sensitive(path) if path else None
            own = (Finding("path", f"path:{glob}", "path", 0, 0),) if glob else ()
            reports[path] = SensitivityReport(own + text_findings[config_like])
        return reports

    def _detect(
        self, text: str, config_like: bool, pathless: bool, pii_text: str | None = None
    ) -> tuple[list[Hit], list[tuple[int, int]]]:
        """Every detector over `text` as it is; also returns the long token runs. `pii_text`
        is the text PII is read from when `text` is its ASCII copy (same length)."""
        lowered = text.lower()
        if len(lowered) != len(text):  # only U+0130 lower-cases to two code points
            lowered = text.replace("\u0130", "I").lower()
        ascii_bytes = text.encode("ascii", "replace")
        runs = long_token_runs(ascii_bytes)
        hits: list[Hit] = []
        if runs:
            # Most rules only look at long tokens, or at the lines that hold one: a few
            # percent of typical code, so each rule's pass over it is cheap.
            tokens = excerpt(text, runs)
            lines = lines_around(text, runs)
            line_texts = {False: excerpt(text, lines), True: excerpt(lowered, lines)}
            for rule, first in _TOKEN_RULES:
                if first.search(tokens.text):  # one C call; most rules stop here
                    self._run_rule(rule, text, tokens, hits)
            for rule, first in _LINE_RULES:
                source = line_texts[rule.on_lower]
                if first.search(source.text):
                    self._run_rule(rule, text, source, hits)
        asked: dict[tuple[int, bool], bool] = {}  # rules sharing an anchor ask it once
        for rule, first in _TEXT_RULES:
            whole = lowered if rule.on_lower else text
            key = (id(first), rule.on_lower)
            if key not in asked:
                asked[key] = first.search(whole) is not None
            if asked[key]:
                self._run_rule(rule, text, whole, hits)
        for rule_id, family, start, end in find_structured(text, lowered):
            hits.append(Hit(STRUCTURED_TIER, "secret", rule_id, family, start, end))
        find_generic(text, lowered, config_like, hits)
        shape = ascii_bytes.translate(DIGIT_SHAPE_TABLE)  # digits "0", upper "A", lower "a"
        if runs:
            find_service_tokens(text, runs, shape, hits)
        if self.entropy and runs:
            find_entropy(text, runs, config_like or pathless, hits)
        if self.pii:
            pii = find_pii(text if pii_text is None else pii_text, lowered, shape)
            hits.extend(Hit(PII_TIER, "pii", rule, "pii", s, e) for rule, s, e in pii)
        return hits, runs

    def _normalised(self, text: str, runs: list[tuple[int, int]], config_like: bool, pathless: bool) -> list[Hit]:
        """Findings in the decoded views of `text` (scan_views), mapped back onto it."""
        views: list[View] = diff_views(text)
        for build in (json_view, concat_view, url_view):
            view = build(text)
            if view is not None:
                views.append(view)
            if build is json_view and view is not None:
                # Concatenations and URL escapes inside JSON strings (a notebook's code).
                views += [inner.through(view) for inner in (concat_view(view.text), url_view(view.text)) if inner]
        hits: list[Hit] = []
        blobs = decoded_blobs(text, runs)
        for blob in blobs:
            if blob.der_private_key:
                hits.append(Hit(0, "secret", "private-key", "private-key", blob.start, blob.end))
        if (view := base64_view(blobs)) is not None:
            views.append(view)
        if not views:
            return hits
        view = views[0] if len(views) == 1 else View.merged(views)
        view_hits, view_runs = self._detect(view.text, config_like, pathless)
        for blob in decoded_blobs(view.text, view_runs):  # one level of nesting: base64 in JSON...
            if blob.der_private_key:
                view_hits.append(Hit(0, "secret", "private-key", "private-key", blob.start, blob.end))
        for h in view_hits:
            start, end = view.to_original(h.start, h.end)
            hits.append(Hit(h.tier, h.kind, h.rule, h.family, start, end))
        return hits

    def _run_rule(self, rule: SecretRule, text: str, source: str | Excerpt, hits: list[Hit]) -> None:
        """Run one rule over `source`: the text, its lower-cased copy, or an excerpt of either."""
        excerpt = source if isinstance(source, Excerpt) else None
        src = source.text if isinstance(source, Excerpt) else source
        matches: Iterable[re.Match[str]]
        if rule.anchor is None:
            matches = rule.regex.finditer(src)
        else:
            matches = self._anchored(rule, src)
        secret_group, body_group = self._groups[id(rule)]
        for m in matches:
            start, end = m.span(secret_group)
            if start < 0 or start == end:
                continue
            shift = 0
            if excerpt is not None:  # offsets in the excerpt -> offsets in the text
                mapped = excerpt.to_original(start)
                shift = mapped - start
                start, end = mapped, end + shift
            if rule.boundary and start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
                continue
            value = text[start:end]
            if rule.value_re is not None and not rule.value_re.fullmatch(value):
                continue
            body = value
            if body_group is not None and m.start(body_group) >= 0:
                body = text[m.start(body_group) + shift : m.end(body_group) + shift]
            if rule.placeholder_check and is_placeholder(body):
                continue
            if rule.min_entropy and shannon_entropy(body) < rule.min_entropy:
                continue
            if rule.validator is not None and not rule.validator(value):
                continue
            hits.append(Hit(rule.tier, "secret", rule.id, rule.family, start, end))

    @staticmethod
    def _anchored(rule: SecretRule, src: str) -> list[re.Match[str]]:
        """Matches of `rule.regex` near the hits of its (fast) anchor.

        Overlapping windows are merged first, so dense anchors cost one pass, not many."""
        assert rule.anchor is not None
        windows: list[list[int]] = []
        for a in rule.anchor.finditer(src):
            lo, hi = max(0, a.start() - rule.window), min(len(src), a.end() + rule.window)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], hi)
            else:
                windows.append([lo, hi])
        return [m for lo, hi in windows for m in rule.regex.finditer(src, lo, hi)]
