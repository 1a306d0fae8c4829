"""Benchmark the data plane: ``thv proxy`` against upstream ToolHive's ``thv proxy`` (bounded;
progress on stderr).

Everything runs in one run, on loopback, against the same stand-ins: one process serving a tiny
MCP-server stand-in (answers every POST at once), one serving a fake RFC 8693 token endpoint and
the JWKS of a fake OIDC issuer. In front of the stand-in, each doing the same work per request —
validate the caller's RS256 JWT against the JWKS (``iss``, ``aud``, ``exp``), exchange it (RFC
8693), inject the exchanged token, forward:

* ``thv``          — ``python -m thv proxy --runconfig …`` with OIDC + token exchange (cache hit);
* ``upstream``     — upstream's ``thv proxy`` v0.3.11 (``tools/toolhive/build.sh thv``) with the
  same OIDC and ``--token-exchange-*`` flags. Upstream has no exchange cache: it calls the token
  endpoint on every request (the fake endpoint answers at once for this part);
* ``upstream-oidc`` — upstream with OIDC validation only (no exchange): its bare proxy cost;
* ``thv-exchange`` — thv with the exchange alone (no validation, no MCP middleware);
* ``thv-full``     — thv with the full chain of issue 15: OIDC + exchange + tool filter and
  override + Cedar authorization + audit (to a file).

Measures:
1. latency per request, sequential on one keep-alive connection per target, all targets
   interleaved request by request (the shared machine's noise hits them alike): p50/p99 and the
   added latency over a direct call;
2. throughput at 1, 16 and 64 concurrent clients: direct, thv, upstream, upstream-oidc (each
   target's seconds split into slices taken round-robin, so load changes hit all alike);
3. CPU time each proxy process spends per request (user + system, from /proc, over its
   throughput slices) -- the figure load on the shared machine distorts least -- and RSS of
   every proxy process after the throughput runs (VmRSS, and the peak VmHWM);
4. token-endpoint calls per proxy during the run, and for 1,000 concurrent requests carrying one
   new token with a 50 ms token endpoint (thv goal: 1; upstream: one per request);
5. the PNG of the latency distributions (``--png``, default ``docs/img/proxy-latency.png``).

Each request is one MCP ``tools/call`` of ``say`` (the full chain rewrites it to ``echo`` and
authorizes it). Upstream's JWKS client refuses loopback and private addresses (its ``thv proxy``
has no flag to allow them) and plain HTTP unless ``INSECURE_DISABLE_URL_VALIDATION=true``, so
the run happens in a fresh network namespace (``unshare --net``; only loopback, no effect on the
host) where the JWKS is served on 198.18.0.1 (RFC 2544 benchmarking range) on ``lo``.

Usage: ``.venv/bin/python benchmarks/bench_proxy.py [--quick] [--no-upstream] [--out FILE] [--png FILE]``
(``--python PY`` runs thv's proxies with another interpreter, e.g. a venv with uvloop.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-client-secret"
PROVIDER_DELAY = 0.05  # seconds the fake token endpoint takes per exchange in the burst tests
ISSUER = "https://idp.bench.example"
BENCH_ADDR = "198.18.0.1"  # RFC 2544 benchmarking range, put on lo inside the namespace
NETNS_ENV = "THV_BENCH_NETNS"
UPSTREAM_ENV = "THV_BENCH_UPSTREAM"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# the servers processes (--serve UPSTREAM_PORT TOKEN_PORT [JWKS_PORT JWKS_FILE], --serve-backend,
# --serve-idp)


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


def _backend_app() -> Any:
    reply = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}).encode()

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await _read_body(receive)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(reply)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    return upstream


def _token_app() -> Any:
    """``POST /token[/<who>]`` exchanges (counted per path); ``GET /count`` the counts;
    ``GET /reset?delay=SECONDS`` zeroes them and sets the answer delay."""
    from urllib.parse import parse_qs

    calls: dict[str, int] = {}
    state = {"delay": PROVIDER_DELAY}

    async def token_endpoint(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path = scope["path"]
        if path == "/count":
            payload = json.dumps({"calls": sum(calls.values()), "by_path": calls}).encode()
        elif path == "/reset":
            calls.clear()
            query = parse_qs(scope.get("query_string", b"").decode())
            if "delay" in query:
                state["delay"] = float(query["delay"][0])
            payload = b"{}"
        else:
            calls[path] = calls.get(path, 0) + 1
            if state["delay"]:
                await asyncio.sleep(state["delay"])
            subject = parse_qs(body.decode()).get("subject_token", [""])[0]
            payload = json.dumps(
                {
                    "access_token": "exchanged-" + subject[-8:],
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 300,
                }
            ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return token_endpoint


def _jwks_app(jwks: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(jwks)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": jwks})

    return app


def _make_apps() -> tuple[Any, Any]:
    return _backend_app(), _token_app()


def _serve_all(apps: Sequence[tuple[Any, str, int]]) -> None:
    import uvicorn

    def server(app: Any, host: str, port: int) -> uvicorn.Server:
        return uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, lifespan="off", log_level="warning", access_log=False)
        )

    async def main() -> None:
        await asyncio.gather(*(server(app, host, port).serve() for app, host, port in apps))

    asyncio.run(main())


def serve(upstream_port: int, token_port: int) -> None:
    """The MCP-server stand-in and the token endpoint in one process (bench_middleware)."""
    upstream, token_endpoint = _make_apps()
    _serve_all([(upstream, "127.0.0.1", upstream_port), (token_endpoint, "127.0.0.1", token_port)])


# ------------------------------------------------------------------------------------------------
# process management


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {timeout} s")


@contextlib.contextmanager
def process(
    cmd: list[str], port: int, env: dict[str, str] | None = None, *, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log is not None else None  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=out, stderr=out
    )
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if out is not None:
            out.close()


def proxy_cmd(port: int, upstream_port: int, token_port: int, *extra: str) -> list[str]:
    """``thv proxy`` in flag mode with the exchange alone (bench_middleware, older callers)."""
    return [
        sys.executable,
        "-m",
        "thv",
        "proxy",
        f"--port={port}",
        f"--target=http://127.0.0.1:{upstream_port}",
        f"--token-exchange-url=http://127.0.0.1:{token_port}/token",
        "--token-exchange-client-id=bench-proxy",
        "--token-exchange-audience=mcp-server",
        "--log-level=WARNING",
        *extra,
    ]


def runconfig(kind: str, token_url: str, jwks_url: str, audit_log: str) -> dict[str, Any]:
    """thv's RunConfig (ConfigMap mode) for ``exchange`` (exchange alone), ``auth`` (OIDC +
    exchange: what upstream's ``thv proxy`` does) or ``full`` (+ filter, Cedar authz, audit)."""
    doc: dict[str, Any] = {
        "schema_version": "v0.1.0",
        "name": "bench",
        "image": "bench",
        "transport": "streamable-http",
        "target_port": 9,
        "token_exchange_config": {
            "token_url": token_url,
            "client_id": "bench-proxy",
            "client_secret": "",
            "audience": "mcp-server",
        },
    }
    if kind in ("auth", "full"):
        doc["oidc_config"] = {"Issuer": ISSUER, "Audience": "mcp-proxy", "JWKSURL": jwks_url}
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


