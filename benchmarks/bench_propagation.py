"""One MCPExternalAuthConfig change → N referencing MCPServers re-rendered.

Measures, on the real local control plane with the operator in-process (ConfigMap mode),
for N = 1, 10, 100: the time until every server's RunConfig ConfigMap and Deployment carry
the new hash, and the operator's API writes counted from the apiserver's audit log (for the
change, and for a resync with nothing changed). Prints a table and writes
``benchmarks/results/propagation.txt``. Run: ``.venv/bin/python benchmarks/bench_propagation.py``.
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

from devcluster import ControlPlane
from thvtest.harness import OPERATOR_USER, install_crds, operator_kubeconfig, run_operator, wait_for

ROOT = Path(__file__).resolve().parents[1]
G = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"
SIZES = (1, 10, 100)


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    rows: list[tuple[int, float, int, dict[str, int], int]] = []
    with ControlPlane() as cp, tempfile.TemporaryDirectory() as tmp:
        install_crds(cp)
        kubeconfig = operator_kubeconfig(cp, Path(tmp))
        for n in SIZES:
            ns = f"bench-{n}"
            cp.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            cp.api_request(
                "POST",
                f"/api/v1/namespaces/{ns}/secrets",
                {"metadata": {"name": "s"}, "stringData": {"k": "v"}},
            )
            cfg = {
                "apiVersion": "toolhive.stacklok.dev/v1alpha1",
                "kind": "MCPExternalAuthConfig",
                "metadata": {"name": "auth"},
                "spec": {
                    "type": "tokenExchange",
                    "tokenExchange": {
                        "tokenUrl": "https://idp.example.com/token",
                        "clientId": "c",
                        "clientSecretRef": {"name": "s", "key": "k"},
                        "audience": "a0",
                    },
                },
            }
            cp.api_request("POST", f"{G}/{ns}/mcpexternalauthconfigs", cfg)
            with run_operator(kubeconfig, namespaces=[ns], use_configmap=True) as running:
                say(f"N={n}: creating {n} MCPServers")
                for i in range(n):
                    cp.api_request(
                        "POST",
                        f"{G}/{ns}/mcpservers",
                        {
                            "apiVersion": "toolhive.stacklok.dev/v1alpha1",
                            "kind": "MCPServer",
                            "metadata": {"name": f"s{i}"},
                            "spec": {
                                "image": "example.invalid/mcp:1",
                                "externalAuthConfigRef": {"name": "auth"},
                            },
                        },
                    )

                def hashes_done(n: int = n, ns: str = ns) -> bool:
                    _, body = cp.api_request("GET", f"{G}/{ns}/mcpservers")
                    return (
                        sum(
                            1
                            for s in body["items"]
                            if (s.get("status") or {}).get("phase") == "Running"
                            and (s.get("status") or {}).get("externalAuthConfigHash")
                        )
                        == n
                    )

                wait_for(hashes_done, 300, f"{n} servers Running")
                time.sleep(3)
                _, c = cp.api_request("GET", f"{G}/{ns}/mcpexternalauthconfigs/auth")
                old = c["status"]["configHash"]
                say(f"N={n}: changing the config")
                mark = cp.audit.mark()
                t0 = time.monotonic()
                cp.api_request(
                    "PATCH",
                    f"{G}/{ns}/mcpexternalauthconfigs/auth",
                    {"spec": {"tokenExchange": {"audience": "a1"}}},
                )

                def propagated(ns: str = ns, old: str = old, n: int = n) -> bool:
                    _, deps = cp.api_request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments")
                    _, cms = cp.api_request("GET", f"/api/v1/namespaces/{ns}/configmaps")
                    dep_ok = all(
                        (d["spec"]["template"]["metadata"].get("annotations") or {}).get(
                            "toolhive.stacklok.dev/externalauthconfig-hash"
                        )
                        not in (None, old)
                        for d in deps["items"]
                    )
                    cm_ok = (
                        sum(
                            1
                            for m in cms["items"]
                            if m["metadata"]["name"].endswith("-runconfig")
                            and '"a1"' in m["data"].get("runconfig.json", "")
                        )
                        == n
                    )
                    return dep_ok and cm_ok and len(deps["items"]) == n

                wait_for(propagated, 300, "propagation")
                latency = time.monotonic() - t0
                time.sleep(5)  # status writes and echoes settle
                writes = cp.audit.writes(mark, user=OPERATOR_USER, namespace=ns)
                by: collections.Counter[str] = collections.Counter(
                    f"{w.object_ref.resource}{'/' + w.object_ref.subresource if w.object_ref.subresource else ''}"
                    for w in writes
                )
                say(f"N={n}: resync with nothing changed")
                mark = cp.audit.mark()

                running.call(running.operator.resync_all)
                time.sleep(5)
                idle = len(cp.audit.writes(mark, user=OPERATOR_USER, namespace=ns))
                rows.append((n, latency, len(writes), dict(by), idle))
    lines = [
        "| N servers | propagation (s) | operator writes for the change | per server | by resource | writes on resync |",
        "|---|---|---|---|---|---|",
    ]
    for n, lat, total, by_resource, idle in rows:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(by_resource.items()))
        lines.append(f"| {n} | {lat:.2f} | {total} | {total / n:.2f} | {detail} | {idle} |")
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results" / "propagation.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# {time.strftime('%Y-%m-%d %H:%M')} on a 2-core machine, ConfigMap mode\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
