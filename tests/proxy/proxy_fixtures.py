"""pytest fixtures for ``thv proxy`` tests, importable by other conftests::

    sys.path.insert(0, str(REPO / "tests" / "proxy"))
    from proxy_fixtures import (  # noqa: F401
        keycloak, keycloak_roundtrip, keycloak_upstream, proxy_server, span_exporter, spans,
    )

``keycloak`` is session-scoped and shared process-wide (one Keycloak however many conftests
import it); ``keycloak_upstream`` and ``proxy_server`` are factories of servers on loopback,
stopped after each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from proxy_testlib import (
    TARGET_AUDIENCE,
    KeycloakServer,
    Recorded,
    RecordingUpstream,
    ServerThread,
    acquire_keycloak,
    release_keycloak,
    set_progress_context,
)

from thv.proxy.app import build_app
from thv.proxy.config import ProxyConfig

_exporter: InMemorySpanExporter | None = None


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter on the global tracer provider (installed once per process)."""
    global _exporter
    if _exporter is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return _exporter


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    span_exporter.clear()
    return span_exporter


@pytest.fixture(scope="session")
def keycloak(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeycloakServer]:
    """A real Keycloak 26.x (cached install, realm ``mcp-test`` imported), stopped at session end."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        set_progress_context(capman.global_and_fixture_disabled)
    server = acquire_keycloak(tmp_path_factory.mktemp("keycloak"))
    try:
        yield server
    finally:
        release_keycloak()


UpstreamFactory = Callable[..., tuple[RecordingUpstream, ServerThread]]
ProxyFactory = Callable[..., ServerThread]


@pytest.fixture
def keycloak_upstream(keycloak: KeycloakServer) -> Iterator[UpstreamFactory]:
    """``make(token_header="authorization") -> (recorder, server)``: an MCP-server stand-in that
    verifies the token in ``token_header`` against Keycloak's JWKS (aud ``mcp-server``)."""
    started: list[ServerThread] = []

    def make(
        token_header: str = "authorization", audience: str = TARGET_AUDIENCE
    ) -> tuple[RecordingUpstream, ServerThread]:
        recorder = RecordingUpstream(
            jwks_url=keycloak.jwks_url, audience=audience, issuer=keycloak.issuer, token_header=token_header
        )
        server = ServerThread(recorder, lifespan="off").__enter__()
        started.append(server)
        return recorder, server

    yield make
    for server in reversed(started):
        server.__exit__(None, None, None)


@pytest.fixture
def proxy_server() -> Iterator[ProxyFactory]:
    """``make(config, **app_kwargs) -> server``: ``thv proxy`` for ``config`` on a free port."""
    started: list[ServerThread] = []

    def make(config: ProxyConfig, **app_kwargs: Any) -> ServerThread:
        server = ServerThread(build_app(config, **app_kwargs)).__enter__()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.__exit__(None, None, None)


Roundtrip = Callable[..., Recorded]


@pytest.fixture
def keycloak_roundtrip(
    keycloak: KeycloakServer, keycloak_upstream: UpstreamFactory, proxy_server: ProxyFactory
) -> Roundtrip:
    """``check(config, path="/mcp") -> Recorded``: run ``thv proxy`` for ``config`` (its target is
    replaced by a fresh verifying upstream), send one request carrying alice's Keycloak token,
    assert it got through, and return what the upstream saw (``.verified`` = the verified claims of
    the exchanged token: ``aud`` is ``mcp-server``). For the operator's ConfigMap variant: build the
    config with ``config_from_runconfig(configmap["runconfig.json"], env={SECRET_ENV: PROXY_CLIENT_SECRET})``
    where the MCPExternalAuthConfig's ``tokenUrl`` was ``keycloak.token_url``."""

    def check(config: ProxyConfig, path: str = "/mcp") -> Recorded:
        te = config.token_exchange
        header = "authorization"
        if te is not None and te.header_strategy == "custom" and te.external_token_header_name:
            header = te.external_token_header_name
        recorder, upstream = keycloak_upstream(token_header=header)
        proxy = proxy_server(msgspec.structs.replace(config, target_url=upstream.url))
        token = keycloak.password_token()
        r = httpx.post(
            f"{proxy.url}{path}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
            timeout=60,
        )
        record = recorder.last()
        assert r.status_code == 200, (r.status_code, r.text, record.error)
        assert record.verified is not None, record.error
        return record

    return check
