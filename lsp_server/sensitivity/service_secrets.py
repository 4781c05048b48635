"""Breadth beyond the provider rules: credentials of named services, and prefixed tokens.

Two shapes cover most of what the field's rule sets list one rule at a time:

* **a named service's credential**: a random-looking value assigned to a name that mentions
  a service (`ADAFRUIT_IO_KEY = "..."`, `algolia.admin: ...`, `"contentful_token" => ...`).
  The service's name is the anchor; the value must look random (length, entropy, not a
  word, not a placeholder). `SERVICES` is the vocabulary: SaaS, cloud, payment, CI,
  monitoring and AI providers whose keys show up in code.
* **a prefixed token**: most tokens issued since ~2020 are `<prefix>_<random>` or
  `<prefix>-<random>` so that scanners can find them (`AIK_CI_...`, `apify_api_...`,
  `p8e-...`). A short lower- or upper-case prefix followed by a long random body counts
  even with no name next to it, so new providers' formats are caught before anyone
  writes a rule for them.

Both only look at long runs of token characters (as the scoped provider rules do), so they
add little to a scan.
"""

from __future__ import annotations

import itertools
import math
import re

from lsp_server.sensitivity.secret_rules import is_placeholder, shannon_entropy

# Service names as they appear inside variable and key names (lower case; `_` marks where a
# name may be split: `new_relic` matches NEWRELIC, new_relic, NewRelic, new-relic). Short or
# common-word names (`box`, `line`, `segment`) are left out: as substrings of names they would
# anchor far too much; names of five letters or fewer must stand as a word of their own.
SERVICES: frozenset[str] = frozenset(
    """
    adafruit adobe adyen aiven airbrake airship airtable aiven akamai algolia alibaba aliyun
    alicloud amplitude anthropic apify apollo appcenter appdynamics appveyor artifactory asana
    assemblyai atlassian auth0 authress autodesk azure backblaze baidu bamboohr beamer bitbucket
    bitfinex bitly bitmex bittrex binance braintree brevo browser_stack buildkite bugsnag
    bynder cachet calendly chargebee checkmarx checkout circle_ci cisco clearbit clerk clickhouse
    clickup clojars cloudflare cloudinary cloudsmith codacy codeclimate codecov cohere coinbase
    confluence confluent contentful contentstack convertkit coveralls crowdin crowdstrike
    currencyapi customerio databricks datadog deepgram deepl deepseek defined dependabot
    deepsource digital_ocean discord disqus docusign doppler dropbox droneci duffel dynatrace
    easypost elastic elasticsearch elevenlabs etherscan etsy eventbrite expo facebook fastly
    figma finicity finnhub firebase fireworks flickr flutterwave flyio frameio freshbooks
    freshdesk gandi gemini github gitlab gitter go_cardless godaddy grafana groq gumroad harness
    hashicorp heroku honeybadger hubspot hugging_face huawei ibm infracost instagram intercom
    intra42 ionos jenkins jfrog jira jotform kakao klaviyo kraken kubernetes kucoin lago
    launch_darkly linear loggly logz looker lokalise mail_chimp mailerlite mailgun
    mailjet mandrill mapbox mattermost maxmind meraki microsoft mistral mixpanel
    mollie mongodb monday naver netlify new_relic nexmo ngrok notion npm nuget nytimes octopus
    okta onesignal openai openrouter opsgenie optimizely oracle pager_duty paddle pastebin paypal
    paystack pendo perplexity pinecone pinterest pipedrive planet_scale plaid plivo posthog posthog
    postmark postman prefect pubnub pulumi pusher pypi qdrant quay rapidapi razorpay readme
    rebrandly recurly redis replicate rollbar rubygems salesforce saucelabs scaleway scalingo
    segmentio sendbird send_grid sendinblue sentry settlemint shippo shopify sidekiq signalwire
    slack smartsheet snowflake snyk sonar sonarcloud sonarqube sourcegraph sparkpost splunk
    spotify square squarespace stackhawk statuspage strava stripe sumo_logic supabase surge
    telnyx tencent terraform tineye todoist together travis trello tumblr twilio twitch
    twitter typeform uber unkey upstash vercel vonage vultr webex weights wandb wechat woocommerce
    wordpress workato xero yandex youtube zapier zendesk zeplin zoho zoom zuora
    abuseipdb civo configcat cursor databento greptile honeycomb infomaniak jumpcloud kagi
    larksuite lighton miro new_york_times ollama stability upstage virustotal weights_and_biases
    box capella contribsys couchbase crates data_gov endor endor_labs fal gitea glm hunter influx
    instantly linked_in lob message_bird midtrans openweather private_ai pyowm retell sumo
    sonar_login sonar_token telegr wiz z_ai zlm
    """.split()
)
_NAME_SPLIT = "[_. -]?"


