"""Test helpers for ``thv proxy``: servers in background threads, a fake token endpoint, a
recording MCP-server stand-in that verifies tokens, and a real Keycloak (installed and started
from the cached distribution).

Importable from any conftest (``sys.path`` gets ``tests/proxy`` when pytest loads the conftest
beside this file; elsewhere insert it yourself). See ``docs/proxy.md`` § Tests for reuse.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
import uvicorn

# Keycloak and the mcp-test realm's names live in devcluster.keycloak (the demo runs Keycloak too)
from devcluster.keycloak import PASSWORD as PASSWORD
from devcluster.keycloak import PROXY_CLIENT_ID as PROXY_CLIENT_ID
from devcluster.keycloak import PROXY_CLIENT_SECRET as PROXY_CLIENT_SECRET
from devcluster.keycloak import REALM as REALM
from devcluster.keycloak import TARGET_AUDIENCE as TARGET_AUDIENCE
from devcluster.keycloak import USER as USER
from devcluster.keycloak import KeycloakServer as KeycloakServer
from devcluster.keycloak import find_jdk as find_jdk
from devcluster.keycloak import install_keycloak as install_keycloak
from devcluster.keycloak import java_major as java_major
from devcluster.keycloak import rss_kib as rss_kib
from devcluster.keycloak import set_progress as set_keycloak_progress

REPO = Path(__file__).resolve().parents[2]

Scope = Any
Receive = Callable[[], Any]
Send = Callable[[Any], Any]


_progress_context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


def set_progress_context(factory: Callable[[], contextlib.AbstractContextManager[Any]]) -> None:
    """Under pytest: pass ``capturemanager.global_and_fixture_disabled`` so progress shows live."""
    global _progress_context
    _progress_context = factory


def progress(message: str) -> None:
    """A progress line on stderr, shown live even while pytest captures output."""
    with _progress_context():
        print(f"[proxy-tests {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


set_keycloak_progress(progress)  # Keycloak's own progress lines go the same way


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# uvicorn in a thread


class ServerThread:
    """Runs an ASGI app with uvicorn on 127.0.0.1 in a daemon thread with its own event loop."""

    def __init__(
        self, app: Any, *, port: int | None = None, lifespan: Literal["auto", "on", "off"] = "on"
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                lifespan=lifespan,
                log_config=None,
                access_log=False,
                server_header=False,
                date_header=False,
                timeout_graceful_shutdown=2,
            )
        )
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        if self.thread.is_alive():
            raise RuntimeError(f"server on port {self.port} did not stop")


# ------------------------------------------------------------------------------------------------
# a fake RFC 8693 token endpoint (unit tests)


@dataclass
class FakeTokenEndpoint:
    """ASGI token endpoint. ``behaviour`` decides each answer; records every form + headers."""

    expires_in: Any = 300
    behaviour: str = "ok"  # ok | invalid_grant | invalid_client | 500 | garbage | slow | error_in_200
    delay: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def exchanged_for(subject: str) -> str:
        return "exchanged-" + subject[-12:]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self.lock:
            self.calls.append(
                {"form": form, "headers": {k.decode(): v.decode() for k, v in scope["headers"]}}
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        status, payload = 200, b""
        if self.behaviour == "ok":
            payload = json.dumps(
                {
                    "access_token": self.exchanged_for(form.get("subject_token", "")),
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                }
            ).encode()
        elif self.behaviour in ("invalid_grant", "invalid_client"):
            status = 400
            payload = json.dumps(
                {"error": self.behaviour, "error_description": "PROVIDER-SECRET-DETAIL"}
            ).encode()
        elif self.behaviour == "500":
            status, payload = 500, b"PROVIDER-SECRET-DETAIL"
        elif self.behaviour == "garbage":
            payload = b"<html>PROVIDER-SECRET-DETAIL</html>"
        elif self.behaviour == "error_in_200":
            payload = b'{"error":"server_error","error_description":"PROVIDER-SECRET-DETAIL"}'
        elif self.behaviour == "slow":
            await asyncio.sleep(30)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


# ------------------------------------------------------------------------------------------------
# the MCP-server stand-in


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: dict[str, Any] | None  # claims of the token in `token_header`, if it verified
    error: str | None


@dataclass
class RecordingUpstream:
    """ASGI app standing in for an MCP server.

    * every request is recorded (headers, body, and — when ``jwks_url`` is set — the result of
      verifying the bearer token in ``token_header`` against that JWKS with pyjwt, checking
      ``aud == audience`` and ``iss == issuer``);
    * ``POST /mcp`` answers a JSON-RPC-looking JSON echo; ``POST /echo`` returns the body as is
      (with the request's content-type, and ``X-Echo-Encoding`` as ``Content-Encoding``);
      ``/status/<code>`` answers that status; ``GET /sse`` streams two SSE events and holds the
      second until :attr:`release` is set (so a test can see the first arrive early);
    * if verification is configured and fails, the answer is 401.
    """

    jwks_url: str | None = None
    audience: str | None = None
    issuer: str | None = None
    token_header: str = "authorization"
    records: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    sse_finished: threading.Event = field(default_factory=threading.Event)
    sse_cancelled: threading.Event = field(default_factory=threading.Event)
    _keys: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last(self) -> Recorded:
        with self.lock:
            return self.records[-1]

    def _verify(self, headers: Mapping[str, str]) -> tuple[dict[str, Any] | None, str | None]:
        if self.jwks_url is None:
            return None, None
        value = headers.get(self.token_header.lower(), "")
        if not value.startswith("Bearer "):
            return None, f"no bearer token in {self.token_header}"
        token = value[len("Bearer ") :]
        try:
            kid = str(jwt.get_unverified_header(token).get("kid"))
            if kid not in self._keys:
                jwks = httpx.get(self.jwks_url, timeout=10).json()
                self._keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"] if k.get("use", "sig") == "sig"}
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._keys[kid].key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "PS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return claims, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        claims, error = await asyncio.to_thread(self._verify, headers)
        with self.lock:
            self.records.append(Recorded(scope["method"], scope["path"], headers, body, claims, error))
        if self.jwks_url is not None and claims is None:
            await _plain(send, 401, json.dumps({"error": error}).encode())
            return
        if scope["path"] == "/sse":
            await self._sse(receive, send)
        elif scope["path"] == "/echo":
            ctype = headers.get("content-type", "application/octet-stream").encode()
            extra = (
                [(b"content-encoding", headers["x-echo-encoding"].encode())]
                if "x-echo-encoding" in headers
                else []
            )
            await _plain(send, 200, body, ctype, extra)
        elif scope["path"].startswith("/status/"):
            await _plain(send, int(scope["path"].rsplit("/", 1)[1]), b'{"status":"as asked"}')
        else:
            reply = {"jsonrpc": "2.0", "id": 1, "result": {"seen_path": scope["path"], "bytes": len(body)}}
            await _plain(send, 200, json.dumps(reply).encode(), b"application/json")

    async def _sse(self, receive: Receive, send: Send) -> None:
        self.sse_finished.clear()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )

        async def wait_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        disconnected = asyncio.ensure_future(wait_disconnect())
        try:
            await send({"type": "http.response.body", "body": b"id: 1\ndata: first\n\n", "more_body": True})
            while not self.release.is_set():
                done, _ = await asyncio.wait({disconnected}, timeout=0.02)
                if done:
                    self.sse_cancelled.set()  # the proxy closed the stream before we finished
                    return
            await send({"type": "http.response.body", "body": b"id: 2\ndata: second\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.sse_finished.set()
        finally:
            disconnected.cancel()


async def _plain(
    send: Send,
    status: int,
    body: bytes,
    ctype: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", ctype),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------------
# runconfig.json like the operator's


def runconfig_for(
    *,
    token_url: str,
    audience: str,
    client_id: str = PROXY_CLIENT_ID,
    scopes: list[str] | None = None,
    header_name: str | None = None,
    target_port: int | None = None,
    port: int = 8080,
    issuer: str | None = None,
    oidc_audience: str | None = None,
    name: str = "e2e-server",
) -> dict[str, Any]:
    """A runconfig.json shaped like the operator's ConfigMap output (upstream key order)."""
    te: dict[str, Any] = {"audience": audience, "client_id": client_id}
    if header_name:
        te["external_token_header_name"] = header_name
    te["header_strategy"] = "custom" if header_name else "replace"
    if scopes:
        te["scopes"] = scopes
    te["token_url"] = token_url
    rc: dict[str, Any] = {
        "schema_version": "v0.1.0",
        "image": "example.test/mcp/server:1",
        "name": name,
        "container_name": name,
        "base_name": name,
        "transport": "streamable-http",
        "host": "127.0.0.1",
        "port": port,
    }
    if target_port:
        rc["target_port"] = target_port
    rc["permission_profile_name_or_path"] = "network"
    rc["permission_profile"] = {
        "name": "network",
        "network": {"outbound": {"insecure_allow_all": True}, "inbound": {}},
    }
    if issuer:
        rc["oidc_config"] = {
            "Issuer": issuer,
            "Audience": oidc_audience or "",
            "JWKSURL": "",
            "AllowPrivateIP": False,
        }
    rc["proxy_mode"] = "streamable-http"
    rc["middleware_configs"] = [{"type": "tokenexchange", "parameters": {"token_exchange_config": te}}]
    return rc


# ------------------------------------------------------------------------------------------------
# one Keycloak per test process, shared by every fixture that asks for it

_shared: KeycloakServer | None = None
_shared_users = 0
_shared_lock = threading.Lock()


def acquire_keycloak(log_dir: Path) -> KeycloakServer:
    """Start the process-wide Keycloak on first use; every call needs a :func:`release_keycloak`."""
    global _shared, _shared_users
    with _shared_lock:
        if _shared is None:
            home = install_keycloak()
            java_home = find_jdk(21)
            progress(f"Keycloak: JAVA_HOME={java_home} (java {java_major(java_home)})")
            server = KeycloakServer(home, java_home, log_dir / "keycloak.log")
            server.start()
            _shared = server
        _shared_users += 1
        return _shared


def release_keycloak() -> None:
    """Drop one user; the last one stops Keycloak."""
    global _shared, _shared_users
    with _shared_lock:
        _shared_users -= 1
        if _shared_users <= 0 and _shared is not None:
            server, _shared = _shared, None
            rss = rss_kib(server.proc.pid) if server.proc is not None else 0
            progress(f"Keycloak: RSS at the end of the session {rss / 1024:.0f} MiB")
            server.stop()


def _stop_at_exit() -> None:  # safety net (e.g. an interrupted session that skipped teardown)
    if _shared is not None:
        _shared.stop()


atexit.register(_stop_at_exit)
