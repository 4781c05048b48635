"""The breadth added to match the field's maintained rule sets: credentials that their format
gives away (curl, Kubernetes Secrets, Google credential files, NuGet settings, login calls),
more token formats, named services' test-mode keys, and the speed guards that came with them.

Each positive case asserts the rule and that `redact()` removes the value; each negative
case is a near miss that must stay silent."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from lsp_server.sensitivity.concat_view import concat_view
from lsp_server.sensitivity.redaction import redact
from lsp_server.sensitivity.scan_views import json_view
from lsp_server.sensitivity.scanner import SensitivityScanner
from lsp_server.sensitivity.service_secrets import random_value, service_in
from lsp_server.sensitivity.structured_secrets import RULE_IDS, find_structured

SCANNER = SensitivityScanner()
RNG = random.Random(23)
B62 = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = B62) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def assert_found(text: str, value: str, rule: str, path: str | None = None) -> None:
    report = SCANNER.scan(text, path)
    start = text.index(value)
    assert any(f.rule == rule and f.start <= start and f.end >= start + len(value) for f in report.findings), (
        report.findings
    )
    assert value not in redact(text, report)


# --------------------------------------------------------------------------- curl


def test_curl_credentials_on_continuation_lines() -> None:
    key, password = rand(40), "Zq4m-K8pX2v9"
    text = (
        "curl -X POST https://api.acme.internal/v2/replay \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f'  -H "X-Api-Key: {key}" \\\n'
        f"  --user 'deploy:{password}' \\\n"
        "  -d '{}'\n"
    )
    assert_found(text, key, "curl-auth-header", "notes.md")
    assert_found(text, password, "curl-basic-auth", "notes.md")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("-u deploy:{v}", "Tr0ub4dor-3x"),
        ('--user="deploy":"{v}"', "Tr0ub4dor-3x"),
        ("-H 'Authorization: Token {v}'", "dt1Jh4ymMxxGpJF9"),
        ('--header="Authorization: Basic {v}"', base64.b64encode(b"ci:Tr0ub4dor-3x").decode()),
        ("-H 'PRIVATE-TOKEN: {v}'", "qX7v2LpZ9kR4mN8w"),
    ],
)
def test_curl_option_forms(option: str, value: str) -> None:
    text = "curl -sS " + option.format(v=value) + " https://api.acme.internal/\n"
    report = SCANNER.scan(text, "run.sh")
    assert report.sensitive and value not in redact(text, report)


@pytest.mark.parametrize(
    "text",
    [
        "curl -u deploy https://api.acme.internal/\n",  # no password: curl asks for it
        'curl -u "$USER:$PASSWORD" https://api.acme.internal/\n',
        'curl -H "Authorization: Bearer $TOKEN" https://api.acme.internal/\n',
        "curl -H 'Content-Type: application/json' https://api.acme.internal/\n",
        "pycurl -u deploy:Tr0ub4dor-3x\n",  # not curl
    ],
)
def test_curl_near_misses(text: str) -> None:
    assert not [f for f in SCANNER.scan(text, "run.sh").findings if f.rule.startswith("curl")]


# --------------------------------------------------------------------------- Kubernetes


def test_kubernetes_secret_data_and_string_data() -> None:
    token = base64.b64encode(rand(24).encode()).decode()
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n"
        f"  token: {token}\n  user: YWRtaW4=\nstringData:\n  smtp-password: \"Zq4m-K8pX2v9\"\n"
    )
    assert_found(text, token, "kubernetes-secret", "secret.yaml")
    assert_found(text, "Zq4m-K8pX2v9", "kubernetes-secret", "secret.yaml")


def test_other_kinds_and_documents_are_not_secrets() -> None:
    config_map = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  log-level: debug\n  region: eu-west-1\n"
    )
    assert find_structured(config_map, config_map.lower()) == []
    # A Secret and, in the next document of the same file, a ConfigMap's data.
    stream = "kind: Secret\nmetadata:\n  name: empty\n---\n" + config_map
    assert find_structured(stream, stream.lower()) == []
    helm = "kind: Secret\ndata:\n  password: {{ .Values.password | b64enc }}\n"
    assert find_structured(helm, helm.lower()) == []


# --------------------------------------------------------------------------- Google credential files


def test_authorized_user_file() -> None:
    secret, refresh = rand(24), "1//0" + rand(90, B62 + "-_")
    text = json.dumps(
        {
            "client_id": "1-a.apps.googleusercontent.com",
            "client_secret": secret,
            "refresh_token": refresh,
            "type": "authorized_user",
        },
        indent=2,
    )
    assert_found(text, secret, "gcp-user-credentials", "adc.json")
    assert_found(text, refresh, "gcp-user-credentials", "adc.json")
    lone = '{"client_secret": "${CLIENT_SECRET}", "refresh_token": "<token>"}'
    assert find_structured(lone, lone.lower()) == []


def test_service_account_file_cut_short() -> None:
    text = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----MIIEv\\n", "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs"}'
    assert [rule for rule, *_ in find_structured(text, text.lower())] == ["gcp-service-account"]


def test_structured_rule_ids_are_planted_in_the_seeded_corpus() -> None:
    from tests.unit.test_sensitivity import MANIFEST

    planted = {entry["rule"] for entries in MANIFEST.values() for entry in entries}
    assert set(RULE_IDS) <= planted


# --------------------------------------------------------------------------- settings and calls


def test_nuget_and_dotnet_settings() -> None:
    text = '<packageSourceCredentials><acme>\n  <add key="Username" value="ci-restore" />\n  <add key="ClearTextPassword" value="Zq4m-K8pX2v9" />\n</acme></packageSourceCredentials>\n'
    report = SCANNER.scan(text, "NuGet.Config")
    assert [f.rule for f in report.findings] == ["generic-password"]
    assert "Zq4m-K8pX2v9" not in redact(text, report)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('smtp.login("alerts@acme.internal", "Zq4m-K8pX2v9")\n', True),
        ("client.authenticate(user, 'Tr0ub4dor&3x')\n", True),
        ("smtp.login(user, password)\n", False),
        ('ftp.login("anonymous", "")\n', False),
        ('catalogin(name, "Tr0ub4dor&3x")\n', False),
    ],
)
def test_passwords_passed_to_login_calls(text: str, found: bool) -> None:
    assert ("generic-password" in SCANNER.scan(text, "mail.py").rules) is found


# --------------------------------------------------------------------------- token formats


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("hf_" + "".join(RNG.choice(string.ascii_lowercase) for _ in range(34)), "huggingface-token"),
        ("FLWSECK_TEST-" + rand(12, "abcdef0123456789"), "flutterwave-key"),
        ("sha256~" + rand(43, B62 + "-_"), "openshift-token"),
        ("EAAC" + rand(150), "facebook-page-access-token"),
        ("123456789012345|" + rand(30, string.ascii_lowercase + string.digits), "facebook-app-access-token"),
        (rand(11) + "A" * 10 + rand(43), "dropbox-token"),
        (
            f"xoxs-{rand(10, string.digits)}-{rand(12, string.digits)}-{rand(11, string.digits)}-{rand(40, '0123456789abcdef')}",
            "slack-legacy-token",
        ),
        ("ey" + rand(30) + ".ey" + rand(60) + "." + rand(40), "jwt"),
    ],
)
def test_token_formats(token: str, rule: str) -> None:
    assert_found(f'value = "{token}"\n', token, rule, "settings.py")


def test_private_key_blocks_with_unreadable_bodies_but_not_code() -> None:
    body = "".join(RNG.choice(string.printable[:94]) for _ in range(200)).replace("-----", "--")
    mangled = f"-----BEGIN RSA PRIVATE KEY-----{body}-----END RSA PRIVATE KEY-----"
    assert "private-key" in SCANNER.scan(mangled + "\n", "key.txt").rules
    code = (
        'HEADER = "-----BEGIN PRIVATE KEY-----"\n'
        "def parse(text):\n    start = text.index(HEADER) + len(HEADER)\n    end = text.index(FOOTER, start)\n"
        "    return base64.b64decode(text[start:end])\n"
        'FOOTER = "-----END PRIVATE KEY-----"\n'
    )
    assert SCANNER.scan(code, "pem.py").findings == ()


# --------------------------------------------------------------------------- named services


def test_more_service_names_and_short_names_need_a_word_start() -> None:
    assert service_in("OPENWEATHER_API_KEY") == "openweather"
    assert service_in("hunter_key") == "hunter"
    assert service_in("WIZ_CLIENT_SECRET") == "wiz"
    assert service_in("wizard_step") == "wiz"  # a word start is enough for most short names
    assert service_in("false_flag") is None  # `fal` must also end where a word ends
    assert service_in("checkbox_key") is None


def test_a_named_services_test_mode_key_is_a_key() -> None:
    key = "test_" + rand(35, "0123456789abcdef")
    assert_found(f'LOB_API_KEY = "{key}"\n', key, "service-credential", "settings.py")
    assert not random_value("test_value_for_the_form", strict=False)


def test_numeric_id_in_front_gives_way_to_the_lettered_part() -> None:
    token = "5360504:" + "A" + rand(34, string.ascii_lowercase + string.digits + "_-")
    assert_found(f'TELEGRAM_BOT = "{token}"\n', token, "service-credential", "settings.py")


def test_dotted_references_stay_silent_but_dotted_keys_do_not() -> None:
    assert SCANNER.scan("RegOpenKeyEx = win32api.RegOpenKeyEx\n", "compiler.py").findings == ()
    key = rand(32, "0123456789abcdef") + "." + rand(16, string.ascii_lowercase + string.digits)
    assert_found(f'ZAI_ACCOUNT = "{key}"\n', key, "service-credential", "settings.py")


# --------------------------------------------------------------------------- views stay small


def test_prose_split_over_literals_builds_no_concatenation_view() -> None:
    prose = "".join(f"    'line {i} of the help text, wrapped at a space and a newline\\n'\n" for i in range(200))
    assert concat_view("TOPICS = (\n" + prose + ")\n") is None
    assert concat_view('TOKEN = ("ghp_' + rand(10) + '"\n         "' + rand(26) + '")\n') is not None


def test_json_view_reads_only_lines_with_embedded_escapes() -> None:
    password = "Zq4m-K8pX2v9"
    code = (
        "x = 1\n" * 500
        + 'CONFIG = "{\\"user\\": \\"etl\\", \\"password\\": \\"'
        + password
        + '\\"}"\n'
        + 'y = "plain"\n' * 500
    )
    view = json_view(code)
    assert view is not None and password in view.text and "plain" not in view.text
    assert_found(code, password, "generic-password", "etl.py")


def test_service_named_a_line_above_the_secret() -> None:
    value = rand(32)
    assert_found(f"Cloudinary\nAPI secret\n    {value} (rotated in May)\n", value, "service-credential", "notes.md")
    # Neither a service with no kind of secret nor a kind of secret far from the value counts.
    assert SCANNER.scan(f"Cloudinary upload\n\nchecksum\n    {value} (rotated in May)\n", "notes.md").findings == ()
    far = f"Cloudinary secret{' ' * 40}\n{'.' * 40}\n    {value} (rotated in May)\n"
    assert SCANNER.scan(far, "notes.md").findings == ()


def test_non_ascii_text_gives_the_same_findings_at_the_same_offsets() -> None:
    token = "ghp_" + rand(36)
    ascii_text = f'# the client\'s "fast" path\nTOKEN = "{token}"\nDB_PASSWORD = "Pa55-w0rd-x9"\n'
    unicode_text = ascii_text.replace("'", "\u2019").replace('"fast"', "\u201cfast\u201d")
    assert [(f.rule, f.start, f.end) for f in SCANNER.scan(unicode_text, "a.py").findings] == [
        (f.rule, f.start, f.end) for f in SCANNER.scan(ascii_text, "a.py").findings
    ]
    # A password with non-ASCII letters is still redacted whole; an author notice with © is
    # still exempt (PII is read from the text as it is).
    text = 'DB_PASSWORD = "Pässwörd-2024-x"\n# © 2024 Jane Roe <jane.roe@gmail.com>\n'
    report = SCANNER.scan(text, "a.py")
    assert report.rules == ["generic-password"] and "Pässwörd" not in redact(text, report)
