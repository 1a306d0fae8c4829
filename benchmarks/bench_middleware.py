"""Added latency of the MCP middleware chain in ``thv proxy``, per MCP call (loopback, bounded).

Processes: this one (load generator + a JWKS server thread), the stand-ins of ``bench_proxy.py``
(an MCP server answering every POST at once, a fake RFC 8693 token endpoint), and the real
``python -m thv proxy --runconfig …`` in front, configured three ways (ConfigMap mode):

* ``exchange``   — token exchange alone (cache hit), no validation, no MCP middleware;
* ``auth``       — + OIDC validation of the caller's RS256 JWT (JWKS cached);
* ``full``       — + tool filter and override, Cedar authorization, audit (to a file): the chain
  of issue 15 (``auth + exchange cache hit + filter + authz + audit``).

Each request is one ``tools/call`` of the overridden name ``say`` (rewritten to ``echo``,
authorized by a Cedar policy on the caller's ``sub``), sequential on one keep-alive connection per proxy, the three configurations interleaved
request by request so the shared machine's noise hits them alike.

Usage: ``.venv/bin/python benchmarks/bench_middleware.py [--quick] [--out benchmarks/results/middleware.txt]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp

REPO = bp.REPO
ISSUER = "https://idp.bench.example"
CALL = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"say","arguments":{"text":"hi"}}}'


def _jwks_app(jwks: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(jwks)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": jwks})

    return app


def _serve_in_thread(app: Any, port: int) -> Any:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    return server


def _runconfig(kind: str, token_port: int, jwks_port: int, audit_log: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": "v0.1.0",
        "name": "bench",
        "image": "bench",
        "transport": "streamable-http",
        "target_port": 9,
        "token_exchange_config": {
            "token_url": f"http://127.0.0.1:{token_port}/token",
            "client_id": "bench-proxy",
            "client_secret": "",
            "audience": "mcp-server",
        },
    }
    if kind in ("auth", "full"):
        doc["oidc_config"] = {
            "Issuer": ISSUER,
            "Audience": "mcp-proxy",
            "JWKSURL": f"http://127.0.0.1:{jwks_port}/jwks",
            "AllowPrivateIP": True,
        }
    if kind == "full":
        doc["tools_filter"] = ["say"]
        doc["tools_override"] = {"echo": {"name": "say", "description": "Say it."}}
        doc["authz_config"] = {
            "version": "v1",
            "type": "cedarv1",
            "cedar": {
                "policies": [
                    'permit(principal, action == Action::"call_tool", resource == Tool::"echo") '
                    'when { principal.claim_sub == "bench-user" };'
                ],
                "entities_json": "[]",
            },
        }
        doc["audit_config"] = {"max_data_size": 1024, "log_file": audit_log}
    return doc


KINDS = ("exchange", "auth", "full")


async def _interleaved(
    ports: dict[str, int], token: str, count: int, budget: float
) -> dict[str, list[float]]:
    clients = {kind: bp.RawClient(port, "/mcp", token) for kind, port in ports.items()}
    samples: dict[str, list[float]] = {kind: [] for kind in ports}
    try:
        for _ in range(50):  # warm-up: connections, JWKS, exchange cache
            for client in clients.values():
                assert await client.call() == 200
        deadline = time.monotonic() + budget
        while len(samples["full"]) < count and time.monotonic() < deadline:
            for kind, client in clients.items():
                t0 = time.perf_counter()
                status = await client.call()
                samples[kind].append((time.perf_counter() - t0) * 1000)
                assert status == 200, (kind, status)
    finally:
        for client in clients.values():
            await client.close()
    return samples


async def _micro(count: int) -> list[str]:
    """The chain's own cost per call, in process (no network): ``McpChain.handle`` around a forward
    that answers at once, with filter + override + Cedar + audit (to /dev/null), vs the bare forward."""
    sys.path.insert(0, str(REPO / "tests" / "middleware"))
    from chainlib import drive  # type: ignore[import-not-found]  # the tests' in-process driver

    from thv.middleware.chain import build_chain
    from thv.runner.config import runner_config_from_runconfig

    doc = _runconfig("full", 1, 1, os.devnull)
    config = runner_config_from_runconfig(json.dumps(doc).encode(), image="-", env={})
    chain = build_chain(config.middleware, server_name="bench", transport="streamable-http")
    assert chain is not None
    claims = {"sub": "bench-user", "iss": ISSUER, "aud": "mcp-proxy"}
    answer = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'
    out = []
    for label, mw in (("forward only", None), ("chain", chain)):
        samples = []
        for i in range(count + 200):
            t0 = time.perf_counter()
            if mw is None:
                await drive(_NoChain(), CALL, response=answer)
            else:
                await drive(mw, CALL, response=answer, claims=claims)
            if i >= 200:
                samples.append((time.perf_counter() - t0) * 1000)
        out.append(
            f"in-process {label:<12} p50 {bp.pct(samples, 0.5):.3f} ms  p99 {bp.pct(samples, 0.99):.3f} ms"
        )
    return out


class _NoChain:
    async def handle(
        self, scope: Any, receive: Any, send: Any, headers: Any, claims: Any, forward: Any
    ) -> int:
        return int(await forward(scope, receive, send, headers))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument(
        "--micro", action="store_true", help="only the in-process cost of the chain (appended)"
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "middleware.txt"))
    args = parser.parse_args()
    if args.micro:
        lines = asyncio.run(_micro(300 if args.quick else 3000))
        print("\n".join(lines))
        with open(args.out, "a") as fh:
            fh.write("\n".join(lines) + "\n")
        return 0
    samples_n, budget = (300, 10.0) if args.quick else (3000, 90.0)
    bp.BODY = CALL  # RawClient sends bp.BODY

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**public, "kid": "bench", "alg": "RS256", "use": "sig"}]}).encode()
    now = int(time.time())
    token = jwt.encode(
        {"iss": ISSUER, "aud": "mcp-proxy", "sub": "bench-user", "iat": now, "exp": now + 3600},
        key,
        algorithm="RS256",
        headers={"kid": "bench"},
    )
    upstream_port, token_port, jwks_port = bp.free_port(), bp.free_port(), bp.free_port()
    jwks_server = _serve_in_thread(_jwks_app(jwks), jwks_port)
    load_before = os.getloadavg()[0]
    servers = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_proxy.py"),
        "--serve",
        str(upstream_port),
        str(token_port),
    ]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        servers_proc = stack.enter_context(bp.process(servers, upstream_port))
        bp.wait_port(token_port, servers_proc)
        audit_log = str(Path(tmp) / "audit.log")
        ports: dict[str, int] = {}
        for kind in KINDS:
            path = Path(tmp) / f"{kind}.json"
            path.write_text(json.dumps(_runconfig(kind, token_port, jwks_port, audit_log)))
            ports[kind] = bp.free_port()
            cmd = [
                sys.executable,
                "-m",
                "thv",
                "proxy",
                f"--runconfig={path}",
                f"--port={ports[kind]}",
                f"--target=http://127.0.0.1:{upstream_port}",
                "--log-level=WARNING",
            ]
            stack.enter_context(
                bp.process(cmd, ports[kind], env={"TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET": bp.SECRET})
            )
        bp.say(
            f"measuring {samples_n} tools/call per configuration, interleaved (noise hits all three alike)"
        )
        results = asyncio.run(_interleaved(ports, token, samples_n, budget))
        events = Path(audit_log).read_text().splitlines()
        assert events and json.loads(events[-1])["target"]["name"] == "echo"
        bp.say(f"full: {len(events)} audit events written")
    jwks_server.should_exit = True

    def row(kind: str) -> str:
        s = results[kind]
        return f"{kind:<9} n={len(s):>5}  p50 {bp.pct(s, 0.5):6.2f} ms  p99 {bp.pct(s, 0.99):6.2f} ms  mean {statistics.fmean(s):6.2f} ms"

    base, full, auth = results["exchange"], results["full"], results["auth"]
    lines = [
        f"# bench_middleware {time.strftime('%Y-%m-%d %H:%M')} (loopback, 2 shared cores, load before {load_before:.2f})",
        "# sequential tools/call on one keep-alive connection; exchange = cache hit",
        row("exchange"),
        row("auth"),
        row("full"),
        f"added by the full chain over the exchange alone: p50 +{bp.pct(full, 0.5) - bp.pct(base, 0.5):.2f} ms, "
        f"p99 +{bp.pct(full, 0.99) - bp.pct(base, 0.99):.2f} ms",
        f"  of which OIDC validation: p50 +{bp.pct(auth, 0.5) - bp.pct(base, 0.5):.2f} ms; "
        f"filter + authz + audit: p50 +{bp.pct(full, 0.5) - bp.pct(auth, 0.5):.2f} ms, "
        f"p99 +{bp.pct(full, 0.99) - bp.pct(auth, 0.99):.2f} ms",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
