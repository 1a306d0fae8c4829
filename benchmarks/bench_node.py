"""The real node's cost: start-up time and memory with CoreDNS and one demo pod running.

    .venv/bin/python benchmarks/bench_node.py [--out benchmarks/results/node.txt]

Starts a local cluster with a real node (cached binaries and images), imports the demo MCP
server's image, runs one pod of it, and prints: how long each step took, the RSS of containerd,
the kubelet, kube-proxy and the containerd shims, and the pods' memory (the ``/kubepods``
cgroup: CoreDNS + the demo pod), with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from devcluster import ControlPlane
from devcluster.hostnet import CGROUP_ROOT, KUBEPODS, shim_pids
from devcluster.podkit import create, python_pod_spec, ready_pod


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pods_mib() -> tuple[float, float]:
    """(usage, working set) of the /kubepods memory cgroup, MiB."""
    d = CGROUP_ROOT / "memory" / KUBEPODS
    usage = int((d / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (d / "memory.stat").read_text().splitlines())
    return usage / 2**20, (usage - int(stat.get("total_inactive_file", 0))) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    lines = [f"machine: {os.cpu_count()} cores, load average before {os.getloadavg()}"]
    t0 = time.monotonic()
    with ControlPlane(node="real", quiet=True) as cp:
        lines.append(f"cluster with a real node ready (CoreDNS Running): {time.monotonic() - t0:.1f}s")
        t1 = time.monotonic()
        image = cp.node.load("demo-mcp")
        lines.append(f"demo-mcp image imported: {time.monotonic() - t1:.1f}s")
        t2 = time.monotonic()
        create(
            cp,
            "/api/v1/namespaces/default/pods",
            {
                "metadata": {"name": "demo", "labels": {"app": "demo"}},
                "spec": python_pod_spec(image, "import time\nprint('up', flush=True)\ntime.sleep(3600)"),
            },
        )
        ready_pod(cp, "default", "app=demo")
        lines.append(f"one demo pod created -> Ready: {time.monotonic() - t2:.1f}s")
        time.sleep(5)
        pids = cp.pids()
        total = 0.0
        for name in ("containerd", "kubelet", "kube-proxy"):
            mib = rss_mib(pids[name])
            total += mib
            lines.append(f"  {name:<11} RSS {mib:6.1f} MiB")
        shims = shim_pids(cp.node.containerd_address)
        shim_mib = sum(rss_mib(p) for p in shims)
        total += shim_mib
        lines.append(f"  {len(shims)} shims    RSS {shim_mib:6.1f} MiB")
        usage, working = pods_mib()
        lines.append(f"  pods (CoreDNS + demo) cgroup usage {usage:.1f} MiB, working set {working:.1f} MiB")
        lines.append(f"node total (processes + pods' working set): {total + working:.1f} MiB")
    lines.append(f"load average after {os.getloadavg()}")
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