def _trie_pattern(names: list[str]) -> str:
    """One regex for many names, with shared prefixes factored out (`a(?:dobe|dyen|...)`):
    at each position `re` then tests one branch per distinct next letter instead of every
    name, ~15x faster than a flat alternation. At a position the longest name matches."""
    trie: dict[str, dict] = {}
    for name in names:
        node = trie
        for atom in name:
            node = node.setdefault(atom, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        # Letters before the optional separator, so that a literal continuation is tried first.
        atoms = sorted((a for a in node if a), key=lambda a: (a == "_", a))
        alternatives = [(_NAME_SPLIT if a == "_" else re.escape(a)) + build(node[a]) for a in atoms]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


_SERVICE_RE = re.compile(_trie_pattern(sorted(SERVICES)))
# Words that name a secret of any kind: a weaker anchor than a service's name, so the value
# must look more random (see `random_value(strict=True)`).
_SECRET_WORD_RE = re.compile(r"secret|passw|token|apikey|accesskey|privatekey|credential|auth|key")

# `name <sep> value`: the separators the field's rules accept between a name and its value,
# then opening quotes. Matched on the reversed text before the value, so that it is anchored
# at the value and costs only its own length.
_REVERSED_ASSIGNMENT = re.compile(r"""[\s'"`=]{0,5}(?:=|>|=:{1,3}|\|\||:|>=|=\?|,)[\s'"`\]]{0,3}""")
_SEGMENT = re.compile(r"[_.:-]")
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_NAME_NOISE = re.compile(r"[\s_.\-]+")
_HEXISH = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_LETTERS = re.compile(r"[A-Za-z]+")
_PIECES = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}(?![a-z])")
_SEPARATED_WORDS = re.compile(r"[A-Za-z]{3,}(?:[_.-][A-Za-z]{2,})+")


def service_in(name: str) -> str | None:
    """The service a name mentions, if any (`NEW_RELIC_KEY` -> "new_relic")."""
    for m in _SERVICE_RE.finditer(name.lower()):
        start, end = m.span()
        if end - start > 5 or (_word_edge(name, start) and (m.group() not in _WORD_PREFIXES or _word_edge(name, end))):
            return _NAME_NOISE.sub("_", m.group())
    return None


# Short service names that begin common words (`export`, `zoomLevel`, `redistribute`): these
# must end where a word ends; other short names may run into the rest of a name (`PLAIDkey`).
_WORD_PREFIXES = frozenset(
    {"expo", "zoom", "deepl", "redis", "surge", "slack", "uber", "lago", "xero", "sonar", "quay", "fal", "endor"}
)


def _word_edge(name: str, i: int) -> bool:
    """Whether a word of `name` starts or ends at `i` (`EXPO_KEY`, `expoKey`, not `export`)."""
    if i <= 0 or i >= len(name):
        return True
    before, after = name[i - 1], name[i]
    return not (before.isalpha() and after.isalpha()) or (before.islower() and after.isupper())


def assignment_anchor(line_before: str) -> tuple[str, bool] | None:
    """What the name on the left of an assignment ending `line_before` names:
    (service, True) for a named service, ("secret", False) for a secret-ish word."""
    tail = line_before[-90:][::-1]
    m = _REVERSED_ASSIGNMENT.match(tail)
    if m is None or m.end() >= len(tail):
        return None
    key = tail[m.end() : m.end() + 64][::-1]
    service = service_in(key)
    if service:
        return service, True
    return ("secret", False) if _SECRET_WORD_RE.search(key.lower()) else None


