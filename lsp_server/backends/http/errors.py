"""Provider failures as `ProviderError` kinds, with messages safe to show and log.

Messages carry the provider, the method, the host, the status and the provider's error
*type*: never a header, the provider's free-text message (OpenAI echoes part of a bad key
there) or the prompt."""

from __future__ import annotations

import json
import re
import ssl
from typing import Any

import httpx

from lsp_server.backends.base import (
    ProviderError,
    ProviderErrorKind,
)
from lsp_server.backends.http.retry import parse_retry_after
from lsp_server.loopback import is_loopback_host

_SAFE_TYPE = re.compile(r"[^A-Za-z0-9_.\-]")


def endpoint(url: httpx.URL) -> str:
    """host[:port] only: no user-info, path or query (they may carry credentials)."""
    return f"{url.host}:{url.port}" if url.port else url.host


def is_plain_http_loopback(base_url: str) -> bool:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:  # reported on the first request, as an unusable URL
        return False
    return url.scheme == "http" and is_loopback_host(url.host)


def key_would_travel_in_clear(url: httpx.URL) -> bool:
    """A key sent to this URL could be read on the network: plain http to another machine."""
    return url.scheme != "https" and not (url.scheme == "http" and is_loopback_host(url.host))


def kind_for_status(status: int) -> ProviderErrorKind:
    if status == 429:
        return "rate_limited"
    if status in (503, 529):
        return "overloaded"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if 300 <= status < 400:
        # Redirects are never followed (the key would go to another host).
        return "bad_response"
    return "bad_request"


def kind_for_error_type(error_type: str | None) -> ProviderErrorKind:
    """A provider's error `type` (e.g. Anthropic's `overloaded_error`) as one of our kinds."""
    t = (error_type or "").lower()
    if "overload" in t:
        return "overloaded"
    if "rate" in t or "quota" in t:
        return "rate_limited"
    if "auth" in t or "permission" in t:
        return "auth"
    if "timeout" in t:
        return "timeout"
    if "invalid" in t or "not_found" in t or "too_large" in t:
        return "bad_request"
    return "server_error"


def sanitize_error_type(value: Any) -> str | None:
    """The provider's error type as a short identifier; anything else is dropped."""
    if not isinstance(value, str) or not value:
        return None
    return _SAFE_TYPE.sub("_", value)[:64]


def error_type_from_body(body: Any) -> str | None:
    """`type` of an Anthropic (`{"type":"error","error":{...}}`) or OpenAI (`{"error":{...}}`) error."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    if isinstance(inner, dict):
        return sanitize_error_type(inner.get("type") or inner.get("code"))
    if isinstance(inner, str):  # some gateways: {"error": "rate_limit"}
        return sanitize_error_type(inner)
    return None


def describe_failure(
    provider: str, what: str, method: str, url: httpx.URL, *, status: int | None = None, error_type: str | None = None
) -> str:
    parts = [f"{method} {endpoint(url)}"]
    if status is not None:
        parts.append(f"HTTP {status}")
    if error_type:
        parts.append(error_type)
    return f"{provider}: {what} ({', '.join(parts)})"


_STATUS_WHAT: dict[str, str] = {
    "rate_limited": "rate limited",
    "overloaded": "provider overloaded",
    "server_error": "provider error",
    "auth": "authentication refused; check the API key",
    "bad_request": "request rejected",
    "bad_response": "unexpected response",
}


def error_for_status(
    provider: str, method: str, url: httpx.URL, status: int, headers: httpx.Headers, body: bytes
) -> ProviderError:
    kind = kind_for_status(status)
    error_type = error_type_from_body(body)
    what = "unexpected redirect (not followed)" if 300 <= status < 400 else _STATUS_WHAT[kind]
    return ProviderError(
        kind,
        describe_failure(provider, what, method, url, status=status, error_type=error_type),
        status=status,
        retry_after_s=parse_retry_after(headers.get("retry-after")),
    )


def error_for_event(provider: str, method: str, url: httpx.URL, error_type: str | None) -> ProviderError:
    """An error the provider reported inside an otherwise successful stream."""
    kind = kind_for_error_type(error_type)
    return ProviderError(kind, describe_failure(provider, "error in stream", method, url, error_type=error_type))


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):  # httpx wraps ssl errors a couple of levels deep
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in str(exc) or "TLS" in str(exc)


def error_for_exception(
    provider: str, method: str, url: httpx.URL, exc: BaseException, *, streaming: bool = False
) -> ProviderError:
    """Transport failures; `streaming` once the response headers have arrived."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        what = "timed out while streaming" if streaming else "timed out"
        return ProviderError("timeout", describe_failure(provider, f"{what} [{name}]", method, url))
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return ProviderError("bad_request", describe_failure(provider, f"unusable URL [{name}]", method, url))
    if streaming and isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.NetworkError)):
        return ProviderError("stream_cut", describe_failure(provider, f"stream cut off [{name}]", method, url))
    if _is_tls_error(exc):
        return ProviderError("connection", describe_failure(provider, f"TLS handshake failed [{name}]", method, url))
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProviderError(
            "connection", describe_failure(provider, f"connection closed without a response [{name}]", method, url)
        )
    return ProviderError("connection", describe_failure(provider, f"could not connect [{name}]", method, url))
