"""RFC 9728 discovery through the proxy, ``resource_metadata`` on every 401, and a backend's own
401 never leaking the backend's address."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mw_testlib import ISSUER, FakeValidator, running
from proxy_testlib import ServerThread

from thv.middleware.discovery import metadata_url, www_authenticate
from thv.proxy.app import build_app
from thv.proxy.asgi import Receive, Scope, Send
from thv.proxy.config import OIDCSettings, ProxyConfig

RESOURCE = "https://mcp.example/mcp"
METADATA = "https://mcp.example/.well-known/oauth-protected-resource/mcp"


def test_metadata_url() -> None:
    assert metadata_url(RESOURCE) == METADATA
    assert metadata_url("https://mcp.example/") == "https://mcp.example/.well-known/oauth-protected-resource"
    assert (
        metadata_url("https://mcp.example:8443")
        == "https://mcp.example:8443/.well-known/oauth-protected-resource"
    )
    assert metadata_url("not a url") is None
    _name, value = www_authenticate("thv", RESOURCE, "invalid_token", 'say "no"')
    assert (
        value
        == (
            f'Bearer realm="thv", resource_metadata="{METADATA}", error="invalid_token", error_description="say \\"no\\""'
        ).encode()
    )


@pytest.fixture
def proxy() -> Iterator[str]:
    with running("streamable-http", None, resource_url=RESOURCE) as url:
        yield url


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
def test_discovery_document_without_a_token(proxy: str, path: str) -> None:
    r = httpx.get(proxy + path)
    assert r.status_code == 200
    assert r.json() == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["openid"],
    }
    assert r.headers["access-control-allow-origin"] == "*"
    pre = httpx.options(proxy + path, headers={"Origin": "https://app.example"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "https://app.example"
    assert httpx.post(proxy + path).status_code == 405


def test_every_401_names_the_metadata(proxy: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = httpx.post(proxy + "/mcp", json={}, headers=headers)
        assert r.status_code == 401
        assert f'resource_metadata="{METADATA}"' in r.headers["www-authenticate"]
        assert r.headers["www-authenticate"].startswith('Bearer realm="thv", resource_metadata=')


def test_no_resource_url_no_document() -> None:
    with running("streamable-http", None, resource_url=None) as url:
        assert httpx.get(url + "/.well-known/oauth-protected-resource").status_code == 404
        r = httpx.post(url + "/mcp", json={})
        assert r.status_code == 401 and "resource_metadata" not in r.headers["www-authenticate"]


async def _backend_401(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b'{"error":"invalid_token","resource":"http://10.244.0.17:8080/mcp"}'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (
                    b"www-authenticate",
                    b'Bearer resource_metadata="http://10.244.0.17:8080/.well-known/oauth-protected-resource"',
                ),
                (b"x-backend", b"mcp-demo-0.mcp-demo-headless.ns.svc:8080"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_backend_401_does_not_leak_the_backend() -> None:
    with ServerThread(_backend_401, lifespan="off") as backend:
        config = ProxyConfig(target_url=backend.url, oidc=OIDCSettings(issuer=ISSUER, resource_url=RESOURCE))
        with ServerThread(build_app(config, validator=FakeValidator())) as proxy:
            r = httpx.post(proxy.url + "/mcp", json={}, headers={"Authorization": "Bearer alice-token"})
    assert r.status_code == 401
    assert "10.244" not in r.text and "headless" not in r.text
    assert all("10.244" not in v and "headless" not in v for v in r.headers.values())
    assert f'resource_metadata="{METADATA}"' in r.headers["www-authenticate"]
    assert r.json()["error"] == "invalid_token"


@pytest.mark.anyio
async def test_the_sdk_client_discovers_the_authorization_server_through_the_proxy() -> None:
    """What the MCP SDK's OAuth client does on a 401 (RFC 9728 discovery helpers of ``mcp``)."""
    import httpx2
    from mcp.client.auth.utils import (
        build_protected_resource_metadata_discovery_urls,
        extract_resource_metadata_from_www_auth,
        handle_protected_resource_response,
    )
    from mw_testlib import demo_server
    from proxy_testlib import free_port

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with ServerThread(demo_server().streamable_http_app()) as backend:
        config = ProxyConfig(target_url=backend.url, oidc=OIDCSettings(issuer=ISSUER, resource_url=resource))
        with ServerThread(build_app(config, validator=FakeValidator()), port=port):
            async with httpx2.AsyncClient(timeout=10) as http:
                refused = await http.post(resource, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                assert refused.status_code == 401
                hint = extract_resource_metadata_from_www_auth(refused)
                assert hint == f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
                urls = build_protected_resource_metadata_discovery_urls(hint, resource)
                metadata = await handle_protected_resource_response(await http.get(urls[0]))
    assert metadata is not None
    assert str(metadata.resource) == resource
    assert [str(a).rstrip("/") for a in metadata.authorization_servers] == [ISSUER]
