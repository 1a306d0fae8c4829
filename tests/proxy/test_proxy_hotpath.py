"""The data plane's hot-path shortcuts keep the same answers: the OIDC validator's memory of
verified tokens, and the pooled HTTP/1.1 forwarder's framing, keep-alive and retry rules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import thv.proxy.oidc as oidc
from thv.proxy.config import OIDCSettings
from thv.proxy.forward import RawForwarder, UpstreamError

pytestmark = pytest.mark.anyio
ISSUER = "https://issuer.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks(kid: str) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


def _token(kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": "mcp-proxy", "sub": "alice", "iat": now, "exp": now + 300}
    return jwt.encode({**base, **claims}, KEY, algorithm="RS256", headers={"kid": kid})


def _validator(jwks: dict[str, Any], fetches: list[str]) -> oidc.OIDCValidator:
    def handler(request: httpx.Request) -> httpx.Response:
        fetches.append(str(request.url))
        return httpx.Response(200, json=jwks)

    settings = OIDCSettings(issuer=ISSUER, audience="mcp-proxy", jwks_url="https://issuer.test/jwks")
    return oidc.OIDCValidator(settings, client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_a_verified_token_is_remembered_until_exp_or_key_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetches: list[str] = []
    jwks = _jwks("k1")
    validator = _validator(jwks, fetches)
    decodes = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    token = _token()
    first = await validator.validate(token)
    assert first["sub"] == "alice"
    assert await validator.validate(token) == first
    assert decodes == 1 and len(fetches) == 1  # the second call neither verified nor fetched
    assert await validator.validate(_token(sub="bob")) is not first and decodes == 2
    # past exp + leeway, the token is checked again (and refused)
    validator.leeway = 0
    short = _token(exp=int(time.time()) + 1)
    await validator.validate(short)
    while time.time() <= jwt.decode(short, options={"verify_signature": False})["exp"]:
        await asyncio.sleep(0.1)
    with pytest.raises(oidc.InvalidToken, match="token expired"):
        await validator.validate(short)
    # a key-set refresh forgets every verdict: a removed key no longer validates remembered tokens
    await validator.validate(token)
    decodes_before = decodes
    jwks["keys"] = []
    validator._fetched_at = float("-inf")  # keys stale: the next validation refetches
    with pytest.raises(oidc.InvalidToken, match="no matching signing key"):
        await validator.validate(token)
    assert decodes == decodes_before and len(fetches) == 2
    await validator.aclose()


async def test_failures_are_not_remembered_and_the_memory_is_bounded() -> None:
    fetches: list[str] = []
    validator = _validator(_jwks("k1"), fetches)
    validator.max_verified = 2
    bad = _token(aud="other")
    for _ in range(2):
        with pytest.raises(oidc.InvalidToken, match="audience"):
            await validator.validate(bad)
    assert validator._verified == {}
    tokens = [_token(sub=f"u{i}") for i in range(3)]
    for t in tokens:
        await validator.validate(t)
    assert len(validator._verified) == 2  # the oldest was pushed out
    await validator.aclose()


# ------------------------------------------------------------------------------------------------
# RawForwarder against a scripted raw HTTP/1.1 server


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def _drive(fwd: RawForwarder, method: str = "POST", body: bytes = b"{}") -> tuple[int, list[Any]]:
    sent: list[Any] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = (
        [(b"host", b"proxy"), (b"content-length", str(len(body)).encode())] if body else [(b"host", b"proxy")]
    )
    scope = {
        "type": "http",
        "method": method,
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "headers": headers,
    }
    status = await fwd.forward(scope, receive, send, headers)
    return status, sent


def _body_of(sent: list[Any]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_keep_alive_reuse_chunked_and_close_delimited_answers() -> None:
    connections = 0
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil-close",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while answers:
                head, _ = await _read_request(reader)
                assert head.startswith(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:")
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if answer.startswith(b"HTTP/1.0"):
                    break
        finally:
            writer.close()

    server, url = await _serve(handler)
    fwd = RawForwarder(url)
    try:
        status, sent = await _drive(fwd)
        assert status == 200 and _body_of(sent) == b"{}"
        status, sent = await _drive(fwd)
        assert status == 200 and _body_of(sent) == b"abcde"
        assert (b"transfer-encoding", b"chunked") not in sent[0]["headers"]  # hop-by-hop
        status, sent = await _drive(fwd)
        assert status == 200 and _body_of(sent) == b"until-close"
        assert connections == 1  # one connection, reused for all three
        assert fwd._idle == []  # the close-delimited answer ended it
    finally:
        await fwd.aclose()
        server.close()


async def test_a_stale_pooled_connection_is_retried_and_errors_are_502() -> None:
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await _read_request(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx")
        await writer.drain()
        writer.close()  # closes after each answer, without saying so: the pooled one is stale

    server, url = await _serve(handler)
    fwd = RawForwarder(url)
    try:
        for _ in range(3):
            status, sent = await _drive(fwd)
            assert status == 200 and _body_of(sent) == b"x"
        assert served == 3
    finally:
        await fwd.aclose()
        server.close()
        await server.wait_closed()
    with pytest.raises(UpstreamError) as err:
        await _drive(RawForwarder(url))
    assert err.value.status == 502

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-nope\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await _serve(garbage)
    try:
        with pytest.raises(UpstreamError) as err:
            await _drive(RawForwarder(url))
        assert err.value.status == 502 and "malformed" in err.value.reason
    finally:
        server.close()


def test_target_parsing() -> None:
    fwd = RawForwarder("http://[::1]:8080/base/")
    assert fwd._host == "::1" and fwd._port == 8080 and fwd._base == b"/base"
    assert fwd._host_header == b"host: [::1]:8080\r\n"
    assert RawForwarder("https://mcp.example")._host_header == b"host: mcp.example\r\n"
    with pytest.raises(ValueError):
        RawForwarder("ftp://x")


def test_the_precomputed_cache_key_equals_cache_key() -> None:
    from thv.proxy.cache import cache_key, key_function
    from thv.proxy.config import TokenExchangeSettings

    settings = TokenExchangeSettings(
        token_url="https://idp/token", client_id="c", audience='a"b', scopes=("read", "wr\u00eete")
    )
    key = key_function(settings)
    for token in ("eyJ.abc.def", 'we"ird\\tok\u00e9n', ""):
        assert key(token) == cache_key(token, settings)


def test_no_request_span_when_no_processor_would_see_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from thv.proxy.app import _spans_recorded

    provider = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    assert not _spans_recorded()  # an SDK provider nothing reads from: skip the span
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert _spans_recorded()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    assert _spans_recorded()  # not the SDK: spans are no-ops anyway, keep the code path
