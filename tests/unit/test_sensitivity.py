"""Sensitivity detection: recall on the seeded corpus, silence on clean code, placeholders,
path globs, redaction, and that findings never carry the values they found."""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server.sensitivity.findings import Finding, SensitivityReport
from lsp_server.sensitivity.paths import glob_to_regex
from lsp_server.sensitivity.pii import card_issuer, find_pii, iban_valid, luhn_valid
from lsp_server.sensitivity.redaction import redact
from lsp_server.sensitivity.scanner import SensitivityScanner
from lsp_server.sensitivity.secret_rules import RULES, is_placeholder, rule_ids, valid_jwt

DATA = Path(__file__).resolve().parent.parent / "data"
SECRETS = DATA / "secrets"
CLEAN = DATA / "clean"
MANIFEST = json.loads((SECRETS / "manifest.json").read_text(encoding="utf-8"))["files"]
SCANNER = SensitivityScanner()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _span(text: str, value: str) -> tuple[int, int]:
    start = text.find(value)
    assert start >= 0, f"planted value missing from the file: {value[:20]}..."
    return start, start + len(value)


# --------------------------------------------------------------------------- the rule set


def test_rule_set_is_large_and_every_rule_is_planted() -> None:
    ids = rule_ids()
    assert len(ids) >= 40
    planted = {entry["rule"] for entries in MANIFEST.values() for entry in entries}
    assert set(ids) - planted == set(), "every provider rule has a value in the seeded corpus"
    families = {rule.family for rule in RULES} | {"generic-assignment", "entropy", "pii"}
    assert families <= {entry["family"] for entries in MANIFEST.values() for entry in entries}


def test_rules_are_compiled_data_with_families() -> None:
    for rule in RULES:
        assert rule.id and rule.family and rule.regex.pattern
        assert rule.scope in ("text", "tokens", "lines")


def test_corpus_generator_is_deterministic(tmp_path: Path) -> None:
    """Re-running the committed generator reproduces the committed corpus byte for byte."""
    import shutil
    import subprocess
    import sys

    shutil.copy(SECRETS / "generate.py", tmp_path / "generate.py")
    subprocess.run([sys.executable, str(tmp_path / "generate.py")], check=True, capture_output=True)
    for name in [*MANIFEST, "manifest.json"]:
        assert (tmp_path / name).read_bytes() == (SECRETS / name).read_bytes(), name


# --------------------------------------------------------------------------- recall / precision


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_planted_value_is_found_with_its_rule(name: str) -> None:
    text = _read(SECRETS / name)
    report = SCANNER.scan(text, name)
    for entry in MANIFEST[name]:
        start, end = _span(text, entry["value"])
        covering = [f for f in report.findings if f.start <= start and f.end >= end]
        assert any(
            f.rule == entry["rule"] and f.family == entry["family"] and f.kind == entry["kind"] for f in covering
        ), f"{name}: {entry['rule']} not detected (got {[f.rule for f in covering]})"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_seeded_files_have_no_other_findings(name: str) -> None:
    text = _read(SECRETS / name)
    spans = [_span(text, entry["value"]) for entry in MANIFEST[name]]
    for finding in SCANNER.scan(text, name).findings:
        assert any(finding.start < end and finding.end > start for start, end in spans), (
            f"{name}: unexpected {finding.rule} at {finding.start}"
        )


def test_recall_per_family_is_complete() -> None:
    found: dict[str, list[bool]] = {}
    for name, entries in MANIFEST.items():
        text = _read(SECRETS / name)
        report = SCANNER.scan(text, name)
        for entry in entries:
            start, end = _span(text, entry["value"])
            hit = any(f.rule == entry["rule"] and f.start <= start and f.end >= end for f in report.findings)
            found.setdefault(entry["family"], []).append(hit)
    assert {family: all(hits) for family, hits in found.items()} == {family: True for family in found}


