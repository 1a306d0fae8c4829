"""What one MCPServer's cached objects cost in the operator's memory, decoded and packed.

The objects are the ones thv renders for bench_compare's server (ConfigMap mode), made to look
live (uid, resourceVersion, managedFields, a Deployment status, a proxy pod's status), 1,000
copies of each kind with distinct names. ``tracemalloc`` measures each kind decoded into the
Struct thv caches; the packed form is what :class:`thv.sources.store.Store` keeps for the owned
kinds and pods (the Struct re-encoded as JSON, zlib level 1), with its encode and decode costs.
The resolver's remembered result (``Desired``) is measured the same way.

Run: ``.venv/bin/python benchmarks/bench_cache_memory.py`` (a few seconds, no cluster).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import msgspec
from bench_compare import extauth, server

from thv.api import k8s
from thv.api.crds import MCPExternalAuthConfig, MCPServer
from thv.render.desired import render
from thv.render.settings import OperatorSettings

N = 1000
TS = "2026-11-30T20:00:00Z"


def _live(obj: msgspec.Struct, i: int, extra: dict[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = msgspec.to_builtins(obj)
    meta = doc["metadata"]
    meta["name"] = meta["name"].replace("s0", f"s{i}")
    meta.update(
        uid=f"0c0e5b8a-6f1d-4b0e-9a55-{i:012d}",
        resourceVersion=str(100000 + i),
        creationTimestamp=TS,
        managedFields=[{"manager": "thv", "operation": "Apply", "fieldsV1": {"f:metadata": {}}}],
    )
    doc.update(extra or {})
    return msgspec.json.encode(doc)


def _pod(i: int) -> bytes:
    labels = {"toolhive": "true", "toolhive-name": f"s{i}", "app": "mcpserver", "pod-template-hash": "abcdef"}
    ready = [
        {"type": t, "status": "True"} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    running = {"name": "toolhive", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": TS}}}
    return msgspec.json.encode(
        {
            "metadata": {"name": f"s{i}-abc-xyz", "namespace": "ns", "uid": f"u{i}", "labels": labels},
            "status": {"phase": "Running", "conditions": ready, "containerStatuses": [running]},
        }
    )


def cases() -> dict[str, tuple[type[msgspec.Struct], Callable[[int], bytes], int]]:
    """kind → (cached type, live JSON of copy i, objects per server)."""
    srv = msgspec.convert(server(0), MCPServer)
    srv.metadata.namespace = "ns"
    d = render(
        srv,
        OperatorSettings(use_configmap=True),
        external_auth=msgspec.convert(extauth("a"), MCPExternalAuthConfig),
    )
    cond = {"status": "True", "lastUpdateTime": TS, "lastTransitionTime": TS, "message": "m" * 40}
    dep_status = {
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [{"type": "Available", **cond}, {"type": "Progressing", **cond}],
        }
    }
    assert d.runconfig_configmap is not None
    return {
        "MCPServer (kept decoded)": (MCPServer, lambda i: _live(srv, i, {"status": {"phase": "Running"}}), 1),
        "Deployment": (k8s.Deployment, lambda i: _live(d.deployment, i, dep_status), 1),
        "Service": (k8s.Service, lambda i: _live(d.service, i), 1),
        "ConfigMap (runconfig)": (k8s.ConfigMap, lambda i: _live(d.runconfig_configmap, i), 1),  # type: ignore[arg-type]
        "ServiceAccount": (k8s.ServiceAccount, lambda i: _live(d.proxy_runner_service_account, i), 2),
        "Role": (k8s.Role, lambda i: _live(d.proxy_runner_role, i), 1),
        "RoleBinding": (k8s.RoleBinding, lambda i: _live(d.proxy_runner_role_binding, i), 1),
        "Pod (proxy runner)": (k8s.Pod, _pod, 1),
    }


def _traced(make: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = make()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(kept), kept


def main() -> int:
    print(f"{'kind':26} {'decoded B':>10} {'packed B':>9} {'pack µs':>8} {'read µs':>8}")
    decoded_total = packed_total = 0.0
    for name, (typ, make, per_server) in cases().items():
        raws = [make(i) for i in range(N)]
        dec = msgspec.json.Decoder(typ)
        size, objs = _traced(lambda: [dec.decode(r) for r in raws])  # noqa: B023
        enc = msgspec.json.Encoder()
        t = time.perf_counter()
        packed = [zlib.compress(enc.encode(o), 1) for o in objs]
        pack_us = (time.perf_counter() - t) / N * 1e6
        t = time.perf_counter()
        for p in packed:
            dec.decode(zlib.decompress(p))
        read_us = (time.perf_counter() - t) / N * 1e6
        psize = sum(len(p) + 33 for p in packed) / N  # + the bytes object's header
        decoded_total += size * per_server
        packed_total += (size if typ is MCPServer else psize) * per_server
        print(f"{name:26} {size:10.0f} {psize:9.0f} {pack_us:8.1f} {read_us:8.1f}")
    srv = [msgspec.convert(server(i), MCPServer) for i in range(N)]
    ext = msgspec.convert(extauth("a"), MCPExternalAuthConfig)
    rsize, _ = _traced(
        lambda: [render(s, OperatorSettings(use_configmap=True), external_auth=ext) for s in srv]
    )
    print(
        f"per server, all decoded: {decoded_total / 1024:.1f} KiB; as cached (owned kinds packed): {packed_total / 1024:.1f} KiB"
    )
    print(f"the resolver's remembered result (Desired): {rsize / 1024:.1f} KiB per server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