# ------------------------------------------------------------------------------------------------
# measurements


BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"say","arguments":{"text":"hi"}}}'


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: far cheaper per request than httpx,
    so the load generator is not the bottleneck being measured."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.port = port
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def latency(port: int, token: str, count: int, budget: float) -> list[float]:
    return (await interleaved({"x": port}, token, count, budget))["x"]


async def interleaved(ports: dict[str, int], token: str, count: int, budget: float) -> dict[str, list[float]]:
    """Sequential requests on one keep-alive connection per target, the targets interleaved
    request by request (starting target rotated each round)."""
    clients = {name: RawClient(port, "/mcp", token) for name, port in ports.items()}
    samples: dict[str, list[float]] = {name: [] for name in ports}
    order = list(clients.items())
    try:
        for _ in range(50):  # warm-up: connections, JWKS, exchange cache
            for name, client in order:
                status = await client.call()
                assert status == 200, (name, status)
        deadline = time.monotonic() + budget
        rounds = 0
        while rounds < count and time.monotonic() < deadline:
            shift = rounds % len(order)
            for name, client in order[shift:] + order[:shift]:
                t0 = time.perf_counter()
                status = await client.call()
                samples[name].append((time.perf_counter() - t0) * 1000)
                assert status == 200, (name, status)
            rounds += 1
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))
    return samples


async def throughput(port: int, token: str, concurrency: int, seconds: float) -> float:
    clients = [RawClient(port, "/mcp", token) for _ in range(concurrency)]
    done = 0
    try:
        await asyncio.gather(*(c.call() for c in clients))  # connect + warm
        deadline = time.monotonic() + seconds

        async def worker(client: RawClient) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                status = await client.call()
                assert status == 200, status
                done += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker(c) for c in clients))
        elapsed = time.monotonic() - t0
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return done / elapsed