@pytest.mark.parametrize("path", sorted(p for p in CLEAN.iterdir() if p.is_file()), ids=lambda p: p.name)
def test_clean_corpus_has_no_findings(path: Path) -> None:
    text = _read(path)
    report = SCANNER.scan(text, path.name)
    assert report.findings == (), [(f.rule, text[f.start : f.end]) for f in report.findings]


def test_same_secret_is_found_without_a_path_and_in_any_file_type() -> None:
    rng = random.Random(1)
    token = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    for path in (None, "a.py", "b.txt", "c.unknown", "deep/dir/d.md"):
        assert SCANNER.scan(f"token: {token}\n", path).rules == ["github-pat"]


# --------------------------------------------------------------------------- placeholders

PLACEHOLDERS = [
    'api_key = "${API_KEY}"',
    "token: $TOKEN",
    'password: "{{ vault_password }}"',
    'api_key = "<your-api-key>"',
    "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    'password = "********"',
    'password = "changeme"',
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    'stripe_key = "sk_live_EXAMPLEEXAMPLEEXAMPLE1234"',
    'secret = "dummy-secret-value-1234"',
    'client_secret = "fake-client-secret-99"',
    'token = "sample_token_abc123456"',
    'api_key = "PLACEHOLDER_KEY_12345"',
    'password = "[redacted]"',
    'password = os.environ["DB_PASSWORD"]',
    'token = os.getenv("TOKEN")',
    "apiKey: process.env.API_KEY,",
    "password = None",
    '"password": null,',
    'password = ""',
    'secret = "aaaaaaaaaaaaaaaaaaaaaaaa"',
    'token = "test-token-123456"',
    "postgres://user:password@localhost:5432/db",
    "https://admin:hunter2x9@example.com/login",
    "Authorization: Bearer ${ACCESS_TOKEN}",
    'password = f"{prefix}-{suffix}"',
    "password = self.password",
    "def login(user: str, password: str) -> bool:",
    "if password == expected:",
]


@pytest.mark.parametrize("text", PLACEHOLDERS)
def test_placeholders_are_not_flagged(text: str) -> None:
    assert SCANNER.scan(text + "\n", "settings.py").findings == ()


