"""An API key travels only over https, or over plain http to this machine's loopback.

Real HTTP servers: the loopback provider bound to loopback addresses, and the same server
bound to an address of this machine that is not loopback (or reached under the machine's
host name), so that a key sent where it must not go would really arrive and be recorded.
"""

from __future__ import annotations

import httpx
import pytest

from lsp_server.backends.anthropic import AnthropicBackend
from lsp_server.backends.base import ChatMessage, ChatRequest, ProviderError
from lsp_server.backends.http.errors import key_would_travel_in_clear
from lsp_server.backends.http.retry import NO_RETRY
from lsp_server.backends.openai import OpenAICompatBackend
from tests.addresses import non_loopback_ipv4, own_hostname
from tests.loopback_provider import LoopbackProvider

KEY_ENV = "NINETYTEN_TEST_TRANSPORT_KEY"
KEY = "sk-transport-test-5b1e9d0c77aa"
PROTOCOLS = ["openai", "anthropic"]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


def backend(protocol: str, base: str, *, key: bool = True) -> OpenAICompatBackend | AnthropicBackend:
    env = KEY_ENV if key else None
    if protocol == "openai":
        return OpenAICompatBackend(f"{base}/v1", "m", api_key_env=env, retry=NO_RETRY, timeout_s=5.0)
    return AnthropicBackend(base, "m", api_key_env=env, retry=NO_RETRY, timeout_s=5.0)


def request() -> ChatRequest:
    return ChatRequest([ChatMessage("user", "explain this")], max_tokens=8)


def key_seen(provider: LoopbackProvider) -> bool:
    return any(KEY.encode() in r.raw or KEY in str(r.headers) for r in provider.requests)


# -- where the key may go ------------------------------------------------------------


@pytest.mark.parametrize(
    "url, clear",
    [
        ("https://api.anthropic.com", False),
        ("https://192.0.2.2:8443/v1", False),
        ("http://127.0.0.1:8000/v1", False),
        ("http://127.0.0.2:8000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000/v1", False),
        ("http://192.0.2.2:8000/v1", True),
        ("http://inference.internal:8000/v1", True),
        ("http://vm:8000", True),
        ("http://localhost.example.com", True),
        ("http://0.0.0.0:8000", True),
        ("http://[fd00::2]:8000", True),
    ],
)
def test_which_urls_would_carry_a_key_in_clear(url: str, clear: bool):
    assert key_would_travel_in_clear(httpx.URL(url)) is clear


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2"])
async def test_the_key_goes_over_plain_http_to_loopback(protocol: str, host: str):
    with LoopbackProvider(host=host) as provider:
        remote = backend(protocol, provider.url)
        try:
            await remote.chat(request())
        finally:
            await remote.aclose()
        assert key_seen(provider)


def _non_loopback_targets() -> list[tuple[str, str]]:
    """(host in the URL, address to bind) pairs that reach this machine under a non-loopback name."""
    targets = []
    address = non_loopback_ipv4()
    if address is not None:
        targets.append((address, address))
    named = own_hostname()
    if named is not None:
        targets.append(named)
    return targets


TARGETS = _non_loopback_targets()


@pytest.mark.skipif(not TARGETS, reason="this machine has neither a non-loopback address nor a resolvable host name")
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("target", range(2))
async def test_the_key_never_reaches_a_plain_http_server_on_another_host(protocol: str, target: int):
    if target >= len(TARGETS):
        pytest.skip("only one kind of non-loopback target on this machine")
    name, address = TARGETS[target]
    with LoopbackProvider(host=address) as provider:
        remote = backend(protocol, f"http://{name}:{provider.port}")
        try:
            with pytest.raises(ProviderError) as caught:
                await remote.chat(request())
            with pytest.raises(ProviderError):
                async for _ in remote.stream_chat(request()):
                    pass
        finally:
            await remote.aclose()
        assert caught.value.kind == "insecure_transport"
        assert not caught.value.retryable
        message = str(caught.value)
        assert "plain http" in message and "https://" in message and KEY_ENV in message and KEY not in message
        assert provider.requests == []  # nothing at all was sent: not the key, not the code

        # The same server, the same request, without a key: a keyless tier may use plain http.
        keyless = backend(protocol, f"http://{name}:{provider.port}", key=False)
        try:
            await keyless.chat(request())
        finally:
            await keyless.aclose()
        assert len(provider.requests) == 1 and not key_seen(provider)


async def test_a_refused_tier_does_not_start_resting():
    """A configuration problem says nothing about the tier's health: no cooldown, every call says why."""
    remote = backend("anthropic", "http://192.0.2.10:9")
    try:
        for _ in range(5):
            with pytest.raises(ProviderError) as caught:
                await remote.chat(request())
            assert caught.value.kind == "insecure_transport"
        assert not remote.cooldown.is_open
    finally:
        await remote.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_plain_http_to_loopback_never_goes_through_a_proxy(protocol: str, monkeypatch: pytest.MonkeyPatch):
    """HTTP_PROXY would carry the key (in clear text) off the machine; loopback is reached directly."""
    with LoopbackProvider() as provider, LoopbackProvider() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        remote = backend(protocol, provider.url)
        try:
            await remote.chat(request())
        finally:
            await remote.aclose()
        assert key_seen(provider)
        assert proxy.requests == []
