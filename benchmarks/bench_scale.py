"""10,000 servers: cold start with a CPU breakdown, warm restart, memory per cached object.

Same cluster, identities, scenario and observation as :mod:`bench_compare` (whose helpers this
uses): N MCPServers referencing one MCPExternalAuthConfig, ConfigMap mode, kwok makes the pods
Ready, writes counted from the audit log by user, objects observed with list+watch streams.

Per operator and N, on a fresh control plane:

  cold start    N servers exist, then the operator starts; the time until all N runconfig
                ConfigMaps and Deployments exist and until all N servers are ``Running``
                (bounded by ``--timeout``). Every ``--every`` seconds the CPU time used so far by
                each process (the operator, kube-apiserver, etcd, kube-controller-manager,
                kube-scheduler, kwok, and this benchmark's own watches) is sampled from
                ``/proc/<pid>/stat``: the breakdown of where the time went, and how it moved.
  steady        once the operator has made no write for 5 s: its RSS and (thv) the objects in
                its caches (``thv_store_objects``) -- memory per cached object, and its slope
                between the N of the run.
  warm restart  (thv) the operator process is replaced over the reconciled cluster, with a
                30 s resync period: the time until ``/readyz``, until the start's announce pass
                and the first periodic resync have both been processed (``thv_resyncs_total``
                >= 2 and every bus queue empty), the writes meanwhile (goal 0), RSS peak
                (``VmHWM``) and at the end.

Run: ``.venv/bin/python benchmarks/bench_scale.py`` (thv at N=1,000 and 10,000, then upstream
at 10,000), ``--ops thv --n 1000`` (quick), ``--timeout 2400``. Writes
``benchmarks/results/scale.txt`` and ``scale.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_compare import (
    USERS,
    Cluster,
    ColdResult,
    cluster,
    cold_watches,
    count_writes,
    machine,
    say,
    setup_namespace,
    wait_quiet,
    wait_trackers,
)

from thvtest.peer import OperatorProcess, build_peer

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
COMPONENTS = (
    "operator",
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "bench",
)


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (None when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuClock:
    """CPU seconds per component since :meth:`__init__`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.base = self._now()

    def _now(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            v = cpu_seconds(pid)
            if v is not None:
                out[name] = v
        t = os.times()
        out["bench"] = t.user + t.system
        return out

    def used(self) -> dict[str, float]:
        now = self._now()
        return {k: round(now[k] - self.base.get(k, 0.0), 1) for k in now}


def scrape(url: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value} (only what this benchmark reads)."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("thv_store_objects", "thv_resyncs_total", "thv_bus_queue_depth")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metrics_url(proc: OperatorProcess) -> str:
    assert proc.ready_url is not None
    return proc.ready_url.rsplit("/", 1)[0] + "/metrics"


@dataclass
class Sample:
    t: float
    cms: int
    deps: int
    running: int
    rss_mib: float
    cpu: dict[str, float]


@dataclass
class Restart:
    ready_seconds: float = 0.0
    resynced_seconds: float | None = None
    writes: int = 0
    by_resource: dict[str, int] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    rss_mib: float = 0.0
    objects: int = 0


@dataclass
class Scale(ColdResult):
    """bench_compare's cold-start result, plus the CPU by process, the steady state and the
    warm restart (``rss_mib`` is the RSS once the operator went quiet)."""

    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    objects: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    restart: Restart | None = None
    loads: list[float] = field(default_factory=list)


def _objects(url: str) -> dict[str, float]:
    return {k.split('"')[1]: v for k, v in scrape(url).items() if k.startswith("thv_store_objects{")}


def wait_resynced(proc: OperatorProcess, passes: int, timeout: float) -> bool:
    """Until ``thv_resyncs_total`` >= ``passes`` and every bus queue was empty twice in a row
    (the gauges refresh every 5 s)."""
    deadline = time.monotonic() + timeout
    url = metrics_url(proc)
    empty = 0
    while time.monotonic() < deadline:
        proc.check()
        m = scrape(url)
        queued = sum(v for k, v in m.items() if k.startswith("thv_bus_queue_depth"))
        if m.get("thv_resyncs_total", 0.0) >= passes and queued == 0:
            empty += 1
            if empty >= 2:
                return True
        else:
            empty = 0
        time.sleep(5.5)
    return False


def run(op: str, n: int, timeout: float, every: float, peer_bin: Path | None) -> Scale:
    res = Scale(op, n, timeout=timeout)
    label = f"{op} N={n}"
    say(f"{label}: fresh control plane")
    with cluster([op], peer_bin) as c:
        ns = f"{op}-s{n}"
        setup_namespace(c.cp, c.api, ns, n, label)
        watches, (cm_t, dep_t, run_t) = cold_watches(c.api, ns, n)
        try:
            mark = c.cp.audit.mark()
            proc = c.process(op, ns, f"s{n}", resync=600.0)
            with proc:
                clock = CpuClock({**c.cp.pids(), "operator": proc.pid})
                t0 = proc.started_at
                res.ready_seconds = proc.wait_ready(600)
                say(f"{label}: operator ready in {res.ready_seconds:.1f}s")
                trackers = [("configmaps", cm_t), ("deployments", dep_t), ("servers Running", run_t)]
                deadline = t0 + timeout
                while time.monotonic() < deadline:
                    done = wait_trackers(
                        trackers, min(every, deadline - time.monotonic()), label, proc, every=every
                    )
                    mem = proc.memory()
                    res.samples.append(
                        Sample(
                            round(time.monotonic() - t0, 1),
                            cm_t.count,
                            dep_t.count,
                            run_t.count,
                            round(mem.rss_mib, 1) if mem else 0.0,
                            clock.used(),
                        )
                    )
                    s = res.samples[-1]
                    say(
                        f"{label}: {s.t:.0f}s {s.cms}/{s.deps}/{s.running} cm/dep/Running, RSS {s.rss_mib:.0f} MiB, "
                        f"CPU s {', '.join(f'{k} {v:.0f}' for k, v in s.cpu.items())} (load {os.getloadavg()[0]:.1f})"
                    )
                    res.loads.append(round(os.getloadavg()[0], 1))
                    if done:
                        break
                res.wall = round(time.monotonic() - t0, 1)
                res.cpu = clock.used()
                if cm_t.done_at is not None and dep_t.done_at is not None:
                    res.objects_seconds = round(max(cm_t.done_at, dep_t.done_at) - t0, 1)
                if run_t.done_at is not None:
                    res.running_seconds = round(run_t.done_at - t0, 1)
                res.cms, res.deps, res.running = cm_t.count, dep_t.count, run_t.count
                mem = proc.memory()
                if mem is not None:
                    res.peak_rss_mib = round(mem.hwm_mib, 1)
                if res.running_seconds is not None:
                    wait_quiet(c.cp, mark, USERS[op], ns, quiet=5.0, cap=120.0)
                    time.sleep(5)
                    mem = proc.memory()
                    res.rss_mib = round(mem.rss_mib, 1) if mem else 0.0
                    if op == "thv":
                        res.objects = _objects(metrics_url(proc))
            by = count_writes(c.cp, mark, USERS[op], ns)
            res.writes, res.by_resource = sum(by.values()), dict(by)
            say(
                f"{label}: objects {res.objects_seconds}s, Running {res.running_seconds}s, "
                f"peak RSS {res.peak_rss_mib} MiB, steady {res.rss_mib} MiB, {res.writes} writes, CPU {res.cpu}"
            )
            if op == "thv" and res.running_seconds is not None:
                res.restart = warm_restart(c, ns, n, label)
        finally:
            for w in watches:
                w.stop()
    return res


def warm_restart(c: Cluster, ns: str, n: int, label: str) -> Restart:
    out = Restart()
    mark = c.cp.audit.mark()
    proc = c.process("thv", ns, f"r{n}", resync=30.0)
    with proc:
        out.ready_seconds = round(proc.wait_ready(600), 1)
        say(f"{label} warm restart: ready in {out.ready_seconds}s")
        if wait_resynced(proc, 2, 600):
            out.resynced_seconds = round(time.monotonic() - proc.started_at, 1)
        mem = proc.memory()
        if mem is not None:
            out.peak_rss_mib, out.rss_mib = round(mem.hwm_mib, 1), round(mem.rss_mib, 1)
        out.objects = int(sum(_objects(metrics_url(proc)).values()))
    by = count_writes(c.cp, mark, USERS["thv"], ns)
    out.writes, out.by_resource = sum(by.values()), dict(by)
    say(
        f"{label} warm restart: ready {out.ready_seconds}s, resync passed {out.resynced_seconds}s, "
        f"{out.writes} writes, RSS peak {out.peak_rss_mib} / end {out.rss_mib} MiB"
    )
    return out


def _fin_for(timeout: float) -> Callable[[float | None], str]:
    return lambda v: f"{v:.1f}" if v is not None else f"not in {timeout:.0f} s"


def report(results: list[Scale], header: list[str]) -> str:
    lines = [*header, ""]
    lines.append("cold start (s from process start; RSS MiB; CPU s per component over the run)")
    head = (
        "| op | N | ready | objects | Running | writes (/server) | peak RSS | steady RSS | "
        + " | ".join(COMPONENTS)
        + " | wall | load |"
    )
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        fin = _fin_for(r.timeout)
        cpu = " | ".join(f"{r.cpu.get(k, 0.0):.0f}" for k in COMPONENTS)
        lines.append(
            f"| {r.op} | {r.n:,} | {r.ready_seconds:.1f} | {fin(r.objects_seconds)} | {fin(r.running_seconds)} "
            f"({r.cms:,}/{r.deps:,}/{r.running:,}) | {r.writes:,} ({r.writes / r.n:.1f}) | {r.peak_rss_mib:.0f} | "
            f"{r.rss_mib:.0f} | {cpu} | {r.wall:.0f} | {min(r.loads or [0]):.1f}-{max(r.loads or [0]):.1f} |"
        )
    thv = [r for r in results if r.op == "thv" and r.objects]
    if thv:
        lines += ["", "memory per cached object (thv, steady after the cold start)"]
        lines += ["| N | cached objects | steady RSS MiB | KiB per object |", "|---|---|---|---|"]
        for r in thv:
            total = sum(r.objects.values())
            lines.append(f"| {r.n:,} | {total:,.0f} | {r.rss_mib:.0f} | {r.rss_mib * 1024 / total:.2f} |")
        if len(thv) >= 2:
            a, b = thv[0], thv[-1]
            da, db = sum(a.objects.values()), sum(b.objects.values())
            slope = (b.rss_mib - a.rss_mib) * 1024 / (db - da)
            lines.append(f"growth {a.n:,} → {b.n:,}: {slope:.2f} KiB per extra cached object")
        lines.append(
            "by kind at the largest N: " + ", ".join(f"{k} {v:.0f}" for k, v in thv[-1].objects.items())
        )
    rs = [r for r in results if r.restart is not None]
    if rs:
        lines += ["", "warm restart over the reconciled cluster (thv, resync period 30 s)"]
        lines += [
            "| N | ready (s) | start pass + first resync processed (s) | writes | peak RSS | RSS at end | cached objects |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rs:
            w = r.restart
            assert w is not None
            lines.append(
                f"| {r.n:,} | {w.ready_seconds:.1f} | {w.resynced_seconds} | {w.writes} {w.by_resource or ''} | "
                f"{w.peak_rss_mib:.0f} | {w.rss_mib:.0f} | {w.objects:,} |"
            )
    lines += ["", "timeline (s: configmaps/deployments/Running, operator RSS, CPU s so far)"]
    for r in results:
        lines.append(f"{r.op} N={r.n}:")
        for s in r.samples:
            cpu = " ".join(f"{k}={v:.0f}" for k, v in s.cpu.items())
            lines.append(f"  {s.t:7.1f}  {s.cms}/{s.deps}/{s.running}  {s.rss_mib:.0f} MiB  {cpu}")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Servers Running against time for each cold start, and its CPU by process (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"thv": "thv", "peer": "upstream v0.3.11"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    for r in results:
        ts = [0.0] + [s["t"] for s in r["samples"]]
        label = f"{names[r['op']]}, N={r['n']:,}"
        style = "-" if r["op"] == "thv" else "--"
        ax1.plot(ts, [0] + [s["deps"] for s in r["samples"]], style, alpha=0.5, label=f"{label}: Deployments")
        ax1.plot(ts, [0] + [s["running"] for s in r["samples"]], style, label=f"{label}: Running")
    ax1.set_xlabel("seconds from operator start")
    ax1.set_ylabel("servers")
    ax1.set_title("Cold start: Deployments created and servers Running")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    big = [r for r in results if r["n"] == max(x["n"] for x in results)]
    bottom = [0.0] * len(big)
    for comp in COMPONENTS:
        vals = [r["cpu"].get(comp, 0.0) for r in big]
        ax2.bar([names[r["op"]] for r in big], vals, bottom=bottom, label=comp)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    for i, r in enumerate(big):
        ax2.text(i, bottom[i], f"{r['wall']:.0f} s wall", ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("CPU seconds over the cold start")
    ax2.set_title(f"Where the time goes, N={big[0]['n']:,} (2 cores)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    say(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", default="thv,peer", help="operators, comma-separated (thv, peer)")
    ap.add_argument("--n", default="1000,10000", help="thv's sizes, comma-separated")
    ap.add_argument("--peer-n", default="10000", help="upstream's sizes")
    ap.add_argument("--timeout", type=float, default=2700.0, help="bound of each cold start (s)")
    ap.add_argument("--every", type=float, default=30.0, help="sampling period (s)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.txt"))
    ap.add_argument("--plot", type=Path, help="PNG of the results (default docs/img/scale.png)")
    ap.add_argument(
        "--plot-from",
        type=Path,
        nargs="+",
        help="only draw --plot from result JSON files (written beside --out)",
    )
    args = ap.parse_args(argv)
    png = args.plot or ROOT / "docs" / "img" / "scale.png"
    if args.plot_from:
        plot([r for f in args.plot_from for r in json.loads(f.read_text())], png)
        return 0
    ops = [o for o in args.ops.split(",") if o]
    peer_bin = build_peer() if "peer" in ops else None
    results: list[Scale] = []
    out = Path(args.out)
    header = machine()  # the tree the operators run is the tree at the start
    for op in ops:
        sizes = args.n if op == "thv" else args.peer_n
        for n in (int(x) for x in sizes.split(",") if x):
            results.append(run(op, n, args.timeout, args.every, peer_bin))
            text = report(results, header)
            out.write_text(text)
            out.with_suffix(".json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    print(report(results, header))
    plot([asdict(r) for r in results], png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
