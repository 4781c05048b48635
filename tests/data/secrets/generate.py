"""Generate the seeded secrets corpus: fake but right-shaped credentials and PII.

Run from anywhere: `python tests/data/secrets/generate.py`. The output (the files in this
folder and `manifest.json`) is committed; the generator is deterministic (fixed seed), so
re-running it must leave `git status` clean.

Every value is random (no real or documented key is used), has the provider's shape, and
where the detector validates a checksum (Luhn, IBAN mod-97, JWT/base64 structure, Discord's
base64 user id) the value is built to pass it. The generator does not import the
detector: it encodes the formats independently, so a detector regression shows up as a
missed value rather than being generated away.

manifest.json: {"seed": ..., "files": {name: [{"rule", "family", "kind", "value"}, ...]}},
where `value` occurs verbatim in the file and is exactly what must be detected/redacted.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SEED = 9010
HERE = Path(__file__).resolve().parent

B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
B64URL = B62 + "-_"
HEX = "0123456789abcdef"
UPPER_ALNUM = string.ascii_uppercase + string.digits
BASE32 = string.ascii_uppercase + "234567"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
# Substrings that make a value look like a placeholder to any sane detector; generated
# values containing one are drawn again.
AVOID = ("test", "example", "fake", "dummy", "sample", "xxxx", "todo", "redact", "placeholder", "your", "***", "...")

rng = random.Random(SEED)


def rand(alphabet: str, n: int) -> str:
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        if not any(word in s.lower() for word in AVOID) and (n < 8 or len(set(s)) > 4):
            return s


def digits(n: int, first: str = "123456789") -> str:
    return rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(n - 1))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def password() -> str:
    """A human-ish strong password: letters, digits and a few URL-safe symbols."""
    return rand(B62, rng.randint(8, 12)) + rng.choice("!*_-.") + digits(rng.randint(2, 4), string.digits)


def luhn_complete(prefix: str, length: int) -> str:
    while True:
        body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:  # these positions are doubled once the check digit is appended
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        number = body + str((10 - total % 10) % 10)
        if len(set(number)) >= 5:
            return number


def iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def pem(label: str, nbytes: int, headers: str = "") -> str:
    body = base64.b64encode(rng.randbytes(nbytes)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n{headers}" + "\n".join(lines) + f"\n-----END {label}-----"


def jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": digits(10), "name": rng.choice(["Ada Byrne", "Imre Kovacs", "Lina Osei"]), "iat": 1700000000 + rng.randint(0, 10**7)}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{rand(B64URL, 43)}"


def discord_token() -> str:
    user_id = digits(18)
    return f"{b64url(user_id.encode())}.{rand(B64URL, 6)}.{rand(B64URL, 38)}"


# --------------------------------------------------------------------------- specs


@dataclass
class Spec:
    rule: str
    family: str
    key: str  # the name the value is assigned to (UPPER_SNAKE; converted per format)
    make: Callable[[], tuple[str, str]]  # -> (text to write, secret value inside it)
    kind: str = "secret"


def same(fn: Callable[[], str]) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        v = fn()
        return v, v

    return make


def wrapped(template: str, fn: Callable[[], str]) -> Callable[[], tuple[str, str]]:
    """The secret embedded in a larger value (a URL, a connection string)."""

    def make() -> tuple[str, str]:
        v = fn()
        return template.format(v), v

    return make


SPECS: list[Spec] = [
    # cloud
    Spec("aws-access-key-id", "cloud", "AWS_ACCESS_KEY_ID", same(lambda: "AKIA" + rand(BASE32, 16))),
    Spec("aws-access-key-id", "cloud", "UPSTREAM_ID", same(lambda: "ASIA" + rand(BASE32, 16))),
    Spec("aws-secret-access-key", "cloud", "AWS_SECRET_ACCESS_KEY", same(lambda: rand(B64, 40))),
    Spec("gcp-api-key", "cloud", "MAPS_BROWSER_KEY", same(lambda: "AIza" + rand(B64URL, 35))),
    Spec("gcp-oauth-client-secret", "cloud", "GOOGLE_OAUTH", same(lambda: "GOCSPX-" + rand(B64URL, 28))),
    Spec("google-oauth-access-token", "cloud", "GOOGLE_SESSION", same(lambda: "ya29." + rand(B64URL, 120))),
    Spec(
        "azure-storage-account-key",
        "cloud",
        "AZURE_STORAGE_CONNECTION",
        wrapped(
            "DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey={};EndpointSuffix=core.windows.net",
            lambda: rand(B64, 86) + "==",
        ),
    ),
    Spec(
        "azure-sas-token",
        "cloud",
        "BLOB_READ_URL",
        wrapped(
            "https://acmeprod.blob.core.windows.net/exports?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2026-03-01T00:00:00Z&sig={}",
            lambda: rand(B62 + "+/", 43) + "%3D",
        ),
    ),
    Spec(
        "azure-ad-client-secret",
        "cloud",
        "AZURE_APP",
        same(lambda: rand(B62, 3) + digits(1) + "Q~" + rand(B62 + "_~.-", 34)),
    ),
    Spec("digitalocean-token", "cloud", "DO_ACCESS", same(lambda: "dop_v1_" + rand(HEX, 64))),
    Spec("heroku-api-key", "cloud", "HEROKU_API_KEY", same(lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)))),
    Spec("heroku-api-key", "cloud", "DEPLOY_AUTH", same(lambda: "HRKU-" + rand(B64URL, 60))),
    Spec("alibaba-access-key-id", "cloud", "ALIYUN_ID", same(lambda: "LTAI" + rand(B62, 20))),
    Spec("alibaba-access-key-secret", "cloud", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", same(lambda: rand(B62, 30))),
    Spec("ibm-cloud-api-key", "cloud", "IBM_CLOUD_API_KEY", same(lambda: rand(B64URL, 44))),
    Spec("cloudflare-api-token", "cloud", "CLOUDFLARE_API_TOKEN", same(lambda: rand(B64URL, 40))),
    Spec("databricks-token", "cloud", "DATABRICKS_HOST_AUTH", same(lambda: "dapi" + rand(HEX, 32))),
    Spec("supabase-token", "cloud", "SUPABASE_ACCESS", same(lambda: "sbp_" + rand(HEX, 40))),
    Spec(
        "firebase-fcm-server-key",
        "cloud",
        "FCM_SERVER",
        same(lambda: "AAAA" + rand(B64URL, 7) + ":APA91b" + rand(B64URL, 134)),
    ),
    # version control
    Spec("github-pat", "vcs", "GH_BOT", same(lambda: "ghp_" + rand(B62, 36))),
    Spec("github-oauth-token", "vcs", "OAUTH_CACHE", same(lambda: "gho_" + rand(B62, 36))),
    Spec("github-app-token", "vcs", "INSTALLATION", same(lambda: "ghs_" + rand(B62, 36))),
    Spec("github-app-token", "vcs", "USER_TO_SERVER", same(lambda: "ghu_" + rand(B62, 36))),
    Spec("github-refresh-token", "vcs", "GH_REFRESH", same(lambda: "ghr_" + rand(B62, 76))),
    Spec(
        "github-fine-grained-pat",
        "vcs",
        "RELEASE_BOT",
        same(lambda: "github_pat_" + rand(B62, 22) + "_" + rand(B62, 59)),
    ),
    Spec("gitlab-pat", "vcs", "GITLAB_TOKEN", same(lambda: "glpat-" + rand(B64URL, 20))),
    Spec("gitlab-deploy-token", "vcs", "REGISTRY_PULL", same(lambda: "gldt-" + rand(B64URL, 20))),
    Spec("gitlab-runner-token", "vcs", "RUNNER_REGISTRATION", same(lambda: "glrt-" + rand(B64URL, 20))),
    Spec("gitlab-token", "vcs", "PIPELINE_TRIGGER", same(lambda: "glptt-" + rand(HEX, 40))),
    Spec("bitbucket-app-password", "vcs", "BB_UPLOAD", same(lambda: "ATBB" + rand(B62, 32))),
    Spec("bitbucket-app-password", "vcs", "BITBUCKET_APP_PASSWORD", same(lambda: rand(string.ascii_letters, 10) + digits(10))),
    # chat
    Spec("slack-bot-token", "chat", "SLACK_BOT", same(lambda: f"xoxb-{digits(12)}-{digits(13)}-{rand(B62, 24)}")),
    Spec("slack-user-token", "chat", "SLACK_USER", same(lambda: f"xoxp-{digits(12)}-{digits(12)}-{digits(13)}-{rand(HEX, 32)}")),
    Spec("slack-app-token", "chat", "SLACK_SOCKET", same(lambda: f"xapp-1-A{rand(UPPER_ALNUM, 10)}-{digits(13)}-{rand(HEX, 64)}")),
    Spec("slack-legacy-token", "chat", "SLACK_LEGACY", same(lambda: f"xoxa-2-{digits(11)}-{rand(B62, 32)}")),
    Spec(
        "slack-webhook",
        "chat",
        "ALERTS_HOOK",
        same(lambda: f"https://hooks.slack.com/services/T{rand(UPPER_ALNUM, 8)}/B{rand(UPPER_ALNUM, 10)}/{rand(B62, 24)}"),
    ),
    Spec("discord-bot-token", "chat", "DISCORD_BOT", same(discord_token)),
    Spec(
        "discord-webhook",
        "chat",
        "DISCORD_HOOK",
        same(lambda: f"https://discord.com/api/webhooks/{digits(19)}/{rand(B64URL, 68)}"),
    ),
    Spec("telegram-bot-token", "chat", "TELEGRAM_BOT", same(lambda: f"{digits(10)}:AA{rand(B64URL, 33)}")),
    Spec(
        "teams-webhook",
        "chat",
        "TEAMS_HOOK",
        same(
            lambda: f"https://acme.webhook.office.com/webhookb2/{uuid.UUID(int=rng.getrandbits(128))}@"
            f"{uuid.UUID(int=rng.getrandbits(128))}/IncomingWebhook/{rand(HEX, 32)}/{uuid.UUID(int=rng.getrandbits(128))}"
        ),
    ),
    # messaging
    Spec("twilio-api-key", "messaging", "SMS_KEY_SID", same(lambda: "SK" + rand(HEX, 32))),
    Spec("twilio-account-sid", "messaging", "TWILIO_ACCOUNT_SID", same(lambda: "AC" + rand(HEX, 32))),
    Spec("twilio-auth-token", "messaging", "TWILIO_AUTH_TOKEN", same(lambda: rand(HEX, 32))),
    Spec("sendgrid-api-key", "messaging", "MAIL_RELAY", same(lambda: f"SG.{rand(B64URL, 22)}.{rand(B64URL, 43)}")),
    Spec("mailgun-api-key", "messaging", "MAILGUN_API_KEY", same(lambda: "key-" + rand(HEX, 32))),
    Spec("mailchimp-api-key", "messaging", "NEWSLETTER", same(lambda: rand(HEX, 32) + "-us" + str(rng.randint(1, 21)))),
    Spec("brevo-api-key", "messaging", "TRANSACTIONAL_MAIL", same(lambda: f"xkeysib-{rand(HEX, 64)}-{rand(B62, 16)}")),
    # payment
    Spec("stripe-secret-key", "payment", "STRIPE_SECRET_KEY", same(lambda: "sk_live_" + rand(B62, 99))),
    Spec("stripe-secret-key", "payment", "BILLING_SANDBOX", same(lambda: "sk_test_" + rand(B62, 24))),
    Spec("stripe-restricted-key", "payment", "BILLING_READONLY", same(lambda: "rk_live_" + rand(B62, 24))),
    Spec("stripe-webhook-secret", "payment", "STRIPE_WEBHOOK", same(lambda: "whsec_" + rand(B62, 32))),
    Spec("square-access-token", "payment", "SQUARE_ACCESS", same(lambda: "sq0atp-" + rand(B64URL, 22))),
    Spec("square-access-token", "payment", "SQUARE_PROD", same(lambda: "EAAA" + rand(B64URL, 60))),
    Spec("square-oauth-secret", "payment", "SQUARE_APP", same(lambda: "sq0csp-" + rand(B64URL, 43))),
    Spec(
        "braintree-access-token",
        "payment",
        "PAYPAL_BRAINTREE",
        same(lambda: f"access_token$production${rand(string.ascii_lowercase + string.digits, 16)}${rand(HEX, 32)}"),
    ),
    Spec("shopify-access-token", "payment", "SHOP_ADMIN", same(lambda: "shpat_" + rand(HEX, 32))),
    Spec("shopify-custom-app-token", "payment", "SHOP_CUSTOM", same(lambda: "shpca_" + rand(HEX, 32))),
    Spec("shopify-private-app-password", "payment", "SHOP_PRIVATE", same(lambda: "shppa_" + rand(HEX, 32))),
    Spec("shopify-shared-secret", "payment", "SHOP_SHARED", same(lambda: "shpss_" + rand(HEX, 32))),
    # AI
    Spec("openai-api-key", "ai", "OPENAI_API_KEY", same(lambda: "sk-proj-" + rand(B64URL, 120))),
    Spec("openai-api-key", "ai", "LLM_FALLBACK", same(lambda: "sk-" + rand(B62, 20) + "T3BlbkFJ" + rand(B62, 20))),
    Spec("anthropic-api-key", "ai", "ANTHROPIC_API_KEY", same(lambda: "sk-ant-api03-" + rand(B64URL, 93) + "AA")),
    Spec("huggingface-token", "ai", "HF_HUB", same(lambda: "hf_" + rand(string.ascii_letters, 34))),
    Spec("replicate-api-token", "ai", "REPLICATE", same(lambda: "r8_" + rand(B62, 37))),
    Spec("groq-api-key", "ai", "GROQ", same(lambda: "gsk_" + rand(B62, 52))),
    # registries
    Spec("npm-token", "registry", "NPM_PUBLISH", same(lambda: "npm_" + rand(B62, 36))),
    Spec("pypi-token", "registry", "TWINE_UPLOAD", same(lambda: "pypi-AgEIcHlwaS5vcmc" + rand(B64URL, 120))),
    Spec("dockerhub-pat", "registry", "DOCKER_PUSH", same(lambda: "dckr_pat_" + rand(B64URL, 27))),
    Spec("rubygems-api-key", "registry", "GEM_PUSH", same(lambda: "rubygems_" + rand(HEX, 48))),
    # observability
    Spec("datadog-api-key", "observability", "DATADOG_API_KEY", same(lambda: rand(HEX, 32))),
    Spec("newrelic-user-api-key", "observability", "NR_USER", same(lambda: "NRAK-" + rand(UPPER_ALNUM, 27))),
    Spec("newrelic-insert-key", "observability", "NR_INSERT", same(lambda: "NRII-" + rand(B64URL, 32))),
    Spec("newrelic-browser-key", "observability", "NR_BROWSER", same(lambda: "NRJS-" + rand(HEX, 19))),
    Spec("newrelic-license-key", "observability", "NR_LICENSE", same(lambda: rand(HEX, 36) + "NRAL")),
    Spec(
        "sentry-dsn-secret",
        "observability",
        "SENTRY_DSN",
        wrapped(f"https://{rand(HEX, 32)}:{{}}@o{digits(6)}.ingest.sentry.io/{digits(7)}", lambda: rand(HEX, 32)),
    ),
    Spec("sentry-auth-token", "observability", "SENTRY_RELEASES", same(lambda: "sntrys_eyJ" + rand(B64URL, 90))),
    Spec("grafana-cloud-token", "observability", "GRAFANA_CLOUD", same(lambda: "glc_" + rand(B62, 80) + "==")),
    Spec(
        "grafana-service-account-token",
        "observability",
        "GRAFANA_SA",
        same(lambda: "glsa_" + rand(B62, 32) + "_" + rand(HEX, 8)),
    ),
    Spec("grafana-api-key", "observability", "GRAFANA_LEGACY", same(lambda: "eyJrIjoi" + rand(B62, 90))),
    # identity, dev tools
    Spec("okta-api-token", "identity", "OKTA_API_TOKEN", same(lambda: "00" + rand(B64URL, 40))),
    Spec("atlassian-api-token", "devtools", "ATLASSIAN_CLOUD", same(lambda: "ATATT3xFfGF0" + rand(B64URL, 170) + "=" + rand(HEX, 8).upper())),
    Spec("atlassian-api-token", "devtools", "JIRA_API_TOKEN", same(lambda: rand(B62, 24))),
    Spec("postman-api-key", "devtools", "POSTMAN", same(lambda: f"PMAK-{rand(HEX, 24)}-{rand(HEX, 34)}")),
    Spec("linear-api-key", "devtools", "LINEAR", same(lambda: "lin_api_" + rand(B62, 40))),
    Spec("notion-token", "devtools", "NOTION_INTEGRATION", same(lambda: "secret_" + rand(B62, 43))),
    Spec("notion-token", "devtools", "NOTION_V2", same(lambda: "ntn_" + digits(11) + rand(B62, 35))),
    Spec("airtable-pat", "devtools", "AIRTABLE", same(lambda: "pat" + rand(B62, 14) + "." + rand(HEX, 64))),
    Spec("asana-pat", "devtools", "ASANA", same(lambda: f"2/{digits(16)}/{digits(16)}:{rand(HEX, 32)}")),
    Spec("dropbox-token", "devtools", "DROPBOX", same(lambda: "sl." + rand(B64URL, 138))),
    Spec(
        "mapbox-secret-token",
        "devtools",
        "MAPBOX_UPLOADS",
        same(lambda: "sk.eyJ1Ijoi" + rand(B64URL, 50) + "." + rand(B64URL, 22)),
    ),
    # infrastructure
    Spec("vault-token", "infra", "VAULT_ROOT", same(lambda: "hvs." + rand(B64URL, 90))),
    Spec("terraform-cloud-token", "infra", "TFE", same(lambda: rand(B62, 14) + ".atlasv1." + rand(B64URL, 67))),
    Spec("pulumi-access-token", "infra", "PULUMI", same(lambda: "pul-" + rand(HEX, 40))),
    Spec("doppler-token", "infra", "DOPPLER", same(lambda: "dp.pt." + rand(B62, 43))),
    Spec("planetscale-token", "infra", "PSCALE", same(lambda: "pscale_tkn_" + rand(B64URL, 43))),
    # jwt
    Spec("jwt", "jwt", "SESSION_JWT", same(jwt)),
    Spec("age-secret-key", "private-key", "SOPS_AGE", same(lambda: "AGE-SECRET-KEY-1" + rand(BECH32, 58))),
    # connection strings
    Spec("connection-string-password", "connection-string", "DATABASE_URL", wrapped("postgresql://app_rw:{}@db-primary.internal:5432/orders", password)),
    Spec("connection-string-password", "connection-string", "MYSQL_DSN", wrapped("mysql://reporting:{}@10.20.3.7:3306/analytics", password)),
    Spec("connection-string-password", "connection-string", "MONGO_URI", wrapped("mongodb+srv://svc-api:{}@cluster0.a1b2c.mongodb.net/prod?retryWrites=true", password)),
    Spec("connection-string-password", "connection-string", "CACHE_URL", wrapped("redis://:{}@cache.internal:6379/0", password)),
    Spec("connection-string-password", "connection-string", "BROKER_URL", wrapped("amqps://worker:{}@mq.internal:5671/vhost", password)),
    Spec("connection-string-password", "connection-string", "MIRROR", wrapped("ftp://mirror:{}@files.internal/pub", password)),
    Spec("connection-string-password", "connection-string", "PROXY", wrapped("http://proxyuser:{}@proxy.corp.internal:3128", password)),
    Spec("connection-string-password", "connection-string", "SMTP_URL", wrapped("smtp://mailer:{}@smtp.internal:587", password)),
    Spec("jdbc-password", "connection-string", "JDBC_URL", wrapped("jdbc:postgresql://db.internal:5432/app?user=app&password={}&ssl=true", password)),
    Spec("odbc-password", "connection-string", "SQLSERVER", wrapped("Server=tcp:sql.internal,1433;Database=ledger;User ID=svc_ledger;Password={};Encrypt=True;", password)),
    # generic assignments
    Spec("generic-password", "generic-assignment", "DB_PASSWORD", same(password)),
    Spec("generic-password", "generic-assignment", "SMTP_PASS", same(password)),
    Spec("generic-secret", "generic-assignment", "CLIENT_SECRET", same(lambda: rand(B62, 32))),
    Spec("generic-secret", "generic-assignment", "DJANGO_SECRET_KEY", same(lambda: rand(B62 + "!@^&*-_=+", 50))),
    Spec("generic-token", "generic-assignment", "AUTH_TOKEN", same(lambda: rand(B62, 40))),
    Spec("generic-api-key", "generic-assignment", "PARTNER_API_KEY", same(lambda: rand(B62, 32))),
    Spec("generic-credential", "generic-assignment", "SERVICE_CREDENTIALS", same(lambda: rand(B62, 28))),
    # entropy (names that are not secret words by themselves)
    Spec("high-entropy-hex", "entropy", "HMAC_SALT", same(lambda: rand(HEX, 64))),
    Spec("high-entropy-base64", "entropy", "SIGNATURE_SEED", same(lambda: rand(B64, 44))),
    # more provider formats (appended, so the specs above keep their files)
    Spec("flutterwave-key", "payment", "FLW_SECRET", same(lambda: "FLWSECK-" + rand("abcdefgh0123456789", 32) + "-X")),
    Spec("easypost-api-key", "payment", "EASYPOST", same(lambda: "EZAK" + rand(B62, 54))),
    Spec(
        "gitlab-incoming-email-token",
        "vcs",
        "ISSUE_REPLY_TO",
        wrapped("incoming+acme-orders-4821-{}-issue@gitlab.acme.internal", lambda: rand(string.ascii_lowercase + string.digits, 25)),
    ),
    Spec("openshift-token", "infra", "OPENSHIFT", same(lambda: "sha256~" + rand(B64URL, 43))),
    Spec("flyio-token", "infra", "FLY_API", same(lambda: "FlyV1 fm2_" + rand(B64, 140) + ",fm2_" + rand(B64, 60))),
    Spec("salesforce-access-token", "devtools", "SF_SESSION", same(lambda: "00D" + rand(B62, 12) + "!" + rand(B62 + "._", 96))),
    Spec("facebook-app-access-token", "devtools", "FB_APP_TOKEN", same(lambda: digits(15) + "|" + rand(B64URL, 27))),
    Spec("facebook-page-access-token", "devtools", "FB_PAGE", same(lambda: "EAAC" + rand(B62, 180))),
    Spec("tableau-personal-access-token", "devtools", "TABLEAU_PAT", same(lambda: rand(B64, 22) + "==:" + rand(B62, 32))),
    Spec(
        "gc-notify-api-key",
        "messaging",
        "NOTIFY_API_KEY",
        wrapped(
            "gcntfy-orders-{}",
            lambda: f"{uuid.UUID(int=rng.getrandbits(128), version=4)}-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        ),
    ),
    Spec("dropbox-token", "devtools", "DROPBOX_OFFLINE", same(lambda: rand(B62, 11) + "AAAAAAAAAA" + rand(B64URL, 43))),
    Spec("slack-legacy-token", "chat", "SLACK_LEGACY_USER", same(lambda: f"xoxs-{digits(10)}-{digits(11)}-{digits(12)}-{rand(HEX, 64)}")),
]

# Files made of KEY=value lines, one format each; every spec lands in two of them.
FORMATS = ["app_settings.py", "client.js", "main.go", "deploy.yaml", "service.toml", "legacy.ini", ".env", "rotate_keys.diff", "credentials.json"]


def camel(key: str) -> str:
    head, *rest = key.lower().split("_")
    return head + "".join(w.capitalize() for w in rest)


def render_line(fmt: str, key: str, text: str) -> str:
    snake = key.lower()
    if fmt == "app_settings.py":
        return f'{key} = "{text}"'
    if fmt == "client.js":
        return f"  {camel(key)}: '{text}',"
    if fmt == "main.go":
        pascal = "".join(w.capitalize() for w in key.lower().split("_"))
        return f'\t{pascal} = "{text}"'
    if fmt == "deploy.yaml":
        needs_quotes = any(c in text for c in ":#{}[],&*!|>'%@`") or text[0] in "-?"
        return f'      {snake}: "{text}"' if needs_quotes else f"      {snake}: {text}"
    if fmt == "service.toml":
        return f'{snake} = "{text}"'
    if fmt == "legacy.ini":
        return f"{snake} = {text}"
    if fmt == ".env":
        return f"{key}={text}" if rng.random() < 0.6 else f'export {key}="{text}"'
    if fmt == "rotate_keys.diff":
        return f'+    {snake} = "{text}"'
    if fmt == "credentials.json":
        return f'    "{camel(key)}": "{text}",'
    raise ValueError(fmt)


HEADERS = {
    "app_settings.py": '"""Deployment settings for the orders service."""\n\nimport os\n\nDEBUG = False\nALLOWED_HOSTS = ["orders.internal", "localhost"]\nTIMEOUT_SECONDS = 30\nDB_PASSWORD_FILE = "/run/secrets/db_password"\nFALLBACK_PASSWORD = os.environ.get("FALLBACK_PASSWORD")\n\n',
    "client.js": "// API client configuration (generated by the deploy pipeline)\nconst retries = 3;\nconst baseUrl = 'https://api.acme.internal/v2';\n\nexport const config = {\n  retries,\n  baseUrl,\n  token: process.env.API_TOKEN,\n",
    "main.go": 'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n\n// Build-time settings; overridden by the environment in production.\nvar (\n\tListenAddr = ":8443"\n\tPassword   = os.Getenv("APP_PASSWORD")\n',
    "deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: orders\nspec:\n  replicas: 3\n  template:\n    spec:\n      secretName: orders-credentials\n      image: registry.internal/orders:1.14.2\n      env:\n      password: ${DB_PASSWORD}\n",
    "service.toml": '[service]\nname = "orders"\nversion = "1.14.2"\nport = 8443\n\n[credentials]\ntoken = "${SERVICE_TOKEN}"\n',
    "legacy.ini": "; legacy billing bridge\n[bridge]\nhost = billing.internal\nport = 9000\nretries = 5\npassword = changeme\n\n[keys]\n",
    ".env": "# local overrides for docker compose\nCOMPOSE_PROJECT_NAME=orders\nLOG_LEVEL=debug\nAPI_TOKEN=\nSECRET_KEY=<your-secret-key>\n",
    "rotate_keys.diff": 'diff --git a/config/prod.py b/config/prod.py\nindex 3f2a1c9..8b7e4d2 100644\n--- a/config/prod.py\n+++ b/config/prod.py\n@@ -1,40 +1,80 @@\n # production configuration\n-    api_token = os.environ["API_TOKEN"]\n-    password = "********"\n',
    "credentials.json": '{\n  "_comment": "exported by the secrets manager",\n  "version": 3,\n  "password": null,\n  "apiKey": "${API_KEY}",\n',
}
FOOTERS = {
    "app_settings.py": '\n\ndef database_url() -> str:\n    return f"postgresql://{USER}:{PASSWORD}@{HOST}/orders"\n',
    "client.js": "};\n",
    "main.go": ')\n\nfunc main() {\n\tfmt.Println("listening on", ListenAddr, len(os.Args))\n}\n',
    "deploy.yaml": "      restartPolicy: Always\n",
    "service.toml": "",
    "legacy.ini": "",
    ".env": "",
    "rotate_keys.diff": " # end of production configuration\n",
    "credentials.json": '  "expires": "2026-01-01T00:00:00Z"\n}\n',
}
SECTION = {"service.toml": "\n[secrets]\n", "deploy.yaml": "", "legacy.ini": ""}


def build_key_value_files(manifest: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    lines: dict[str, list[str]] = {fmt: [] for fmt in FORMATS}
    for index, spec in enumerate(SPECS):
        first = FORMATS[index % len(FORMATS)]
        second = FORMATS[(index * 7 + 3) % len(FORMATS)]
        for fmt in dict.fromkeys([first, second]):
            text, secret = spec.make()
            lines[fmt].append(render_line(fmt, spec.key, text))
            manifest[fmt].append({"rule": spec.rule, "family": spec.family, "kind": spec.kind, "value": secret})
    out = {}
    for fmt in FORMATS:
        body = "\n".join(lines[fmt])
        if fmt == "credentials.json":
            body = body.rstrip(",")
            out[fmt] = HEADERS[fmt] + '  "secrets": {\n' + body + "\n  },\n" + FOOTERS[fmt]
        elif fmt == "rotate_keys.diff":
            count = len(lines[fmt])
            out[fmt] = HEADERS[fmt].replace("+1,80", f"+1,{count + 1}") + body + "\n" + FOOTERS[fmt]
        else:
            out[fmt] = HEADERS[fmt] + SECTION.get(fmt, "") + body + "\n" + FOOTERS[fmt]
    return out


def build_special_files(manifest: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    out: dict[str, str] = {}

    def plant(name: str, rule: str, family: str, value: str, kind: str = "secret") -> str:
        manifest.setdefault(name, []).append({"rule": rule, "family": family, "kind": kind, "value": value})
        return value

    # Private keys, each in its own armour.
    keys = []
    for label, nbytes, headers in [
        ("RSA PRIVATE KEY", 1190, ""),
        ("EC PRIVATE KEY", 121, ""),
        ("PRIVATE KEY", 1218, ""),
        ("OPENSSH PRIVATE KEY", 400, ""),
        ("ENCRYPTED PRIVATE KEY", 1250, ""),
        ("DSA PRIVATE KEY", 440, ""),
        ("RSA PRIVATE KEY", 1190, "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,{}\n\n"),
    ]:
        block = pem(label, nbytes, headers.format(rand(HEX, 32).upper()) if headers else "")
        keys.append(plant("deploy_keys.pem", "private-key", "private-key", block))
    out["deploy_keys.pem"] = "# keys for the staging bastion (rotated quarterly)\n\n" + "\n\n".join(keys) + "\n"

    pgp_body = base64.b64encode(rng.randbytes(900)).decode()
    pgp = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
        + "\n".join(pgp_body[i : i + 64] for i in range(0, len(pgp_body), 64))
        + f"\n={rand(B64, 4)}\n-----END PGP PRIVATE KEY BLOCK-----"
    )
    out["release-signing.asc"] = plant("release-signing.asc", "private-key", "private-key", pgp) + "\n"

    public = base64.b64encode(rng.randbytes(270)).decode()
    private = base64.b64encode(rng.randbytes(640)).decode()
    pub_lines = [public[i : i + 64] for i in range(0, len(public), 64)]
    priv_lines = [private[i : i + 64] for i in range(0, len(private), 64)]
    ppk = (
        "PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\nComment: deploy@bastion\n"
        f"Public-Lines: {len(pub_lines)}\n" + "\n".join(pub_lines) + "\n"
        f"Private-Lines: {len(priv_lines)}\n" + "\n".join(priv_lines) + "\n"
        f"Private-MAC: {rand(HEX, 64)}"
    )
    out["bastion.ppk"] = plant("bastion.ppk", "putty-private-key", "private-key", ppk) + "\n"

    sa_key = pem("PRIVATE KEY", 1218).replace("\n", "\\n")
    key_id = rand(HEX, 40)
    sa = {
        "type": "service_account",
        "project_id": "acme-orders-prod",
        "private_key_id": key_id,
        "private_key": "@@KEY@@",
        "client_email": "orders-api@acme-orders-prod.iam.gserviceaccount.com",
        "client_id": digits(21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    sa_text = json.dumps(sa, indent=2).replace('"@@KEY@@"', '"' + sa_key + '\\n"')
    plant("gcp-service-account.json", "gcp-service-account", "cloud", sa_key)
    plant("gcp-service-account.json", "gcp-service-account-key-id", "cloud", key_id)
    plant("gcp-service-account.json", "email", "pii", sa["client_email"], "pii")
    out["gcp-service-account.json"] = sa_text + "\n"

    # HTTP credentials and shell history, as pasted into a support ticket.
    name = "support_notes.md"
    bearer = rand(B62 + "-._~", 48)
    basic_pw = password()
    basic = base64.b64encode(f"deploy:{basic_pw}".encode()).decode()
    curl_pw = password()
    netrc_pw = password()
    email1, email2 = "m.okafor@acme-logistics.co.uk", "jun.tanaka+billing@kagami.jp"
    out[name] = (
        "# Incident 4471: webhook deliveries failing\n\n"
        f"Reported by {plant(name, 'email', 'pii', email1, 'pii')} (cc {plant(name, 'email', 'pii', email2, 'pii')}).\n"
        "Do not reply to noreply@acme-logistics.co.uk; docs use admin@example.com.\n\n"
        "Reproduced with:\n\n```\n"
        f"curl -H 'Authorization: Bearer {plant(name, 'http-bearer-token', 'http-auth', bearer)}' https://api.acme.internal/v2/hooks\n"
        f"curl -u deploy:{plant(name, 'curl-basic-auth', 'http-auth', curl_pw)} https://artifacts.acme.internal/upload\n"
        "```\n\nThe proxy logged:\n\n```\nGET /v2/hooks HTTP/1.1\nHost: api.acme.internal\n"
        f"Authorization: Basic {plant(name, 'http-basic-auth', 'http-auth', basic)}\n```\n\n"
        "~/.netrc on the runner:\n\n```\n"
        f"machine artifacts.acme.internal login deploy password {plant(name, 'netrc-password', 'http-auth', netrc_pw)}\n"
        "```\n\nVersion 3.12.1 released 2024-05-14; affected hosts 10.0.12.7 and 192.168.40.12.\n"
    )

    docker_auth = base64.b64encode(f"ci-bot:{password()}".encode()).decode()
    out["docker-config.json"] = (
        '{\n  "auths": {\n    "registry.acme.internal": {\n'
        f'      "auth": "{plant("docker-config.json", "docker-config-auth", "http-auth", docker_auth)}"\n'
        '    },\n    "https://index.docker.io/v1/": {}\n  },\n  "credsStore": "desktop"\n}\n'
    )

    xml_pw = password()
    out["settings.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<settings>\n  <servers>\n    <server>\n'
        "      <id>internal-releases</id>\n      <username>ci-deployer</username>\n"
        f"      <password>{plant('settings.xml', 'generic-password', 'generic-assignment', xml_pw)}</password>\n"
        "    </server>\n    <server>\n      <id>mirror</id>\n      <password>${env.MIRROR_PASSWORD}</password>\n"
        "    </server>\n  </servers>\n</settings>\n"
    )

    # PII in a CSV export and a Python fixture.
    name = "customers.csv"
    rows = ["id,name,email,phone,card,iban,signup_date"]
    people = [("Ada Byrne", "ada.byrne@fastmail.fm"), ("Imre Kovács", "imre.kovacs@freemail.hu"), ("Lina Osei", "lina.osei@proton.me"), ("Tomás Ruiz", "t.ruiz@correo.es")]
    phones = [
        f"+44 20 7946 {digits(4, string.digits)}",
        f"+1 ({digits(3, '23456789')}) {digits(3, '23456789')}-{digits(4, string.digits)}",
        f"+49 30 {digits(7)}",
        f"+33 6 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
    ]
    cards = [
        luhn_complete("4", 16),
        luhn_complete("5" + rng.choice("12345"), 16),
        luhn_complete("3" + rng.choice("47"), 15),
        luhn_complete("6011", 16),
    ]
    card_text = [
        " ".join(cards[0][i : i + 4] for i in range(0, 16, 4)),
        "-".join(cards[1][i : i + 4] for i in range(0, 16, 4)),
        f"{cards[2][:4]} {cards[2][4:10]} {cards[2][10:]}",
        cards[3],
    ]
    ibans = [
        iban("DE", digits(18, string.digits)),
        iban("GB", "NWBK" + digits(14, string.digits)),
        iban("FR", digits(10, string.digits) + rand(UPPER_ALNUM, 11) + digits(2, string.digits)),
        iban("NL", "ABNA" + digits(10, string.digits)),
    ]
    iban_text = [" ".join(ibans[0][i : i + 4] for i in range(0, len(ibans[0]), 4)), ibans[1], " ".join(ibans[2][i : i + 4] for i in range(0, len(ibans[2]), 4)), ibans[3]]
    for i, (person, mail) in enumerate(people):
        plant(name, "email", "pii", mail, "pii")
        plant(name, "phone", "pii", phones[i], "pii")
        plant(name, "credit-card", "pii", card_text[i], "pii")
        plant(name, "iban", "pii", iban_text[i], "pii")
        rows.append(f'{1000 + i},{person},{mail},"{phones[i]}",{card_text[i]},{iban_text[i]},2024-0{i + 1}-1{i}')
    out[name] = "\n".join(rows) + "\n"

    name = "billing_fixture.py"
    nanp = f"{digits(3, '23456789')}-{digits(3, '23456789')}-{digits(4, string.digits)}"
    nanp_dots = f"{digits(3, '23456789')}.{digits(3, '23456789')}.{digits(4, string.digits)}"
    national = f"0{digits(2)} {digits(4, string.digits)} {digits(4, string.digits)}"
    visa19 = luhn_complete("4", 19)
    out[name] = (
        '"""Billing fixtures copied from a production export (do not do this)."""\n\n'
        "CUSTOMER = {\n"
        '    "name": "Rosa Delgado",\n'
        f'    "email": "{plant(name, "email", "pii", "rosa.delgado@outlook.com", "pii")}",\n'
        f'    "phone": "{plant(name, "phone", "pii", nanp, "pii")}",\n'
        f'    "fax": "{plant(name, "phone", "pii", nanp_dots, "pii")}",\n'
        f'    "home_tel": "{plant(name, "phone", "pii", national, "pii")}",\n'
        f'    "card": "{plant(name, "credit-card", "pii", visa19, "pii")}",\n'
        f'    "iban": "{plant(name, "iban", "pii", iban("ES", digits(20, string.digits)), "pii")}",\n'
        '    "placeholder_card": "4111 1111 1111 1111",\n'
        '    "fictional_phone": "202-555-0143",\n'
        '    "version": "2.4.11",\n'
        "}\n"
    )
    return out


# --------------------------------------------------------------------------- hard forms
# The forms a scanner misses when it reads the text only as written: a private key on the
# removed lines of a diff, a notebook cell as escaped JSON strings, long base64 values
# (kubeconfig `client-key-data`, a base64 service-account file), session tokens past the
# usual length caps, URL passwords holding `/` and `@`, passphrases with spaces, secrets
# split by string concatenation or URL-encoding, and a key pair passed in one call. Each
# file form gets every form that can occur in it.

HARD_FORMATS = {
    "hard_forms.py": "code", "hard_forms.js": "code", "hard_forms.go": "code",
    "hard_forms.yaml": "config", "hard_forms.toml": "config", "hard_forms.ini": "config",
    ".env.production": "env", "hard_forms.diff": "diff", "hard_forms.json": "json",
    "analysis.ipynb": "notebook",
}


def pem_text(label: str = "RSA PRIVATE KEY", nbytes: int = 1190) -> str:
    return pem(label, nbytes) + "\n"


def service_account_json() -> str:
    sa = {
        "type": "service_account",
        "project_id": "acme-reports",
        "private_key_id": rand(HEX, 40),
        "private_key": pem_text("PRIVATE KEY", 1218),
        "client_email": "reports@acme-reports.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return json.dumps(sa, indent=2)


def tricky_password() -> str:
    """A password that holds `/` and `@`, as people type them into URLs unencoded."""
    return rand(B62, 6) + "/" + rand(B62, 4) + "@" + rand(B62, 5) + digits(2, string.digits)


def passphrase() -> str:
    words = ["harbour", "violet", "quartz", "ember", "lantern", "maple", "orbit", "saffron", "tundra", "willow", "cobalt", "falcon"]
    return " ".join(rng.sample(words, 4)) + " " + digits(2, string.digits)


def split_token() -> tuple[str, str]:
    token = "ghp_" + rand(B62, 36)
    cut = rng.randint(8, 30)
    return token[:cut], token[cut:]


def assignment(kind: str, name: str, fmt: str, value: str, quote: bool = True) -> str:
    """`name = value` in the file form's own syntax."""
    key = name.lower()
    if fmt == "hard_forms.py":
        return f'{name} = "{value}"'
    if fmt == "hard_forms.js":
        return f"  {camel(name)}: '{value}',"
    if fmt == "hard_forms.go":
        return f'\t{"".join(w.capitalize() for w in key.split("_"))} = "{value}"'
    if fmt == "hard_forms.yaml":
        return f'  {key}: "{value}"'
    if fmt == "hard_forms.toml":
        return f'{key} = "{value}"'
    if fmt == "hard_forms.ini":
        return f'{key} = "{value}"' if quote else f"{key} = {value}"
    if fmt == ".env.production":
        return f'{name}="{value}"'
    if fmt == "hard_forms.diff":
        return f'+    {key} = "{value}"'
    if fmt == "hard_forms.json":
        return f'  "{camel(name)}": "{value}",'
    raise ValueError(fmt)