async def burst(port: int, token: str, count: int) -> dict[int, int]:
    clients = [RawClient(port, "/mcp", token) for _ in range(count)]
    for c in clients:  # connect first, so the requests themselves go out together
        c.reader, c.writer = await asyncio.open_connection("127.0.0.1", port)
    statuses: dict[int, int] = {}
    try:
        results = await asyncio.gather(*(c.call() for c in clients), return_exceptions=True)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    for r in results:
        code = r if isinstance(r, int) else -1
        statuses[code] = statuses.get(code, 0) + 1
    return statuses


def provider(token_port: int, op: str) -> int:
    r = httpx.get(f"http://127.0.0.1:{token_port}/{op}", timeout=10).json()
    return int(r.get("calls", 0))


def provider_by_path(token_port: int) -> dict[str, int]:
    r = httpx.get(f"http://127.0.0.1:{token_port}/count", timeout=10).json()
    return {str(k): int(v) for k, v in r.get("by_path", {}).items()}


def provider_reset(token_port: int, delay: float) -> None:
    httpx.get(f"http://127.0.0.1:{token_port}/reset", params={"delay": str(delay)}, timeout=10)


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (whole process, all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def versions(python: str) -> str:
    code = (
        "from importlib.metadata import version, PackageNotFoundError as E\n"
        "out = []\n"
        "for d in ('httpx', 'httpcore', 'h11', 'uvicorn', 'httptools', 'uvloop', 'pyjwt', 'anyio'):\n"
        "    try: out.append(f'{d} {version(d)}')\n"
        "    except E: out.append(f'{d} absent')\n"
        "print(', '.join(out))"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def thv_revision() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    dirty = git("status", "--porcelain", "--", "src", "benchmarks")
    return git("rev-parse", "--short", "HEAD") + (" (src/benchmarks modified)" if dirty else "")


# ------------------------------------------------------------------------------------------------
# network namespace and the upstream binary


def build_upstream() -> Path:
    say("upstream thv: tools/toolhive/build.sh thv (cached after the first build, ~8 min cold)")
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "toolhive" / "build.sh"), "thv"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"bench: tools/toolhive/build.sh thv failed (exit {proc.returncode})")
    return Path(lines[-1])