@pytest.mark.parametrize(
    "value", ["${X}", "$X", "{{ x }}", "<your-key>", "xxxxxxxx", "****", "changeme", "None", "null", "", "zzzzzz", "%s"]
)
def test_is_placeholder(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", ["q8Zr2LmX9vTn4KpW", "hunter2x9!", "ghp_aB3dE5fG7hI9"])
def test_is_not_placeholder(value: str) -> None:
    assert not is_placeholder(value)


def test_stripe_test_keys_are_still_secrets() -> None:
    report = SCANNER.scan('STRIPE = "sk_test_4qN8rT2vX6zB1mK5pW9yL3hJ"\n', "billing.py")
    assert report.rules == ["stripe-secret-key"]


def test_user_allowlist_suppresses_matching_values() -> None:
    token = "ghp_" + "Ab1" * 12
    text = f'TOKEN = "{token}"\npassword = "Tr0ub4dor&3x"\n'
    assert SensitivityScanner().scan(text).rules == ["generic-password", "github-pat"]
    assert SensitivityScanner(allowlist=[r"^ghp_(Ab1)+$"]).scan(text).rules == ["generic-password"]


# --------------------------------------------------------------------------- generic assignments


@pytest.mark.parametrize(
    ("text", "path", "rule"),
    [
        ('DB_PASSWORD = "s3cr3t-Pa55"', "a.py", "generic-password"),
        ("db_password: s3cr3tPa55", "a.yaml", "generic-password"),
        ("export CLIENT_SECRET=9f8e7d6c5b4a3f2e1d0c", ".env", "generic-secret"),
        ('"apiKey": "a8F3kL9qZ2xV7bN4mP6r"', "a.json", "generic-api-key"),
        ('auth_token := "Zq4mK8pX2vB6nL9rT3wY"', "a.go", "generic-token"),
        ("private_key = 'k9Lm2Xq7Vb4Nz8Rt'", "a.py", "generic-secret"),
        ("password: str = 'Tr0ub4dor&3x'", "a.py", "generic-password"),
        ("connect(host, password='Tr0ub4dor&3x')", "a.py", "generic-password"),
        ("<password>Tr0ub4dor&3x</password>", "settings.xml", "generic-password"),
        ("spring.datasource.password=Tr0ub4dor3x", "application.properties", "generic-password"),
    ],
)
def test_generic_assignments(text: str, path: str, rule: str) -> None:
    assert SCANNER.scan(text + "\n", path).rules == [rule]


@pytest.mark.parametrize(
    "text",
    [
        'password_hash = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"',
        'secret_name = "orders-db-credentials"',
        'token_type = "Bearer"',
        'next_token = "eyJvZmZzZXQiOjEwMH0"',
        'password_prompt = "Enter password: "',
        'PASSWORD_FILE = "/run/secrets/db_password"',
        'eos_token = "</s>"',
        "token = tokens[0]",
        "api_key = config.api_key",
        "password = get_password()",
        "passwd: str",
        'token = r"[-!#$%&\'*+.^_`|~0-9a-zA-Z]+"',
        'publicKeyToken="1fc8b3b9a1e18e3b"',
    ],
)
def test_generic_non_secrets(text: str) -> None:
    assert SCANNER.scan(text + "\n", "module.py").findings == ()


def test_unquoted_names_count_only_in_config_files() -> None:
    assert SCANNER.scan("password: hunter2secret\n", "config.yaml").rules == ["generic-password"]
    assert SCANNER.scan("password: hunter2secret\n", "module.py").findings == ()


# --------------------------------------------------------------------------- entropy

B64 = string.ascii_letters + string.digits + "+/"


def _random_strings(n: int, length: int, alphabet: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(n)]


@pytest.mark.parametrize("length", [24, 32, 44, 64])
def test_entropy_finds_random_values_next_to_secret_names(length: int) -> None:
    values = _random_strings(200, length, B64, length)
    found = sum(SCANNER.scan(f'hmac_salt = "{v}"\n', "a.py").rules == ["high-entropy-base64"] for v in values)
    assert found >= 0.97 * len(values)


@pytest.mark.parametrize("length", [24, 44])
def test_entropy_finds_random_values_assigned_to_any_name(length: int) -> None:
    values = _random_strings(200, length, B64, length + 1)
    found = sum(bool(SCANNER.scan(f'blob = "{v}"\n', "a.py").findings) for v in values)
    assert found >= 0.85 * len(values)


def test_hex_only_counts_next_to_a_secret_name() -> None:
    digest = "3f2a1c9d8b7e4d2a6f5c0b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c"
    assert SCANNER.scan(f'ARCHIVE_SHA256 = "{digest}"\n', "a.py").findings == ()
    assert SCANNER.scan(f'WEBHOOK_HMAC = "{digest}"\n', "a.py").rules == ["high-entropy-hex"]


@pytest.mark.parametrize(
    "value",
    [
        "PyUnicode_AsUTF8String",
        "CPyList_GetItemInt64",
        "SQL2DBinaryWaveToTextWave",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "d3d3LnB5dGhvbi5vcmc=",  # base64 of readable text
        "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
        "src/lsp_server/routing/sensitivity",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef",
    ],
)
def test_entropy_skips_identifiers_ids_and_hashes(value: str) -> None:
    assert SCANNER.scan(f'name = "{value}"\n', "a.py").findings == ()


def test_entropy_can_be_turned_off() -> None:
    text = 'hmac_salt = "q8Zr2LmX9vTn4KpWc7Jd1Fs5"\n'
    assert SensitivityScanner().scan(text, "a.py").rules == ["high-entropy-base64"]
    assert SensitivityScanner(entropy=False).scan(text, "a.py").findings == ()


# --------------------------------------------------------------------------- PII


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("contact: maria.lopez@gmail.com", "email"),
        ("call +44 20 7946 0321 today", "phone"),
        ("mobile: +14155372219", "phone"),
        ("office (212) 482-7391", "phone"),
        ("tel: 020 7946 0321", "phone"),
        ("card 4532015112830366 on file", "credit-card"),
        ("card 5425-2334-3010-9903", "credit-card"),
        ("amex 3709 960308 24628", "credit-card"),
        ("pay to DE89 3704 0044 0532 0130 00", "iban"),
        ("iban=GB82WEST12345698765432", "iban"),
    ],
)
def test_pii_detected(text: str, rule: str) -> None:
    assert SCANNER.scan(text + "\n").rules == [rule]