def build_hard_forms(manifest: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    cells: list[str] = []  # the notebook's code cells, as plain Python

    def plant(name: str, rule: str, family: str, value: str, kind: str = "secret") -> str:
        manifest.setdefault(name, []).append({"rule": rule, "family": family, "kind": kind, "value": value})
        return value

    for fmt, form in HARD_FORMATS.items():
        if fmt == "analysis.ipynb":
            continue
        lines: list[str] = []

        def line(name: str, value: str, rule: str, family: str, planted: str | None = None) -> None:
            lines.append(assignment(form, name, fmt, value))
            plant(fmt, rule, family, planted if planted is not None else value)

        pw = tricky_password()
        line("REPORTING_DB_URL", f"postgresql://reporter:{pw}@db-replica.internal:5432/reports", "connection-string-password", "connection-string", pw)
        line("BACKUP_PASSPHRASE", passphrase(), "generic-password", "generic-assignment")
        token = "ghp_" + rand(B62, 36)
        encoded = token.replace("_", "%5F")
        line("STATUS_HOOK_URL", f"https://status.acme.internal/v1/hook?access_token={encoded}&format=json", "github-pat", "vcs", encoded)
        key_data = base64.b64encode(pem_text("EC PRIVATE KEY", 121).encode()).decode()
        line("CLIENT_KEY_DATA", key_data, "private-key", "private-key")
        sa_b64 = base64.b64encode(service_account_json().encode()).decode()
        line("GOOGLE_CREDENTIALS_B64", sa_b64, "gcp-service-account", "cloud")
        line("SESSION_TOKEN", rand(B64URL, 700), "generic-token", "generic-assignment")
        key_id, secret = "AKIA" + rand(BASE32, 16), rand(B64, 40)
        if form == "code":
            call = {"hard_forms.py": f's3 = boto3.client("s3", "{key_id}", "{secret}")',
                    "hard_forms.js": f"  s3: new S3Client('{key_id}', '{secret}'),",
                    "hard_forms.go": f'\tS3 = NewStaticCredentials("{key_id}", "{secret}", "")'}[fmt]
            lines.append(call)
            head, tail = split_token()
            concat = {"hard_forms.py": f'GITHUB_BOT = ("{head}"\n              "{tail}")',
                      "hard_forms.js": f"  githubBot: '{head}' + '{tail}',",
                      "hard_forms.go": f'\tGithubBot = "{head}" + "{tail}"'}[fmt]
            lines.append(concat)
            plant(fmt, "github-pat", "vcs", concat[concat.index(head) : concat.index(tail) + len(tail)])
        elif form == "json":
            lines.append(f'  "s3Credentials": ["{key_id}", "{secret}"],')
            inner = rand(B62, 10) + "!" + digits(3, string.digits)
            lines.append('  "legacyConfig": "{\\"user\\": \\"etl\\", \\"password\\": \\"' + inner + '\\"}",')
            plant(fmt, "generic-password", "generic-assignment", inner)
        elif form == "diff":
            lines.append(f'+    s3 = boto3.client("s3", "{key_id}", "{secret}")')
            head, tail = split_token()
            lines.append(f'+    github_bot = "{head}" + "{tail}"')
            plant(fmt, "github-pat", "vcs", f'{head}" + "{tail}')
        else:
            lines.append(assignment(form, "S3_CREDENTIALS", fmt, f"{key_id}:{secret}").replace(f"{key_id}:{secret}", f"{key_id} {secret}"))
        plant(fmt, "aws-access-key-id", "cloud", key_id)
        plant(fmt, "aws-secret-access-key", "cloud", secret)
        out[fmt] = render_hard_file(fmt, lines, plant)

    # The notebook: code cells whose sources are JSON arrays of escaped lines.
    key = pem_text("RSA PRIVATE KEY", 1190)
    plant("analysis.ipynb", "private-key", "private-key", key.rstrip("\n").split("\n")[3])
    head, tail = split_token()
    pw = tricky_password()
    cells.append('import boto3\n\nSIGNING_KEY = """' + key + '"""\n')
    cells.append(f'GITHUB_BOT = "{head}" + "{tail}"\nDB = "mysql://etl:{pw}@10.1.4.7:3306/warehouse"\n')
    # In the notebook's JSON the quotes around the pieces are escaped.
    plant("analysis.ipynb", "github-pat", "vcs", head + '\\" + \\"' + tail)
    plant("analysis.ipynb", "connection-string-password", "connection-string", pw)
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": i + 1,
                "metadata": {},
                "outputs": [],
                "source": [ln + "\n" for ln in cell.rstrip("\n").split("\n")],
            }
            for i, cell in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    out["analysis.ipynb"] = json.dumps(notebook, indent=1) + "\n"
    return out