def service_context(window: str) -> bool:
    """Whether the text before a value names a service and then a kind of secret, also over
    line breaks (`bitly:` `access_token:` on the lines above). Only for values right after
    the secret word (within `_CONTEXT_GAP` characters)."""
    lowered = window.lower()
    word = None
    for word in _SECRET_WORD_RE.finditer(lowered):
        pass
    if word is None or len(lowered) - word.end() > _CONTEXT_GAP:
        return False
    return service_in(window[: word.start()][-_CONTEXT_REACH:]) is not None


_CONTEXT_GAP = 32
_CONTEXT_REACH = 48


def random_value(value: str, strict: bool = False) -> bool:
    """A value that looks generated: long enough, varied, not a word, name or placeholder.

    `strict` is for values whose name only says "key" or "secret": they must be longer and
    mix letters and digits."""
    n = len(value)
    if n < (20 if strict else 16) or n > 4096:
        return False
    if value.startswith(("/", "./", "../", "~/")) or ("/" in value and (_PATHISH.search(value) or "://" in value)):
        return False  # file paths, URLs (a password inside one is the connection-string rule's)
    if _DOTTED_NAME.fullmatch(value):
        parts = value.split(".")
        if any(_name_share(part) >= 0.5 for part in parts) and not any(
            len(p) >= 16 and _HEXISH.fullmatch(p) for p in parts
        ):
            return False  # `module.ClassName`, `win32api.RegOpenKeyEx`: references in code
    entropy = shannon_entropy(value)
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    if strict and not (has_digit and has_alpha and entropy >= 3.7):
        return False
    if not has_alpha:
        # Numeric ids and secrets (client ids, account numbers): long and varied only.
        return value.isdigit() and n >= 16 and entropy >= 2.7 and len(set(value)) >= 7
    if entropy < min(3.3, 0.75 * math.log2(n)) or _SEPARATED_WORDS.fullmatch(value):
        return False
    core = _core(value)
    has_upper = any(c.isupper() for c in core)
    has_lower = any(c.islower() for c in core)
    if not any(c.isdigit() for c in core):
        if not (has_upper and has_lower):
            return False  # one word-ish run of letters
        flips = sum(a.isupper() != b.isupper() for a, b in itertools.pairwise(core))
        if flips < 0.3 * (len(core) - 1):
            return False  # words and CamelCase names flip case far less than random text
    elif has_upper and has_lower:
        if _name_share(core) >= (0.5 if strict else 0.6):
            return False  # `structEndArchive64Locator`, `utf8ToUnicodeString`
    elif sum(a.isdigit() != b.isdigit() for a, b in itertools.pairwise(core)) < 0.12 * (len(core) - 1):
        return False  # `release2024build`
    if not strict:
        # A named service's test-mode key (`test_52f6...`, `live_pub_...`) is still a key.
        value = _MODE_MARKER.sub("", value, count=1)
    return not is_placeholder(value)


_MODE_MARKER = re.compile(r"^(?:test|live|sandbox|prod)_(?:pub_|sk_|pk_)?(?=[A-Za-z0-9]{16})", re.IGNORECASE)


def _core(value: str) -> str:
    """The longest segment of a value, the part its randomness is judged on; a numeric id in
    front (`6804317791134525:Ayog47p-...`) gives way to the longest segment with letters."""
    segments = _SEGMENT.split(value)
    core = max(segments, key=len)
    if core.isdigit():
        lettered = max((s for s in segments if not s.isdigit()), key=len, default="")
        if len(lettered) >= 8:
            return lettered
    return core


def looks_random(core: str) -> bool:
    """A run of base64/alphanumeric characters that reads as generated, not as words.

    Mixed-case text is judged by how much of it is word-like pieces; single-case text with
    digits by how often letters and digits alternate (random lower-case + digits switches
    ~40 % of the time, `build2024linux` far less); letters only by case flips."""
    n = len(core)
    has_digit = any(c.isdigit() for c in core)
    has_upper = any(c.isupper() for c in core)
    has_lower = any(c.islower() for c in core)
    if has_digit + has_upper + has_lower < 2:
        # One case of letters only: random text is far more varied than joined words.
        return not has_digit and n >= 24 and shannon_entropy(core) >= 4.0
    if shannon_entropy(core) < min(3.7, 0.8 * math.log2(n)):
        return False
    if has_upper and has_lower:
        if not has_digit:
            flips = sum(a.isupper() != b.isupper() for a, b in itertools.pairwise(core))
            return flips >= 0.3 * (n - 1) and _words_share(core) < 0.45
        return _words_share(core) < 0.45
    switches = sum(a.isdigit() != b.isdigit() for a, b in itertools.pairwise(core))
    return switches >= 0.18 * (n - 1)