@pytest.mark.parametrize(
    "text",
    [
        "see you@example.com or admin@test.com",
        "git@github.com:acme/orders.git",
        "version 10.20.3000 released 2024-01-15",
        "host 192.168.100.200 port 8443",
        "x = 1234567890123456",  # Luhn fails
        "4111 1111 1111 1111 is the classic test card",
        "the fictional 202-555-0143",
        "timestamp +1715644800",
        "a = +4294967296  # 1 << 32",
        "Decimal('+35236450.6')",
        "DE89 3704 0044 0532 0130 01",  # IBAN check digits wrong
        "@dataclasses.dataclass",
        "result = a@b.T",
        '__author__ = "Guido van Rossum <guido@python.org>"',
        "Reply to security@python.org",
    ],
)
def test_pii_non_matches(text: str) -> None:
    assert SCANNER.scan(text + "\n").findings == ()


def test_pii_can_be_turned_off() -> None:
    text = "contact maria.lopez@gmail.com, card 4532015112830366\n"
    assert SensitivityScanner().scan(text).rules == ["credit-card", "email"]
    assert SensitivityScanner(pii=False).scan(text).findings == ()


def test_checksums() -> None:
    assert luhn_valid("4532015112830366") and not luhn_valid("4532015112830367")
    assert card_issuer("378282246310005") == "amex" and card_issuer("9999999999999999") is None
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE8937040044053201300")  # wrong length for DE


def test_find_pii_without_a_precomputed_shape() -> None:
    text = "write to maria.lopez@gmail.com"
    assert [rule for rule, _, _ in find_pii(text, text.lower())] == ["email"]


# --------------------------------------------------------------------------- structure checks


def test_jwt_needs_json_header_and_payload() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(b'{"sub":"42"}').rstrip(b"=").decode()
    assert valid_jwt(f"{header}.{payload}.c2lnbmF0dXJlc2lnbmF0dXJl")
    assert not valid_jwt(f"eyJub3QganNvbg.{payload}.c2lnbmF0dXJlc2lnbmF0dXJl")


def test_private_key_without_end_marker_and_inline_json() -> None:
    body = base64.b64encode(random.Random(5).randbytes(300)).decode()
    truncated = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body[i : i + 64] for i in range(0, 256, 64))
    assert SCANNER.scan(truncated).rules == ["private-key"]
    inline = '{"key": "-----BEGIN PRIVATE KEY-----\\n' + body + '\\n-----END PRIVATE KEY-----\\n"}'
    assert SCANNER.scan(inline).rules == ["private-key"]
    assert SCANNER.scan("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n").findings == ()


def test_specific_rules_win_over_generic_ones() -> None:
    token = "ghp_" + "Zq4mK8pX2v" * 3 + "B6nL9r"
    report = SCANNER.scan(f'GITHUB_TOKEN = "{token}"\n', "ci.py")
    assert [(f.rule, f.family) for f in report.findings] == [("github-pat", "vcs")]