def render_hard_file(fmt: str, lines: list[str], plant: Callable[..., str]) -> str:
    body = "\n".join(lines)
    if fmt == "hard_forms.py":
        return '"""Reporting settings (exported from the vault by mistake)."""\n\nimport boto3\n\n' + body + "\n"
    if fmt == "hard_forms.js":
        return "export const reporting = {\n" + body + "\n};\n"
    if fmt == "hard_forms.go":
        return "package reporting\n\nvar (\n" + body + "\n)\n"
    if fmt == "hard_forms.yaml":
        return "reporting:\n" + body + "\n"
    if fmt in ("hard_forms.toml", "hard_forms.ini"):
        return "[reporting]\n" + body + "\n"
    if fmt == ".env.production":
        return "# production overrides\n" + body + "\n"
    if fmt == "hard_forms.json":
        return "{\n" + body.rstrip(",") + "\n}\n"
    if fmt == "hard_forms.diff":
        # A key file deleted (its lines removed: `-MIIE...`), and a settings file gaining lines.
        key = pem_text("RSA PRIVATE KEY", 1190).rstrip("\n").split("\n")
        plant(fmt, "private-key", "private-key", "\n-".join(key[2:5]))
        removed = "".join(f"-{ln}\n" for ln in key)
        return (
            "diff --git a/deploy/signing.pem b/deploy/signing.pem\ndeleted file mode 100644\n"
            "index 5c1f2e3..0000000\n--- a/deploy/signing.pem\n+++ /dev/null\n"
            f"@@ -1,{len(key)} +0,0 @@\n{removed}"
            "diff --git a/config/reporting.py b/config/reporting.py\nindex 1a2b3c4..5d6e7f8 100644\n"
            "--- a/config/reporting.py\n+++ b/config/reporting.py\n"
            f"@@ -1,2 +1,{len(lines) + 2} @@\n # reporting settings\n REPORTS = True\n{body}\n"
        )
    raise ValueError(fmt)


