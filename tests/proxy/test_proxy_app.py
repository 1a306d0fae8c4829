"""The proxy end to end on loopback with a fake token endpoint (no Keycloak): strategies, cache,
single-flight, failure statuses, no leaks, streaming, OIDC validation."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from proxy_testlib import FakeTokenEndpoint, RecordingUpstream, ServerThread, free_port

from thv.proxy.app import build_app
from thv.proxy.config import SECRET_ENV, OIDCSettings, ProxyConfig, config_from_args

SECRET = "client-secret-0d1e2f"
SUBJECT = "subject-token-AAAA-1111"
OTHER_SUBJECT = "subject-token-BBBB-2222"


@dataclass
class Stack:
    idp: FakeTokenEndpoint
    upstream: RecordingUpstream
    proxy_url: str
    upstream_url: str
    token_url: str


@contextlib.contextmanager
def stack(
    *extra_flags: str,
    behaviour: str = "ok",
    token_url: str | None = None,
    target: str | None = None,
    **app_kwargs: Any,
) -> Iterator[Stack]:
    idp = FakeTokenEndpoint(behaviour=behaviour)
    upstream = RecordingUpstream()
    with ServerThread(idp, lifespan="off") as idp_srv, ServerThread(upstream, lifespan="off") as up_srv:
        url = token_url or f"{idp_srv.url}/token"
        config = config_from_args(
            [
                f"--target={target or up_srv.url}",
                f"--token-exchange-url={url}",
                "--token-exchange-client-id=mcp-proxy",
                "--token-exchange-audience=mcp-server",
                "--token-exchange-scopes=read,write",
                *extra_flags,
            ],
            env={SECRET_ENV: SECRET},
        )
        with ServerThread(build_app(config, **app_kwargs)) as proxy:
            yield Stack(idp, upstream, proxy.url, up_srv.url, url)


def bearer(token: str = SUBJECT) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_bearer_is_refused() -> None:
    with stack() as s:
        for headers in (
            {},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer"},
            {"Authorization": "bearer a b"},
        ):
            r = httpx.post(f"{s.proxy_url}/mcp", headers=headers, content=b"{}")
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == 'Bearer realm="thv"'
            assert r.json()["error"] == "invalid_request"
        assert s.idp.calls == [] and s.upstream.records == []


def test_replace_strategy_and_request_shape() -> None:
    with stack() as s:
        body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
        r = httpx.post(
            f"{s.proxy_url}/mcp?x=1&y=%20z",
            headers={
                **bearer(),
                "Content-Type": "application/json",
                "Connection": "close, X-Hop",
                "X-Hop": "1",
            },
            content=body,
        )
        assert r.status_code == 200 and r.json()["result"]["seen_path"] == "/mcp"
        rec = s.upstream.last()
        assert rec.headers["authorization"] == f"Bearer {FakeTokenEndpoint.exchanged_for(SUBJECT)}"
        assert rec.body == body
        assert "x-hop" not in rec.headers  # named in Connection: hop-by-hop
        assert rec.headers["x-forwarded-for"] == "127.0.0.1"
        assert rec.headers["x-forwarded-proto"] == "http"
        (call,) = s.idp.calls
        assert call["form"]["subject_token"] == SUBJECT
        assert call["form"]["audience"] == "mcp-server" and call["form"]["scope"] == "read write"
        assert call["headers"]["authorization"].startswith("Basic ")


def test_custom_strategy_keeps_authorization() -> None:
    with stack("--token-exchange-header-name=X-Upstream-Token") as s:
        r = httpx.post(
            f"{s.proxy_url}/mcp", headers={**bearer(), "X-Upstream-Token": "Bearer spoofed"}, content=b"{}"
        )
        assert r.status_code == 200
        rec = s.upstream.last()
        assert rec.headers["x-upstream-token"] == f"Bearer {FakeTokenEndpoint.exchanged_for(SUBJECT)}"
        assert rec.headers["authorization"] == f"Bearer {SUBJECT}"


def test_cache_hit_and_per_token_entries() -> None:
    with stack() as s:
        for token in (SUBJECT, SUBJECT, OTHER_SUBJECT, SUBJECT, OTHER_SUBJECT):
            assert httpx.post(f"{s.proxy_url}/mcp", headers=bearer(token), content=b"{}").status_code == 200
        assert len(s.idp.calls) == 2


def test_cache_disabled_exchanges_every_time() -> None:
    with stack("--no-token-cache") as s:
        for _ in range(3):
            httpx.post(f"{s.proxy_url}/mcp", headers=bearer(), content=b"{}")
        assert len(s.idp.calls) == 3


@pytest.mark.anyio
async def test_concurrent_requests_share_one_exchange() -> None:
    with stack() as s:
        s.idp.delay = 0.3  # keep the first exchange in flight while the others arrive
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(client.post(f"{s.proxy_url}/mcp", headers=bearer(), content=b"{}") for _ in range(300))
            )
        assert {r.status_code for r in responses} == {200}
        assert len(s.idp.calls) == 1


def test_upstream_401_evicts_the_cached_token() -> None:
    with stack() as s:
        assert httpx.get(f"{s.proxy_url}/status/401", headers=bearer()).status_code == 401
        assert httpx.get(f"{s.proxy_url}/status/200", headers=bearer()).status_code == 200
        assert httpx.get(f"{s.proxy_url}/status/200", headers=bearer()).status_code == 200
        assert len(s.idp.calls) == 2


@pytest.mark.parametrize(
    ("behaviour", "status", "error"),
    [
        ("invalid_grant", 401, "invalid_token"),
        ("invalid_client", 502, "bad_gateway"),
        ("500", 503, "temporarily_unavailable"),
        ("garbage", 502, "bad_gateway"),
        ("error_in_200", 502, "bad_gateway"),
        ("slow", 503, "temporarily_unavailable"),
    ],
)
def test_failures_and_nothing_leaks(
    behaviour: str, status: int, error: str, caplog: pytest.LogCaptureFixture, spans: InMemorySpanExporter
) -> None:
    caplog.set_level(logging.DEBUG)
    with stack("--token-exchange-timeout=0.5", behaviour=behaviour) as s:
        r = httpx.post(f"{s.proxy_url}/mcp", headers=bearer(), content=b"{}", timeout=30)
        assert r.status_code == status
        assert r.json()["error"] == error
        if status == 401:
            assert r.headers["www-authenticate"].startswith('Bearer realm="thv", error="invalid_token"')
        if status == 503:
            assert r.headers["retry-after"] == "5"
        assert s.upstream.records == []
        failures = [x for x in caplog.records if x.name == "thv.proxy.exchange"]
        assert failures and "token exchange failed" in failures[-1].getMessage()
        assert_no_leak(caplog, spans, [r], extra=[FakeTokenEndpoint.exchanged_for(SUBJECT)])


def test_unreachable_provider_and_upstream(
    caplog: pytest.LogCaptureFixture, spans: InMemorySpanExporter
) -> None:
    caplog.set_level(logging.DEBUG)
    closed = f"http://127.0.0.1:{free_port()}"
    with stack(token_url=f"{closed}/token") as s:
        r = httpx.post(f"{s.proxy_url}/mcp", headers=bearer(), content=b"{}")
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
        assert_no_leak(caplog, spans, [r])
    with stack(target=closed) as s:
        r = httpx.post(f"{s.proxy_url}/mcp", headers=bearer(), content=b"{}")
        assert r.status_code == 502 and r.json()["error"] == "bad_gateway"
        assert_no_leak(caplog, spans, [r], extra=[FakeTokenEndpoint.exchanged_for(SUBJECT)])


def test_success_path_leaks_nothing_and_traces(
    caplog: pytest.LogCaptureFixture, spans: InMemorySpanExporter
) -> None:
    caplog.set_level(logging.DEBUG)
    with stack("--token-exchange-header-name=X-Upstream-Token") as s:
        responses = [httpx.post(f"{s.proxy_url}/mcp", headers=bearer(), content=b"{}") for _ in range(2)]
        assert [r.status_code for r in responses] == [200, 200]
    assert_no_leak(caplog, spans, responses, extra=[FakeTokenEndpoint.exchanged_for(SUBJECT)])
    finished = spans.get_finished_spans()
    requests = [sp for sp in finished if sp.name == "thv.proxy.request"]
    exchanges = [sp for sp in finished if sp.name == "thv.proxy.token_exchange"]
    assert len(requests) == 2 and len(exchanges) == 1
    assert exchanges[0].parent is not None and exchanges[0].parent.span_id == requests[0].context.span_id
    assert [(sp.attributes or {})["thv.token_exchange.cache"] for sp in requests] == ["miss", "hit"]
    assert (exchanges[0].attributes or {})["thv.token_exchange.outcome"] == "ok"
    assert any(
        "request method=POST path=/mcp status=200 exchange=hit" in r.getMessage() for r in caplog.records
    )


def assert_no_leak(
    caplog: pytest.LogCaptureFixture,
    spans: InMemorySpanExporter,
    responses: list[httpx.Response],
    extra: list[str] | None = None,
) -> None:
    secrets = [SECRET, SUBJECT, "PROVIDER-SECRET-DETAIL", *(extra or [])]
    texts = [caplog.text, *(r.getMessage() for r in caplog.records)]
    for r in responses:
        texts.append(r.text)
        texts.append(json.dumps(dict(r.headers)))
    texts.extend(sp.to_json() for sp in spans.get_finished_spans())
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob, f"leaked {secret[:6]}..."


# ------------------------------------------------------------------------------------------------
# streaming


def test_sse_events_arrive_before_upstream_finishes() -> None:
    with stack() as s, httpx.stream("GET", f"{s.proxy_url}/sse", headers=bearer(), timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
        lines = r.iter_lines()
        assert next(lines) == "id: 1"
        assert next(lines) == "data: first"
        assert not s.upstream.sse_finished.is_set()  # the upstream is still holding the stream
        s.upstream.release.set()
        rest = list(lines)
        assert "data: second" in rest
        assert s.upstream.sse_finished.wait(10)


def test_client_disconnect_closes_the_upstream_stream() -> None:
    with stack() as s:
        with httpx.stream("GET", f"{s.proxy_url}/sse", headers=bearer(), timeout=30) as r:
            assert next(r.iter_lines()) == "id: 1"
        assert s.upstream.sse_cancelled.wait(20)
        assert not s.upstream.sse_finished.is_set()


def test_large_streamed_body_and_encoded_response_unaltered() -> None:
    payload = bytes(range(256)) * 32768  # 8 MiB

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    with stack() as s:
        r = httpx.post(
            f"{s.proxy_url}/echo",
            headers={**bearer(), "Content-Type": "application/octet-stream"},
            content=chunks(),  # chunked request body
            timeout=60,
        )
        assert r.status_code == 200 and r.content == payload
        compressed = gzip.compress(b'{"hello":"world"}')
        with httpx.stream(
            "POST",
            f"{s.proxy_url}/echo",
            headers={**bearer(), "X-Echo-Encoding": "gzip", "Accept-Encoding": "gzip"},
            content=compressed,
        ) as r:
            raw = b"".join(r.iter_raw())
            assert r.headers["content-encoding"] == "gzip" and raw == compressed


# ------------------------------------------------------------------------------------------------
# incoming OIDC validation


@dataclass
class FakeIssuer:
    key: rsa.RSAPrivateKey
    kid: str = "k1"
    url: str = ""
    up: bool = True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not self.up:
            status, body = 500, b"down"
        elif scope["path"].endswith("/.well-known/openid-configuration"):
            status, body = 200, json.dumps({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"}).encode()
        elif scope["path"] == "/jwks":
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            body = json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}).encode()
            status = 200
        else:
            status, body = 404, b""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        base = {
            "iss": self.url,
            "aud": ["mcp-proxy", "account"],
            "sub": "alice",
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode({**base, **claims}, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def fake_issuer() -> Iterator[FakeIssuer]:
    issuer = FakeIssuer(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with ServerThread(issuer, lifespan="off") as srv:
        issuer.url = srv.url
        yield issuer


def test_oidc_validation(fake_issuer: FakeIssuer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = RecordingUpstream()
    with ServerThread(upstream, lifespan="off") as up:
        config = ProxyConfig(
            target_url=up.url, oidc=OIDCSettings(issuer=fake_issuer.url, audience="mcp-proxy")
        )
        with ServerThread(build_app(config)) as proxy:
            good = fake_issuer.token()
            r = httpx.get(f"{proxy.url}/mcp", headers=bearer(good))
            assert r.status_code == 200
            assert upstream.last().headers["authorization"] == f"Bearer {good}"  # no exchange configured
            other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            cases = {
                "token audience mismatch": fake_issuer.token(aud="someone-else"),
                "token expired": fake_issuer.token(exp=int(time.time()) - 3600),
                "token issuer mismatch": fake_issuer.token(iss="https://evil.test"),
                "algorithm not allowed": jwt.encode({"iss": fake_issuer.url}, "k" * 32, algorithm="HS256"),
                "token signature or claims invalid": jwt.encode(
                    {"iss": fake_issuer.url, "aud": "mcp-proxy", "exp": int(time.time()) + 60},
                    other_key,
                    algorithm="RS256",
                    headers={"kid": fake_issuer.kid},
                ),
                "malformed token": "not-a-jwt",
            }
            for reason, token in cases.items():
                r = httpx.get(f"{proxy.url}/mcp", headers=bearer(token))
                assert r.status_code == 401, reason
                assert r.json() == {"error": "invalid_token", "error_description": reason}
                assert f'error="invalid_token", error_description="{reason}"' in r.headers["www-authenticate"]
            assert len(upstream.records) == 1
        fake_issuer.up = False
        try:
            with ServerThread(build_app(config)) as proxy:  # fresh app: JWKS not loaded yet
                r = httpx.get(f"{proxy.url}/mcp", headers=bearer(fake_issuer.token()))
                assert r.status_code == 503
        finally:
            fake_issuer.up = True
    assert good not in caplog.text


def test_oidc_then_exchange(fake_issuer: FakeIssuer) -> None:
    idp = FakeTokenEndpoint()
    upstream = RecordingUpstream()
    with ServerThread(idp, lifespan="off") as idp_srv, ServerThread(upstream, lifespan="off") as up:
        config = config_from_args(
            [
                f"--target={up.url}",
                f"--oidc-issuer={fake_issuer.url}",
                "--oidc-audience=mcp-proxy",
                f"--token-exchange-url={idp_srv.url}/token",
                "--token-exchange-audience=mcp-server",
            ],
            env={},
        )
        with ServerThread(build_app(config)) as proxy:
            assert (
                httpx.get(f"{proxy.url}/x", headers=bearer(fake_issuer.token(aud="nope"))).status_code == 401
            )
            assert idp.calls == []  # refused before any exchange
            token = fake_issuer.token()
            assert httpx.get(f"{proxy.url}/x", headers=bearer(token)).status_code == 200
            assert (
                upstream.last().headers["authorization"] == f"Bearer {FakeTokenEndpoint.exchanged_for(token)}"
            )


def test_pure_forwarding_without_auth() -> None:
    upstream = RecordingUpstream()
    with ServerThread(upstream, lifespan="off") as up:
        config = msgspec.structs.replace(ProxyConfig(), target_url=up.url + "/base")
        with ServerThread(build_app(config)) as proxy:
            r = httpx.post(f"{proxy.url}/mcp", content=b"{}")
            assert r.status_code == 200
            assert upstream.last().path == "/base/mcp"
            assert "authorization" not in upstream.last().headers