def _name_share(value: str) -> float:
    """Share of `value` made of 3+ letter pieces (`RegOpenKeyEx`, `structEndArchive`).
    Upper-case runs without a vowel (`RWLZK`) are random text, not acronyms of a name."""
    return sum(
        len(p) for p in _PIECES.findall(value) if not (p.isupper() and len(p) > 4 and not _VOWEL.search(p))
    ) / max(1, len(value))


_VOWEL = re.compile(r"[AEIOUY]")


def _words_share(value: str) -> float:
    """Share of `value` made of word-like pieces: 4+ letters of one case (or Capitalised)
    with vowels where words have them. Random text has letter runs too, but rarely
    pronounceable ones (`TICWCP`, `pjgsgjdu`)."""
    return sum(
        len(p) for p in _PIECES.findall(value) if len(p) >= 4 and _VOWEL_SHARE[0] <= _vowels(p) <= _VOWEL_SHARE[1]
    ) / max(1, len(value))


_VOWEL_SHARE = (0.25, 0.65)


def _vowels(piece: str) -> float:
    return sum(c in "aeiouyAEIOUY" for c in piece) / len(piece)


# --------------------------------------------------------------------------- prefixed tokens

# `<prefix><sep><body>`: a 2-24 character prefix of letters and digits (with inner `_`/`-`
# segments such as `AIK_CI_`), one separator, and a random body of 20+ characters.
_PREFIXED = re.compile(
    r"\$?(?P<prefix>[A-Za-z][A-Za-z0-9]{1,11}(?:[_-][A-Za-z0-9]{1,11}){0,2})(?P<sep>[_.-])(?P<body>[A-Za-z0-9+/=_.-]{16,400})"
)
# Prefixes that introduce hashes, checksums or ids rather than credentials.
_NOT_CREDENTIAL_PREFIX = re.compile(
    r"(?i)^(?:sha\d*|md5|crc\d*|blake\d*|xxh\d*|hash|digest|checksum|integrity|uuid|guid|id|ids|"
    r"commit|rev|revision|build|version|v\d*|data|image|img|font|base64|b64|hex|utf\d*|test|tests|mock|"
    r"fake|dummy|sample|example|temp|tmp|cache|session|node|file|path|key|keys|name|type|class|func|var)$"
)


_PATHISH = re.compile(r"/[a-z]{2,}(?:/|$)|/[A-Z][a-z]{2,}")


def prefixed_token(value: str) -> bool:
    """A token with a short vendor prefix and a random body (`abc_live_Zq4mK8...`)."""
    m = _PREFIXED.fullmatch(value)
    if m is None:
        return False
    prefix, body = m.group("prefix"), m.group("body")
    last = re.split(r"[_-]", prefix)[0]
    if _NOT_CREDENTIAL_PREFIX.match(last) or _NOT_CREDENTIAL_PREFIX.match(prefix):
        return False
    # The random part is one long unbroken run: `311-x86_64-linux-gnu` and
    # `LIBRARY_PATH=/tmp/build` are made of short pieces, generated tokens are not.
    core = max(_SEGMENT.split(body), key=len).rstrip("=")
    if len(core) < 16 or (len(core) < 20 and len(body) < 24 and "_" not in prefix and "-" not in prefix):
        return False  # short bodies only after a two-part prefix (`sm_pat_`, `api_live_`)
    if _HEXISH.fullmatch(core):
        return shannon_entropy(core) >= 3.4 and any(c.isalpha() for c in core) and any(c.isdigit() for c in core)
    if not looks_random(core) or ("/" in core and _PATHISH.search(core)):
        return False
    return not is_placeholder(body)