# --------------------------------------------------------------------------- structured forms
# Credentials that their format gives away whatever they look like: a Kubernetes Secret's
# data, a NuGet source password, gcloud's authorized-user file, curl options on the
# continuation lines of a command. Built last, so the values above keep their draws.


def build_structured_files(files: dict[str, str], manifest: dict[str, list[dict[str, str]]]) -> None:
    def plant(name: str, rule: str, family: str, value: str) -> str:
        manifest.setdefault(name, []).append({"rule": rule, "family": family, "kind": "secret", "value": value})
        return value

    name = "deploy.yaml"
    db_password = base64.b64encode(password().encode()).decode()
    signing_key = base64.b64encode(rng.randbytes(32)).decode()
    files[name] += (
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: orders-credentials\ntype: Opaque\ndata:\n"
        f"  db-password: {plant(name, 'kubernetes-secret', 'cloud', db_password)}\n"
        f"  signing-key: {plant(name, 'kubernetes-secret', 'cloud', signing_key)}\n"
        f"stringData:\n  smtp-password: \"{plant(name, 'kubernetes-secret', 'cloud', password())}\"\n"
    )

    name = "NuGet.Config"
    files[name] = (
        '<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n  <packageSources>\n'
        '    <add key="acme" value="https://nuget.acme.internal/v3/index.json" />\n  </packageSources>\n'
        "  <packageSourceCredentials>\n    <acme>\n"
        '      <add key="Username" value="ci-restore" />\n'
        f'      <add key="ClearTextPassword" value="{plant(name, "generic-password", "generic-assignment", password())}" />\n'
        "    </acme>\n  </packageSourceCredentials>\n</configuration>\n"
    )

    name = "application_default_credentials.json"
    adc = {
        "account": "",
        "client_id": f"{digits(12)}-{rand(string.ascii_lowercase + string.digits, 32)}.apps.googleusercontent.com",
        "client_secret": plant(name, "gcp-user-credentials", "cloud", rand(B64URL, 24)),
        "quota_project_id": "acme-orders-prod",
        "refresh_token": plant(name, "gcp-user-credentials", "cloud", "1//0" + rand(B64URL, 99)),
        "type": "authorized_user",
        "universe_domain": "googleapis.com",
    }
    files[name] = json.dumps(adc, indent=2) + "\n"

    name = "support_notes.md"
    api_key = rand(B62, 40)
    upload_password = password()
    files[name] += (
        "\nReplaying the failed deliveries:\n\n```\n"
        "curl -X POST https://api.acme.internal/v2/hooks/replay \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f'  -H "X-Api-Key: {plant(name, "curl-auth-header", "http-auth", api_key)}" \\\n'
        f'  --user "deploy:{plant(name, "curl-basic-auth", "http-auth", upload_password)}" \\\n'
        "  -d '{\"id\": 4471}'\n```\n"
    )


def main() -> None:
    manifest: dict[str, list[dict[str, str]]] = {fmt: [] for fmt in FORMATS}
    files = build_key_value_files(manifest)
    files.update(build_special_files(manifest))
    files.update(build_hard_forms(manifest))
    build_structured_files(files, manifest)
    for name, text in files.items():
        for entry in manifest[name]:
            assert entry["value"] in text, (name, entry)
        HERE.mkdir(parents=True, exist_ok=True)
        (HERE / name).write_text(text, encoding="utf-8")
    ordered = {name: manifest[name] for name in sorted(manifest)}
    (HERE / "manifest.json").write_text(json.dumps({"seed": SEED, "files": ordered}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(files)} files, {sum(len(v) for v in manifest.values())} planted values")


if __name__ == "__main__":
    main()
