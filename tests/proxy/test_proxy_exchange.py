"""RFC 8693 request shape, response classification, cache key/TTL and single-flight."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from thv.proxy.cache import CachedToken, SingleFlight, TokenCache, cache_key, cache_ttl, unverified_exp
from thv.proxy.config import TOKEN_TYPE_ACCESS_TOKEN, Secret, TokenExchangeSettings
from thv.proxy.exchange import ExchangeError, TokenExchanger, basic_auth

pytestmark = pytest.mark.anyio

SUBJECT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.subject-sig"
SETTINGS = TokenExchangeSettings(
    token_url="https://idp.test/realms/r/token",
    client_id="mcp proxy",  # a space: Basic auth must form-encode it
    client_secret=Secret("p@ss:w+rd"),
    audience="mcp-server",
    scopes=("read", "write"),
)
OK_BODY = {
    "access_token": "new-token",
    "issued_token_type": TOKEN_TYPE_ACCESS_TOKEN,
    "token_type": "Bearer",
    "expires_in": 300,
}


def exchanger_for(
    handler: Callable[[httpx.Request], Any], settings: TokenExchangeSettings = SETTINGS
) -> TokenExchanger:
    return TokenExchanger(settings, client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OK_BODY)

    token = await exchanger_for(handler).exchange(SUBJECT)
    assert token.access_token == "new-token" and token.token_type == "Bearer"
    (req,) = seen
    assert req.method == "POST" and str(req.url) == SETTINGS.token_url
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {k: v for k, (v,) in parse_qs(req.content.decode()).items()}
    assert form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": SUBJECT,
        "subject_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        "audience": "mcp-server",
        "scope": "read write",
    }
    user, _, password = base64.b64decode(req.headers["authorization"].split()[1]).decode().partition(":")
    assert (user, password) == ("mcp+proxy", "p%40ss%3Aw%2Brd")  # RFC 6749 §2.3.1 form-encoding
    assert req.headers["authorization"] == basic_auth("mcp proxy", "p@ss:w+rd")


async def test_minimal_request_without_client_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OK_BODY)

    await exchanger_for(
        handler, TokenExchangeSettings(token_url="https://idp.test/t", client_id="only-id")
    ).exchange(SUBJECT)
    form = parse_qs(seen[0].content.decode())
    assert "audience" not in form and "scope" not in form and "client_id" not in form
    assert "authorization" not in seen[0].headers  # upstream: Basic only with id AND secret


@pytest.mark.parametrize(
    ("status", "body", "kind", "http_status", "oauth_error"),
    [
        (400, {"error": "invalid_grant", "error_description": "x"}, "rejected", 401, "invalid_grant"),
        (
            400,
            {"error": "invalid_request", "error_description": "Invalid token"},
            "rejected",
            401,
            "invalid_request",
        ),
        (403, {"error": "access_denied"}, "rejected", 401, "access_denied"),
        (401, {"error": "invalid_client"}, "misconfigured", 502, "invalid_client"),
        (400, {"error": "unauthorized_client"}, "misconfigured", 502, "unauthorized_client"),
        (400, {"error": "some free text that is not a code!"}, "bad_response", 502, None),
        (404, "<html>not found</html>", "bad_response", 502, None),
        (500, "boom", "unavailable", 503, None),
        (503, {"error": "temporarily_unavailable"}, "unavailable", 503, None),
        (429, {"error": "slow_down"}, "unavailable", 503, None),
        (200, "not json", "bad_response", 502, None),
        (200, {"access_token": "x", "token_type": "Bearer"}, "bad_response", 502, None),
        (200, {**OK_BODY, "error": "server_error"}, "bad_response", 502, "server_error"),
        (200, {**OK_BODY, "access_token": "bad\r\nInjected: yes"}, "bad_response", 502, None),
        (200, {**OK_BODY, "access_token": 12}, "bad_response", 502, None),
        (302, "", "bad_response", 502, None),
    ],
)
async def test_response_classification(
    status: int, body: Any, kind: str, http_status: int, oauth_error: str | None
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, dict):
            return httpx.Response(status, json=body)
        return httpx.Response(status, content=body.encode())

    with pytest.raises(ExchangeError) as info:
        await exchanger_for(handler).exchange(SUBJECT)
    assert (info.value.kind, info.value.status, info.value.oauth_error) == (kind, http_status, oauth_error)
    assert SUBJECT not in str(info.value) and "Invalid token" not in str(info.value)


@pytest.mark.parametrize(
    ("exc", "kind"), [(httpx.ConnectError("refused"), "unavailable"), (httpx.ReadTimeout("slow"), "timeout")]
)
async def test_transport_failures(exc: Exception, kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(ExchangeError) as info:
        await exchanger_for(handler).exchange(SUBJECT)
    assert info.value.kind == kind and info.value.status == 503


async def test_oversized_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * (2 << 20) + b"}")

    with pytest.raises(ExchangeError, match="larger than 1 MiB"):
        await exchanger_for(handler).exchange(SUBJECT)


@pytest.mark.parametrize(
    ("value", "cached"), [(300, True), ("300", True), (None, True), (10, False), ("x", True)]
)
async def test_expires_in_forms(value: Any, cached: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**OK_BODY, "expires_in": value})

    token = await exchanger_for(handler).exchange(SUBJECT)
    assert (token.expires_at is not None) is cached  # 10 s < 30 s skew: not cacheable


# ------------------------------------------------------------------------------------------------
# cache key and TTL


def _jwt(claims: dict[str, Any]) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'RS256'})}.{b64(claims)}.sig"


def test_cache_key() -> None:
    key = cache_key(SUBJECT, SETTINGS)
    assert len(key) == 64 and SUBJECT not in key
    import msgspec

    variants = [
        cache_key(SUBJECT + "x", SETTINGS),
        cache_key(SUBJECT, msgspec.structs.replace(SETTINGS, audience="other")),
        cache_key(SUBJECT, msgspec.structs.replace(SETTINGS, scopes=("read",))),
        cache_key(SUBJECT, msgspec.structs.replace(SETTINGS, scopes=("read write",))),
        cache_key(SUBJECT, msgspec.structs.replace(SETTINGS, token_url="https://other/t")),
        cache_key(SUBJECT, msgspec.structs.replace(SETTINGS, client_id="c2")),
    ]
    assert len({key, *variants}) == 7
    assert cache_key(SUBJECT, msgspec.structs.replace(SETTINGS, client_secret=None)) == key


def test_ttl() -> None:
    now = 1_000_000.0
    assert cache_ttl(300, "opaque", skew=30, now=now) == 270
    assert cache_ttl(None, "opaque", skew=30, now=now) == 270  # default lifetime 300
    assert cache_ttl(300, _jwt({"exp": now + 100}), skew=30, now=now) == 70  # capped by the subject
    assert cache_ttl(300, _jwt({"exp": now - 1}), skew=30, now=now) < 0
    assert unverified_exp(_jwt({"exp": True})) is None and unverified_exp("a.b") is None
    assert unverified_exp("a.!!!.c") is None


# ------------------------------------------------------------------------------------------------
# single-flight and cache


async def test_singleflight_one_call_for_many() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    tasks = [asyncio.create_task(flight.do("k", work)) for _ in range(500)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert {r for r, _ in results} == {42}
    assert sum(shared for _, shared in results) == 499
    assert len(flight) == 0


async def test_singleflight_errors_reach_all_and_are_not_kept() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    async def boom() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ExchangeError("unavailable", "down")

    results = await asyncio.gather(*(flight.do("k", boom) for _ in range(10)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, ExchangeError) for r in results)
    with pytest.raises(ExchangeError):
        await flight.do("k", boom)
    assert calls == 2


async def test_singleflight_cancelled_waiter_does_not_cancel_others() -> None:
    flight: SingleFlight[int] = SingleFlight()
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        return 7

    first = asyncio.create_task(flight.do("k", work))
    second = asyncio.create_task(flight.do("k", work))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert (await second) == (7, True)


async def test_token_cache_hit_miss_expiry_and_invalidate() -> None:
    cache = TokenCache()
    calls = 0

    async def exchange(lifetime: float) -> CachedToken:
        nonlocal calls
        calls += 1
        return CachedToken(f"t{calls}", "Bearer", time.monotonic() + lifetime)

    tok, outcome = await cache.get_or_exchange("k", lambda: exchange(60))
    assert (tok.access_token, outcome) == ("t1", "miss")
    tok, outcome = await cache.get_or_exchange("k", lambda: exchange(60))
    assert (tok.access_token, outcome) == ("t1", "hit")
    await cache.invalidate("k")
    tok, outcome = await cache.get_or_exchange("k", lambda: exchange(0.05))
    assert (tok.access_token, outcome) == ("t2", "miss")
    await asyncio.sleep(0.2)  # generous: only needs to pass the 50 ms lifetime
    tok, _ = await cache.get_or_exchange("k", lambda: exchange(60))
    assert tok.access_token == "t3"
    assert "t3" not in repr(tok)
    await cache.close()


async def test_token_cache_uncacheable_and_disabled() -> None:
    calls = 0

    async def exchange() -> CachedToken:
        nonlocal calls
        calls += 1
        return CachedToken("t", "Bearer", None)

    cache = TokenCache()
    for _ in range(3):
        await cache.get_or_exchange("k", exchange)
    assert calls == 3
    disabled = TokenCache(enabled=False)
    for _ in range(2):
        await disabled.get_or_exchange(
            "k", lambda: asyncio.sleep(0, CachedToken("t", "Bearer", time.monotonic() + 60))
        )
    assert await disabled.size() == 0


async def test_token_cache_bounded() -> None:
    cache = TokenCache(max_entries=3)
    for i in range(5):
        await cache.get_or_exchange(
            str(i), lambda: asyncio.sleep(0, CachedToken("t", "Bearer", time.monotonic() + 60))
        )
    assert await cache.size() == 3
