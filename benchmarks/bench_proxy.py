"""Benchmark ``thv proxy`` on loopback (bounded in count and time; prints progress to stderr).

Processes: this one (load generator), one serving a tiny MCP-server stand-in and a fake RFC 8693
token endpoint, and the real ``python -m thv proxy`` in front of the stand-in.

Measures:
1. added latency of the proxy over a direct call, p50/p99, with a cache hit (sequential requests
   on one keep-alive connection);
2. throughput at 1, 16 and 64 concurrent clients, direct and through the proxy;
3. token-endpoint calls for 1,000 concurrent requests carrying one (new) token (goal: 1), and the
   same with ``--no-token-cache`` for 200 requests (upstream ToolHive behaviour: one per request).

Usage: ``.venv/bin/python benchmarks/bench_proxy.py [--quick] [--out benchmarks/results/proxy.txt]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-client-secret"
PROVIDER_DELAY = 0.05  # seconds the fake token endpoint takes per exchange


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# the servers process (--serve UPSTREAM_PORT TOKEN_PORT)


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


def _make_apps() -> tuple[Any, Any]:
    reply = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}).encode()
    calls = {"n": 0}

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

    async def token_endpoint(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if scope["path"] == "/count":
            payload = json.dumps({"calls": calls["n"]}).encode()
        elif scope["path"] == "/reset":
            calls["n"] = 0
            payload = b"{}"
        else:
            calls["n"] += 1
            await asyncio.sleep(PROVIDER_DELAY)
            from urllib.parse import parse_qs

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

    return upstream, token_endpoint


def serve(upstream_port: int, token_port: int) -> None:
    import uvicorn

    upstream, token_endpoint = _make_apps()

    def server(app: Any, port: int) -> uvicorn.Server:
        return uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False
            )
        )

    async def main() -> None:
        await asyncio.gather(
            server(upstream, upstream_port).serve(), server(token_endpoint, token_port).serve()
        )

    asyncio.run(main())


# ------------------------------------------------------------------------------------------------
# process management


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {timeout} s")


@contextlib.contextmanager
def process(
    cmd: list[str], port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
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


def proxy_cmd(port: int, upstream_port: int, token_port: int, *extra: str) -> list[str]:
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


# ------------------------------------------------------------------------------------------------
# measurements


BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


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
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
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
    client = RawClient(port, "/mcp", token)
    samples: list[float] = []
    try:
        for _ in range(50):  # warm-up: connection, cache fill
            assert await client.call() == 200
        deadline = time.monotonic() + budget
        while len(samples) < count and time.monotonic() < deadline:
            t0 = time.perf_counter()
            status = await client.call()
            samples.append((time.perf_counter() - t0) * 1000)
            assert status == 200, status
    finally:
        await client.close()
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


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("httpx", "httpcore", "uvicorn", "sniffio", "httptools", "uvloop"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} absent")
    return ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--serve", nargs=2, type=int, metavar=("UPSTREAM_PORT", "TOKEN_PORT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "proxy.txt"))
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return 0

    load_before = os.getloadavg()[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    samples_n, budget, tp_seconds = (300, 10.0, 2.0) if args.quick else (3000, 40.0, 6.0)
    upstream_port, token_port, proxy_port, nocache_port = free_port(), free_port(), free_port(), free_port()
    env = {"TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET": SECRET, "OTEL_TRACES_EXPORTER": "none"}
    lines: list[str] = []

    def report(line: str) -> None:
        say(line)
        lines.append(line)

    say("starting the MCP-server stand-in and the fake token endpoint")
    servers = [sys.executable, __file__, "--serve", str(upstream_port), str(token_port)]
    with (
        process(servers, upstream_port) as servers_proc,
        process(proxy_cmd(proxy_port, upstream_port, token_port), proxy_port, env),
    ):
        wait_port(token_port, servers_proc)
        token = "bench-subject-token-0001"

        say(f"latency: up to {samples_n} sequential requests each (direct, then through the proxy)")
        d = asyncio.run(latency(upstream_port, token, samples_n, budget))
        p = asyncio.run(latency(proxy_port, token, samples_n, budget))
        report(f"latency direct      n={len(d)} p50={pct(d, 0.5):.3f} ms p99={pct(d, 0.99):.3f} ms")
        report(
            f"latency via proxy   n={len(p)} p50={pct(p, 0.5):.3f} ms p99={pct(p, 0.99):.3f} ms (cache hit)"
        )
        report(
            f"added by the proxy  p50=+{pct(p, 0.5) - pct(d, 0.5):.3f} ms p99=+{pct(p, 0.99) - pct(d, 0.99):.3f} ms "
            f"(mean +{statistics.fmean(p) - statistics.fmean(d):.3f} ms)"
        )

        for concurrency in (1, 16, 64):
            say(f"throughput with {concurrency} concurrent clients ({tp_seconds:g} s each)")
            rd = asyncio.run(throughput(upstream_port, token, concurrency, tp_seconds))
            rp = asyncio.run(throughput(proxy_port, token, concurrency, tp_seconds))
            report(f"throughput c={concurrency:<3} direct={rd:8.0f} req/s  via proxy={rp:8.0f} req/s")

        say("1,000 concurrent requests with one new token")
        provider(token_port, "reset")
        statuses = asyncio.run(burst(proxy_port, "bench-subject-token-burst", 1000))
        calls = provider(token_port, "count")
        report(f"burst 1000 concurrent, one token: provider calls={calls} statuses={statuses} (goal: 1)")

    with (
        process(servers, upstream_port),
        process(proxy_cmd(nocache_port, upstream_port, token_port, "--no-token-cache"), nocache_port, env),
    ):
        say("the same with --no-token-cache (upstream behaviour), 200 requests")
        provider(token_port, "reset")
        statuses = asyncio.run(burst(nocache_port, "bench-subject-token-nocache", 200))
        calls = provider(token_port, "count")
        report(f"burst 200 concurrent, --no-token-cache: provider calls={calls} statuses={statuses}")

    header = [
        "# thv proxy benchmark (benchmarks/bench_proxy.py)",
        f"# date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"# machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"1-min load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}",
        f"# {versions()}",
        "# loopback only; load generator, proxy and stand-in servers share the 2 cores; fake token endpoint",
        f"# answers after {PROVIDER_DELAY * 1000:.0f} ms; client: raw asyncio HTTP/1.1 keep-alive connections",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    if not args.quick:
        Path(args.out).write_text(text)
        say(f"written to {args.out}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