# --------------------------------------------------------------------------- path globs


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("**/.env", ".env", True),
        ("**/.env", "a/b/.env", True),
        ("**/.env", "a/b/.env.local", False),
        ("**/.env*", "a/b/.env.local", True),
        ("**/*.pem", "certs/server.pem", True),
        ("**/*.pem", "server.pem", True),
        ("**/*.pem", "server.pem.txt", False),
        ("*.pem", "deep/down/key.pem", True),
        ("secrets/**", "secrets/db.txt", True),
        ("secrets/**", "secrets/a/b/c.json", True),
        ("secrets/**", "secrets", False),
        ("secrets/**", "app/secrets/db.txt", False),
        ("secrets/", "app/secrets/db.txt", True),
        ("secrets", "app/secrets/db.txt", True),
        ("/config/*.yaml", "config/prod.yaml", True),
        ("/config/*.yaml", "app/config/prod.yaml", False),
        ("config/*.yaml", "config/sub/prod.yaml", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("id_[rde]sa*", "home/.ssh/id_rsa", True),
        ("id_[!r]sa", ".ssh/id_rsa", False),
        ("?.key", "a.key", True),
        ("?.key", "ab.key", False),
        ("*.key", "dir.key/inner.txt", True),  # a matched directory covers its contents
    ],
)
def test_glob_semantics(glob: str, path: str, expected: bool) -> None:
    assert bool(glob_to_regex(glob).match(path)) is expected
    assert (SensitivityScanner([glob]).path_is_sensitive(path) == glob) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/home/ada/orders/secrets/db.txt", "secrets/**"),
        ("/home/ada/orders/.env", "**/.env"),
        ("C:\\Users\\ada\\orders\\certs\\server.pem", "**/*.pem"),
        ("./secrets/db.txt", "secrets/**"),
        ("src/app.py", None),
        ("/home/ada/orders/src/app.py", None),
        ("", None),
    ],
)
def test_absolute_and_windows_paths(path: str, expected: str | None) -> None:
    scanner = SensitivityScanner(["**/.env", "**/*.pem", "secrets/**"])
    assert scanner.path_is_sensitive(path) == expected


def test_negated_globs_reinclude() -> None:
    scanner = SensitivityScanner(["secrets/**", "!secrets/README.md"])
    assert scanner.path_is_sensitive("secrets/db.txt") == "secrets/**"
    assert scanner.path_is_sensitive("secrets/README.md") is None


def test_path_finding_in_report() -> None:
    report = SensitivityScanner(["**/.env"]).scan("LOG_LEVEL=debug\n", "svc/.env")
    assert report.findings == (Finding("path", "path:**/.env", "path", 0, 0),)
    assert report.sensitive and report.summary() == "path:**/.env"


# --------------------------------------------------------------------------- report, redaction


def test_report_api() -> None:
    assert not SensitivityReport().sensitive and SensitivityReport().rules == [] and SensitivityReport().summary() == ""
    text = 'AWS_ACCESS_KEY_ID = "AKIAQ3EGRXQ7MZ4TJ2PW"\nowner: maria.lopez@gmail.com\nbackup: ana.ruiz@gmail.com\n'
    report = SCANNER.scan(text, "x.py")
    assert report.sensitive
    assert report.rules == ["aws-access-key-id", "email"]
    assert report.summary() == "secret:aws-access-key-id, pii:email"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_findings_never_hold_values(name: str) -> None:
    text = _read(SECRETS / name)
    report = SCANNER.scan(text, name)
    assert {f.name for f in fields(Finding)} == {"kind", "rule", "family", "start", "end"}
    dumped = repr(report) + report.summary() + json.dumps(report.rules)
    for entry in MANIFEST[name]:
        assert entry["value"] not in dumped


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_redact_removes_planted_values_and_keeps_the_rest(name: str) -> None:
    text = _read(SECRETS / name)
    report = SCANNER.scan(text, name)
    redacted = redact(text, report)
    for entry in MANIFEST[name]:
        assert entry["value"] not in redacted
    # Outside the findings, the text is untouched: cutting the spans out of the original
    # gives the redacted text with its placeholders cut out.
    spans = sorted((f.start, f.end) for f in report.findings if f.end > f.start)
    kept, pos = [], 0
    for start, end in spans:
        if start >= pos:
            kept.append(text[pos:start])
        pos = max(pos, end)
    kept.append(text[pos:])
    import re

    assert re.sub(r"\[REDACTED:[\w:*./-]+\]", "", redacted) == "".join(kept)