def reexec_in_netns(argv: list[str], upstream: Path | None) -> int:
    """Run this script again in a new network namespace with ``lo`` up and BENCH_ADDR on it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit("bench: needs unshare(1) (util-linux) for the network namespace")
    cmd = [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--user", "--map-root-user", "--net"]
    env = {**os.environ, NETNS_ENV: "1"}
    if upstream is not None:
        env[UPSTREAM_ENV] = str(upstream)
    return subprocess.call([*cmd, sys.executable, __file__, *argv], env=env)


def setup_netns() -> None:
    for args in (["link", "set", "lo", "up"], ["addr", "add", f"{BENCH_ADDR}/32", "dev", "lo"]):
        subprocess.run(["ip", *args], check=True)


# ------------------------------------------------------------------------------------------------
# the run


def draw(samples: dict[str, list[float]], rates: dict[str, dict[int, float]], path: Path, note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "direct": ("direct (no proxy)", "#444444", "-"),
        "thv": ("thv proxy (OIDC + exchange, cache hit)", "#1f77b4", "-"),
        "thv-full": ("thv proxy, full chain", "#1f77b4", ":"),
        "thv-before": ("thv proxy before this tuning (httpx forwarder)", "#7f7f7f", "--"),
        "thv-uvloop": ("thv proxy + uvloop/httptools", "#2ca02c", "-"),
        "upstream": ("upstream thv proxy v0.3.11 (OIDC + exchange)", "#d62728", "-"),
        "upstream-oidc": ("upstream thv proxy, OIDC only", "#d62728", ":"),
    }
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    for name, (label, color, ls) in styles.items():
        values = sorted(samples.get(name, []))
        if not values:
            continue
        n = len(values)
        ax.plot(values, [(i + 1) / n for i in range(n)], color=color, linestyle=ls, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency per request, ms (log scale)")
    ax.set_ylabel("fraction of requests ≤ x")
    ax.set_title("Latency distribution (sequential, keep-alive)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    names = [
        n for n in ("direct", "thv-before", "thv", "thv-uvloop", "upstream", "upstream-oidc") if n in rates
    ]
    levels = sorted({c for r in rates.values() for c in r})
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        label, color, ls = styles[name]
        xs = [j + i * width for j in range(len(levels))]
        bx.bar(
            xs,
            [rates[name].get(c, 0) for c in levels],
            width,
            label=label.split(" (")[0],
            color=color,
            alpha=0.45 if ls != "-" else 0.9,
            hatch="//" if ls != "-" else None,
        )
    bx.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(levels))])
    bx.set_xticklabels([f"{c} clients" for c in levels])
    bx.set_ylabel("requests/s")
    bx.set_title("Throughput")
    bx.legend(fontsize=7, loc="upper left", ncol=2)
    bx.set_ylim(0, max(v for r in rates.values() for v in r.values()) * 1.45)
    bx.grid(True, axis="y", alpha=0.3)
    fig.text(0.01, 0.01, note, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--serve", nargs=2, type=int, metavar=("UPSTREAM_PORT", "TOKEN_PORT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve-idp", nargs=3, metavar=("TOKEN_PORT", "JWKS_PORT", "JWKS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--no-upstream", action="store_true", help="thv only (no Go build, no namespace)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for thv's proxies")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=PYTHON[@SRC]",
        help="one more thv target like `thv` (OIDC + exchange), run by PYTHON with SRC/src first on "
        "the path (e.g. a checkout of the code before a change); measured alongside",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "proxy.txt"))
    parser.add_argument("--png", default=str(REPO / "docs" / "img" / "proxy-latency.png"))
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return 0
    if args.serve_backend:
        _serve_all([(_backend_app(), "127.0.0.1", args.serve_backend)])
        return 0
    if args.serve_idp:
        token_port, jwks_port, jwks = int(args.serve_idp[0]), int(args.serve_idp[1]), args.serve_idp[2]
        _serve_all(
            [
                (_token_app(), "127.0.0.1", token_port),
                (_jwks_app(Path(jwks).read_bytes()), BENCH_ADDR, jwks_port),
            ]
        )
        return 0
    if not os.environ.get(NETNS_ENV):
        upstream = None if args.no_upstream else build_upstream()
        return reexec_in_netns(sys.argv[1:], upstream)
    setup_netns()
    upstream_bin = os.environ.get(UPSTREAM_ENV)
    return run(args, Path(upstream_bin) if upstream_bin else None)


def run(args: argparse.Namespace, upstream_bin: Path | None) -> int:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    load_before = os.getloadavg()
    revision = thv_revision()  # of the tree the proxies start from (others may commit meanwhile)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    samples_n, budget, tp_seconds = (300, 15.0, 1.5) if args.quick else (3000, 120.0, 5.0)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**public, "kid": "bench", "alg": "RS256", "use": "sig"}]}).encode()

    def user_token(jti: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "mcp-proxy", "sub": "bench-user", "iat": now, "exp": now + 3600}
        return jwt.encode({**claims, "jti": jti}, key, algorithm="RS256", headers={"kid": "bench"})

    backend_port, token_port, jwks_port = free_port(), free_port(), free_port()
    jwks_url = f"http://{BENCH_ADDR}:{jwks_port}/jwks"
    token_base = f"http://127.0.0.1:{token_port}/token"
    env = {"TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET": SECRET, "OTEL_TRACES_EXPORTER": "none"}
    lines: list[str] = []

    def report(line: str) -> None:
        say(line)
        lines.append(line)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="thv-bench-")))
        (tmp / "jwks.json").write_bytes(jwks)
        audit_log = str(tmp / "audit.log")
        say("starting the MCP-server stand-in, the fake token endpoint and the JWKS")
        me = [sys.executable, __file__]
        stack.enter_context(process([*me, "--serve-backend", str(backend_port)], backend_port))
        idp = stack.enter_context(
            process([*me, "--serve-idp", str(token_port), str(jwks_port), str(tmp / "jwks.json")], token_port)
        )
        wait_port(jwks_port, idp, host=BENCH_ADDR)
        provider_reset(token_port, 0.0)

        ports: dict[str, int] = {"direct": backend_port}
        pids: dict[str, int] = {}
        for name, kind in (("thv", "auth"), ("thv-exchange", "exchange"), ("thv-full", "full")):
            path = tmp / f"{name}.json"
            path.write_text(json.dumps(runconfig(kind, f"{token_base}/{name}", jwks_url, audit_log)))
            ports[name] = free_port()
            cmd = [
                args.python,
                "-m",
                "thv",
                "proxy",
                f"--runconfig={path}",
                f"--port={ports[name]}",
                f"--target=http://127.0.0.1:{backend_port}",
                "--log-level=WARNING",
            ]
            say(f"starting {name}: thv proxy ({kind})")
            pids[name] = stack.enter_context(process(cmd, ports[name], env, log=tmp / f"{name}.log")).pid
        extras: list[str] = []
        for spec in args.extra:
            name, _, rest = spec.partition("=")
            python, _, src = rest.partition("@")
            path = tmp / f"{name}.json"
            path.write_text(json.dumps(runconfig("auth", f"{token_base}/{name}", jwks_url, audit_log)))
            ports[name] = free_port()
            cmd = [
                python or args.python,
                "-m",
                "thv",
                "proxy",
                f"--runconfig={path}",
                f"--port={ports[name]}",
                f"--target=http://127.0.0.1:{backend_port}",
                "--log-level=WARNING",
            ]
            extra_env = {**env, "PYTHONPATH": str(Path(src) / "src")} if src else env
            say(f"starting {name}: thv proxy (auth) by {python}{' from ' + src if src else ''}")
            pids[name] = stack.enter_context(
                process(cmd, ports[name], extra_env, log=tmp / f"{name}.log")
            ).pid
            extras.append(name)
        if upstream_bin is not None:
            home = tmp / "upstream-home"
            home.mkdir()
            kubeconfig = home / "kubeconfig"
            # upstream's `thv` refuses to start without a container runtime: TOOLHIVE_RUNTIME and
            # a kubeconfig of an unreachable server make Kubernetes "available" (`thv proxy` uses
            # none; the one-time group migration at start fails on it and is only logged)
            kubeconfig.write_text(
                "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://198.18.0.2:1'}}]\n"
                "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
                "current-context: c\n"
            )
            up_env = {
                **env,
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_STATE_HOME": str(home / "state"),
                "XDG_DATA_HOME": str(home / "data"),
                "KUBECONFIG": str(kubeconfig),
                "TOOLHIVE_RUNTIME": "kubernetes",
                "CI": "true",  # no update check (no internet here)
                "INSECURE_DISABLE_URL_VALIDATION": "true",  # JWKS over plain HTTP
            }
            for name, exchange in (("upstream", True), ("upstream-oidc", False)):
                ports[name] = free_port()
                cmd = [
                    str(upstream_bin),
                    "proxy",
                    "bench",
                    "--host=127.0.0.1",
                    f"--port={ports[name]}",
                    f"--target-uri=http://127.0.0.1:{backend_port}",
                    f"--oidc-issuer={ISSUER}",
                    "--oidc-audience=mcp-proxy",
                    f"--oidc-jwks-url={jwks_url}",
                ]
                if exchange:
                    cmd += [
                        f"--token-exchange-url={token_base}/{name}",
                        "--token-exchange-client-id=bench-proxy",
                        "--token-exchange-audience=mcp-server",
                    ]
                say(f"starting {name}: upstream thv proxy")
                pids[name] = stack.enter_context(
                    process(cmd, ports[name], up_env, log=tmp / f"{name}.log")
                ).pid
        token = user_token("bench-0001")

        say(f"latency: {samples_n} rounds of one request to each of {', '.join(ports)}, interleaved")
        samples = asyncio.run(interleaved(ports, token, samples_n, budget))
        d = samples["direct"]
        report(f"latency {'direct':<14} n={len(d):>5} p50={pct(d, 0.5):7.3f} ms p99={pct(d, 0.99):7.3f} ms")
        added: dict[str, tuple[float, float]] = {}
        for name, s in samples.items():
            if name == "direct":
                continue
            added[name] = (pct(s, 0.5) - pct(d, 0.5), pct(s, 0.99) - pct(d, 0.99))
            report(
                f"latency {name:<14} n={len(s):>5} p50={pct(s, 0.5):7.3f} ms p99={pct(s, 0.99):7.3f} ms  "
                f"added p50=+{added[name][0]:.3f} ms p99=+{added[name][1]:.3f} ms "
                f"(mean +{statistics.fmean(s) - statistics.fmean(d):.3f} ms)"
            )
        if "upstream" in added:
            report(
                f"added latency upstream/thv: p50 {added['upstream'][0] / added['thv'][0]:.2f}x, "
                f"p99 {added['upstream'][1] / added['thv'][1]:.2f}x"
            )
        full, base = samples["thv-full"], samples["thv-exchange"]
        report(
            f"full chain over the exchange alone (thv-full vs thv-exchange): "
            f"p50 +{pct(full, 0.5) - pct(base, 0.5):.3f} ms, p99 +{pct(full, 0.99) - pct(base, 0.99):.3f} ms"
        )
        calls = provider_by_path(token_port)
        report(
            "token endpoint calls during the latency run: "
            + ", ".join(f"{p.rsplit('/', 1)[-1]}={n}" for p, n in sorted(calls.items()))
        )

        rates: dict[str, dict[int, float]] = {}
        tp_targets = [n for n in ("direct", "thv", *extras, "upstream", "upstream-oidc") if n in ports]
        slices = 3 if args.quick else 5
        for concurrency in (1, 16, 64):
            say(
                f"throughput with {concurrency} concurrent clients ({tp_seconds:g} s per target, "
                f"in {slices} slices taken round-robin so load changes hit every target alike)"
            )
            got: dict[str, list[float]] = {name: [] for name in tp_targets}
            cpu: dict[str, float] = dict.fromkeys(tp_targets, 0.0)
            for _ in range(slices):
                for name in tp_targets:
                    before = cpu_seconds(pids[name]) if name in pids else 0.0
                    got[name].append(
                        asyncio.run(throughput(ports[name], token, concurrency, tp_seconds / slices))
                    )
                    if name in pids:
                        cpu[name] += cpu_seconds(pids[name]) - before
            for name in tp_targets:
                rates.setdefault(name, {})[concurrency] = statistics.fmean(got[name])
            per_request = {
                name: cpu[name] / (rates[name][concurrency] * tp_seconds) * 1e6
                for name in tp_targets
                if name in pids
            }
            report(
                f"proxy CPU per request c={concurrency:<3} "
                + "  ".join(f"{n}={us:5.0f} µs" for n, us in per_request.items())
            )
            row = "  ".join(f"{n}={rates[n][concurrency]:7.0f}" for n in tp_targets)
            ratio = (
                f"  thv/upstream={rates['thv'][concurrency] / rates['upstream'][concurrency]:.2f}x"
                if "upstream" in rates
                else ""
            )
            report(f"throughput c={concurrency:<3} req/s  {row}{ratio}")
        for name, pid in pids.items():
            rss, hwm = memory(pid)
            report(f"memory {name:<14} RSS {rss:6.1f} MiB  peak {hwm:6.1f} MiB")

        say("1,000 concurrent requests with one new token, token endpoint answering after 50 ms")
        for name in ("thv", "upstream"):
            if name not in ports:
                continue
            provider_reset(token_port, PROVIDER_DELAY)
            count = 1000 if name == "thv" else 200
            statuses = asyncio.run(burst(ports[name], user_token(f"burst-{name}"), count))
            n_calls = provider(token_port, "count")
            report(
                f"burst {name:<8} {count} concurrent, one token: token endpoint calls={n_calls} statuses={statuses}"
            )
        events = Path(audit_log).read_text().splitlines() if Path(audit_log).exists() else []
        say(f"thv-full: {len(events)} audit events written")

    upstream_version = "not run"
    if upstream_bin is not None:
        proc = subprocess.run(
            [str(upstream_bin), "version"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "CI": "true"},
        )
        upstream_version = " ".join(proc.stdout.split())[:160] or "unknown"
    load_after = os.getloadavg()
    header = [
        "# data plane: thv proxy vs upstream thv proxy (benchmarks/bench_proxy.py)",
        f"# command: {' '.join(['.venv/bin/python', 'benchmarks/bench_proxy.py', *sys.argv[1:]])}",
        f"# date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"# machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
        f"load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
        f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}",
        f"# thv {revision}; proxy interpreter {args.python}: {versions(args.python)}",
        f"# upstream: {upstream_version}",
        "# loopback in a private network namespace; load generator (raw asyncio HTTP/1.1 keep-alive),",
        "# proxies, stand-in MCP server and fake IdP share the cores; MCP call: tools/call, cache hit for thv",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    if not args.quick:
        Path(args.out).write_text(text)
        say(f"written to {args.out}")
    if args.png and not args.quick:
        note = (
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} shared cores, load {load_before[0]:.1f}→"
            f"{load_after[0]:.1f}; {' '.join(['bench_proxy.py', *sys.argv[1:]])}"
        )
        draw(samples, rates, Path(args.png), note)
        say(f"drawn to {args.png}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
