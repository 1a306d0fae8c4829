"""``thv proxy`` against a real Keycloak 26.x: RFC 8693 standard token exchange (V2).

alice's token (password grant, client ``mcp-client``, ``aud`` = ``mcp-proxy``) goes through the
proxy; the proxy exchanges it as confidential client ``mcp-proxy`` for ``audience=mcp-server``;
the upstream stand-in verifies the received token's signature with Keycloak's JWKS and checks
``aud == mcp-server``. Both header strategies, flag mode and ConfigMap (runconfig.json) mode.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from proxy_fixtures import ProxyFactory, Roundtrip, UpstreamFactory
from proxy_testlib import (
    PROXY_CLIENT_ID,
    PROXY_CLIENT_SECRET,
    REPO,
    TARGET_AUDIENCE,
    KeycloakServer,
    Recorded,
    free_port,
    runconfig_for,
)

from thv.proxy.app import ProxyApp
from thv.proxy.config import SECRET_ENV, ProxyConfig, config_from_args, config_from_runconfig

pytestmark = pytest.mark.keycloak

ENV = {SECRET_ENV: PROXY_CLIENT_SECRET}
CUSTOM_HEADER = "X-Upstream-Token"


def flag_config(kc: KeycloakServer, *extra: str) -> ProxyConfig:
    return config_from_args(
        [
            "--target=http://127.0.0.1:1",  # replaced by the roundtrip's upstream
            f"--token-exchange-url={kc.token_url}",
            f"--token-exchange-client-id={PROXY_CLIENT_ID}",
            f"--token-exchange-audience={TARGET_AUDIENCE}",
            *extra,
        ],
        env=ENV,
    )


def assert_exchanged(record: Recorded, kc: KeycloakServer, *, header: str) -> None:
    claims = record.verified
    assert claims is not None
    aud = claims["aud"]
    assert aud == TARGET_AUDIENCE or aud == [TARGET_AUDIENCE], aud
    assert claims["azp"] == PROXY_CLIENT_ID
    assert claims["iss"] == kc.issuer
    assert claims["preferred_username"] == "alice"
    original = record.headers["authorization"].removeprefix("Bearer ")
    original_claims = jwt.decode(original, options={"verify_signature": False})
    assert claims["sub"] == original_claims["sub"]  # same user, new audience
    if header == "authorization":
        assert original_claims["azp"] == PROXY_CLIENT_ID  # replaced: only the exchanged token arrives
    else:
        assert original_claims["azp"] == "mcp-client"  # custom: the user's token is kept
        assert "mcp-proxy" in (
            original_claims["aud"] if isinstance(original_claims["aud"], list) else [original_claims["aud"]]
        )
        assert record.headers[header.lower()].startswith("Bearer ")


@pytest.mark.parametrize("strategy", ["replace", "custom"])
def test_flag_mode(keycloak: KeycloakServer, keycloak_roundtrip: Roundtrip, strategy: str) -> None:
    extra = [f"--token-exchange-header-name={CUSTOM_HEADER}"] if strategy == "custom" else []
    config = flag_config(keycloak, *extra)
    record = keycloak_roundtrip(config)
    assert_exchanged(record, keycloak, header=CUSTOM_HEADER if strategy == "custom" else "authorization")


@pytest.mark.parametrize("strategy", ["replace", "custom"])
def test_configmap_mode(
    keycloak: KeycloakServer, keycloak_roundtrip: Roundtrip, strategy: str, tmp_path: Path
) -> None:
    rc = runconfig_for(
        token_url=keycloak.token_url,
        audience=TARGET_AUDIENCE,
        header_name=CUSTOM_HEADER if strategy == "custom" else None,
        scopes=["profile", "email"],
        issuer=keycloak.issuer,
        oidc_audience=PROXY_CLIENT_ID,  # the proxy validates alice's token first
    )
    path = tmp_path / "runconfig.json"
    path.write_text(json.dumps(rc, indent=2))
    config = config_from_args(["--runconfig", str(path), "--target=http://127.0.0.1:1"], env=ENV)
    assert config.oidc is not None and config.oidc.issuer == keycloak.issuer
    assert config.token_exchange == config_from_runconfig(path.read_bytes(), env=ENV).token_exchange
    record = keycloak_roundtrip(config)
    assert_exchanged(record, keycloak, header=CUSTOM_HEADER if strategy == "custom" else "authorization")
    assert record.verified is not None and set(record.verified["scope"].split()) >= {"profile", "email"}


def test_cache_one_exchange_for_repeated_calls(
    keycloak: KeycloakServer, keycloak_upstream: UpstreamFactory, proxy_server: ProxyFactory
) -> None:
    recorder, upstream = keycloak_upstream()
    proxy = proxy_server(flag_config(keycloak, f"--target={upstream.url}"))
    app = proxy.server.config.app
    assert isinstance(app, ProxyApp) and app.exchanger is not None
    token = keycloak.password_token()
    with httpx.Client(timeout=60) as client:
        for _ in range(5):
            r = client.post(f"{proxy.url}/mcp", headers={"Authorization": f"Bearer {token}"}, content=b"{}")
            assert r.status_code == 200
    assert app.exchanger.calls == 1
    assert len({rec.headers["authorization"] for rec in recorder.records}) == 1


def test_sse_streams_through(
    keycloak: KeycloakServer, keycloak_upstream: UpstreamFactory, proxy_server: ProxyFactory
) -> None:
    recorder, upstream = keycloak_upstream()
    proxy = proxy_server(flag_config(keycloak, f"--target={upstream.url}"))
    headers = {"Authorization": f"Bearer {keycloak.password_token()}", "Accept": "text/event-stream"}
    with httpx.stream("GET", f"{proxy.url}/sse", headers=headers, timeout=60) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert [next(lines), next(lines)] == ["id: 1", "data: first"]
        assert not recorder.sse_finished.is_set()  # first event arrived while the upstream still streams
        recorder.release.set()
        assert "data: second" in list(lines)
    assert recorder.last().verified is not None


def test_refusals_map_to_statuses_and_leak_nothing(
    keycloak: KeycloakServer,
    keycloak_upstream: UpstreamFactory,
    proxy_server: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
    spans: InMemorySpanExporter,
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder, upstream = keycloak_upstream()
    good = proxy_server(flag_config(keycloak, f"--target={upstream.url}"))
    alice = keycloak.password_token()
    other = keycloak.password_token(client_id="other-client")  # aud lacks mcp-proxy → 403 access_denied
    responses: list[httpx.Response] = []
    with httpx.Client(timeout=60) as client:

        def call(url: str, token: str) -> httpx.Response:
            r = client.post(f"{url}/mcp", headers={"Authorization": f"Bearer {token}"}, content=b"{}")
            responses.append(r)
            return r

        assert call(good.url, alice).status_code == 200
        exchanged = recorder.last().headers["authorization"].removeprefix("Bearer ")
        r = call(good.url, other)
        assert r.status_code == 401 and "invalid_token" in r.headers["www-authenticate"]
        r = call(good.url, alice[:-4] + "AAAA")  # bad signature → 400 invalid_request "Invalid token"
        assert r.status_code == 401
        wrong_secret = config_from_args(
            [
                f"--target={upstream.url}",
                f"--token-exchange-url={keycloak.token_url}",
                f"--token-exchange-client-id={PROXY_CLIENT_ID}",
                f"--token-exchange-audience={TARGET_AUDIENCE}",
            ],
            env={SECRET_ENV: "not-the-secret"},
        )
        r = call(proxy_server(wrong_secret).url, alice)
        assert r.status_code == 502  # invalid_client / unauthorized_client: the proxy's fault
        bad_audience = flag_config(keycloak, f"--target={upstream.url}")
        bad_audience = bad_audience.__class__(
            **{**_fields(bad_audience), "token_exchange": _with(bad_audience, audience="nope")}
        )
        r = call(proxy_server(bad_audience).url, alice)
        assert r.status_code == 502  # Keycloak: 400 invalid_client "Audience not found"
    assert len(recorder.records) == 1  # refused requests never reached the MCP server
    texts = [caplog.text, *(r.text + json.dumps(dict(r.headers)) for r in responses)]
    texts += [sp.to_json() for sp in spans.get_finished_spans()]
    blob = "\n".join(texts)
    for secret in (alice, other, exchanged, PROXY_CLIENT_SECRET, "not-the-secret"):
        assert secret not in blob
    for provider_text in ("Invalid token", "Client is not within the token audience", "Audience not found"):
        assert provider_text not in blob
    assert "oauth_error=access_denied" in caplog.text and "provider_status=403" in caplog.text


def _fields(config: ProxyConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in config.__struct_fields__}


def _with(config: ProxyConfig, **changes: Any) -> Any:
    import msgspec

    assert config.token_exchange is not None
    return msgspec.structs.replace(config.token_exchange, **changes)


def test_thv_proxy_command(
    keycloak: KeycloakServer, keycloak_upstream: UpstreamFactory, tmp_path: Path
) -> None:
    """The real ``thv proxy`` process (flag mode, secret from the env), stopped with SIGTERM."""
    recorder, upstream = keycloak_upstream(token_header=CUSTOM_HEADER)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "thv",
        "proxy",
        f"--target={upstream.url}",
        f"--port={port}",
        f"--token-exchange-url={keycloak.token_url}",
        f"--token-exchange-client-id={PROXY_CLIENT_ID}",
        f"--token-exchange-audience={TARGET_AUDIENCE}",
        f"--token-exchange-header-name={CUSTOM_HEADER}",
        "--token-exchange-subject-token-type=access_token",
        "--log-level=DEBUG",
    ]
    log_path = tmp_path / "proxy.log"
    env = {**os.environ, **ENV, "OTEL_TRACES_EXPORTER": "none"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        token = keycloak.password_token()
        r = httpx.post(
            f"http://127.0.0.1:{port}/mcp",
            headers={"Authorization": f"Bearer {token}"},
            content=b"{}",
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert_exchanged(recorder.last(), keycloak, header=CUSTOM_HEADER)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    output = log_path.read_text()
    assert code == 0, output
    assert token not in output and PROXY_CLIENT_SECRET not in output
    assert (
        '"token exchange ok audience=mcp-server' in output
        or "token exchange ok audience=mcp-server" in output
    )