def test_redact_placeholder_fields_and_no_findings() -> None:
    text = 'key = "AKIAQ3EGRXQ7MZ4TJ2PW"'
    report = SCANNER.scan(text)
    assert redact(text, report, "<{kind}:{family}:{rule}>") == 'key = "<secret:cloud:aws-access-key-id>"'
    assert redact(text, SensitivityReport()) == text


# --------------------------------------------------------------------------- robustness, speed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_scan_never_raises_and_offsets_are_in_range(text: str) -> None:
    report = SCANNER.scan(text, "any.py")
    for f in report.findings:
        assert 0 <= f.start <= f.end <= len(text)
    redact(text, report)


TOKENS = [
    "ghp_Zq4mK8pX2vB6nL9rT3wYZq4mK8pX2vB6nL9r",
    "xoxb-123456789012-1234567890123-Zq4mK8pX2vB6nL9rT3wYab12",
    "AKIAQ3EGRXQ7MZ4TJ2PW",
    "sk_live_Zq4mK8pX2vB6nL9rT3wYab12",
    "glpat-Zq4mK8pX2vB6nL9rT3wY",
]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.sampled_from(TOKENS), st.text(max_size=300))
def test_redact_never_leaves_a_detected_secret(prefix: str, token: str, suffix: str) -> None:
    text = f'{prefix}\nvalue = "{token}"\n{suffix}'
    report = SCANNER.scan(text, "x.py")
    assert report.sensitive
    redacted = redact(text, report)
    assert token not in redacted
    for f in report.findings:
        if f.end - f.start >= 12:
            assert text[f.start : f.end] not in redacted or text.count(text[f.start : f.end]) > 1


# Shared with bench/secret_detector.py, which times them against ordinary code of the same size.
PATHOLOGICAL = [
    "a" * 200_000,
    "=" * 200_000,
    "eyJ" * 60_000,
    "ey" * 100_000,
    "EAAC" * 50_000,
    'curl -H "Authorization: ' * 8_000,
    "kind: secret\ndata:\n" * 10_000,
    '"client_secret": "a", "refresh_token": "b",' * 4_000,
    '"private_key": "-----BEGIN x' * 6_000 + "auth_provider_x509_cert_url",
    "-----BEGIN PRIVATE KEY-----" * 7_000,
    "incoming+" * 20_000,
    "login(a, '" * 20_000,
    "-----BEGIN PRIVATE KEY-----\n" + "A" * 200_000,
    "://" + ":" * 100_000 + "@" * 100_000,
    "password=" * 20_000,
    "1" * 200_000,
    "1 " * 100_000,
    "+1 " * 60_000,
    "x@" * 100_000,
    "AA00 " * 40_000,
    '"' + "Ab1+" * 50_000 + '"',
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=lambda t: repr(t[:12]))
def test_pathological_inputs_finish(text: str) -> None:
    # Catastrophic backtracking turns one of these into hours: pytest's timeout is the guard here,
    # and bench/secret_detector.py measures how fast they really go.
    report = SCANNER.scan(text, "x.txt")
    assert all(0 <= f.start < f.end <= len(text) for f in report.findings)
    if text.startswith("-----BEGIN PRIVATE KEY-----\nAAAA"):
        assert "private-key" in report.rules  # a key block stays a key, however long its body
