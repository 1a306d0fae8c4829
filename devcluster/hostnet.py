"""Host-level state a real node changes, recorded so that it can always be undone.

A kubelet, containerd and kube-proxy change things outside their data directory: the CNI bridge
and veths, iptables rules, cgroups under ``/kubepods``, network-namespace and overlay mounts,
containerd shims (which outlive containerd), sysctls. :class:`HostRecord` is written to
``/run/thv-node/state.json`` before any of it happens, and :func:`undo` puts the host back from
it — at ``stop()``, or at the next start when the owner was killed (its ``flock`` on
``/run/thv-node/lock`` is gone). Processes are found by cgroup membership and by the containerd
address in their command line, never by name alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

RUN_DIR = Path(os.environ.get("THV_NODE_RUN_DIR", "/run/thv-node"))
KUBELET_ROOT = RUN_DIR / "kubelet"
"""The kubelet's --root-dir (pod volumes, plugin sockets): short, for unix socket paths."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"
NETNS_DIR = Path("/var/run/netns")
SHIM_SOCKETS = Path("/run/containerd/s")
OUR_CHAIN_PREFIXES = ("KUBE-", "CNI-", "THV-")
"""iptables chains added by kube-proxy/kubelet, the CNI plugins and thv (all removed by :func:`undo`)."""
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
"""Sysctls that the node (kubelet, kube-proxy, thv) may set; their values are restored."""


class HostRecord(msgspec.Struct, kw_only=True):
    """What a node changed or may change on the host, written before it changes anything."""

    owner_dir: str
    """The control plane's data directory (containerd and kubelet state live below it)."""
    containerd_address: str
    bridge: str
    sysctls: dict[str, str]
    netns_before: list[str]
    run_containerd_existed: bool


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = (Path("/proc/sys") / name).read_text().strip()
    return values


def write_sysctl(name: str, value: str) -> None:
    (Path("/proc/sys") / name).write_text(value)


def netns_names() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob("*")) if NETNS_DIR.is_dir() else []


# -- the lock --------------------------------------------------------------------------------------
class HostLock:
    """One real node per machine: ``flock`` on ``RUN_DIR/lock``, held while the node lives."""

    held_here = 0
    """How many locks this process holds (a test can tell its own session's node from another's)."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(RUN_DIR / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        HostLock.held_here += 1
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            HostLock.held_here -= 1


def state_path() -> Path:
    return RUN_DIR / "state.json"


def save(record: HostRecord) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    tmp = state_path().with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(record))
    tmp.replace(state_path())


def load() -> HostRecord | None:
    try:
        return msgspec.json.decode(state_path().read_bytes(), type=HostRecord)
    except (OSError, msgspec.DecodeError):
        return None


# -- undo ------------------------------------------------------------------------------------------
def _kubepods_dirs() -> Iterator[Path]:
    for hierarchy in sorted(CGROUP_ROOT.iterdir()):
        top = hierarchy / KUBEPODS
        if top.is_dir():
            # deepest first, so that rmdir can go bottom-up
            yield from sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            yield top


def cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for d in _kubepods_dirs():
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in (d / "cgroup.procs").read_text().split())
    return pids


def kill_pod_processes(timeout: float = 15.0) -> int:
    """SIGKILL every process in a ``/kubepods`` cgroup until none is left; returns how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while pids := cgroup_pids():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return len(killed)


def shim_pids(containerd_address: str) -> list[int]:
    """containerd-shim processes started by the containerd at ``containerd_address``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and containerd_address.encode() in argv:
            found.append(int(proc.name))
    return found


def kill_shims(containerd_address: str) -> None:
    for pid in shim_pids(containerd_address):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _umount(path: str) -> None:
    _libc.umount2(path.encode(), _MNT_DETACH)


def mounts_under(prefix: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                out.append(point)
    return out


def unmount_under(prefix: str) -> None:
    for _ in range(5):  # a mount may hide another below it: repeat until none is left
        points = mounts_under(prefix)
        if not points:
            return
        for point in sorted(points, key=lambda p: -len(p)):
            _umount(point)


def remove_netns(keep: list[str]) -> None:
    for name in netns_names():
        if name in keep or not name.startswith("cni-"):
            continue
        path = NETNS_DIR / name
        _umount(str(path))
        with contextlib.suppress(OSError):
            path.unlink()


def remove_iptables_rules() -> None:
    """Drop every chain named ``KUBE-*``, ``CNI-*`` or ``THV-*`` and every rule that mentions one."""
    for save_cmd, restore_cmd in (
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    ):
        try:
            dump = subprocess.run([save_cmd], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        if not any(p in dump for p in OUR_CHAIN_PREFIXES):
            continue
        kept = [line for line in dump.splitlines() if not any(p in line for p in OUR_CHAIN_PREFIXES)]
        subprocess.run(
            [restore_cmd], input="\n".join(kept) + "\n", text=True, check=False, capture_output=True
        )


def remove_cgroups() -> None:
    for d in _kubepods_dirs():
        with contextlib.suppress(OSError):
            d.rmdir()


def remove_dead_shim_sockets() -> None:
    if not SHIM_SOCKETS.is_dir():
        return
    for sock in SHIM_SOCKETS.iterdir():
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(sock))
        except OSError:
            with contextlib.suppress(OSError):
                sock.unlink()
        finally:
            s.close()


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def undo(record: HostRecord) -> None:
    """Put the host back as :class:`HostRecord` says it was (idempotent; safe after a kill)."""
    kill_pod_processes()
    kill_shims(record.containerd_address)
    kill_pod_processes(timeout=5.0)
    unmount_under(record.owner_dir)
    unmount_under(str(KUBELET_ROOT))
    shutil.rmtree(KUBELET_ROOT, ignore_errors=True)
    remove_netns(record.netns_before)
    remove_iptables_rules()
    if link_exists(record.bridge):
        subprocess.run(["ip", "link", "del", record.bridge], check=False, capture_output=True)
    remove_cgroups()
    remove_dead_shim_sockets()
    if not record.run_containerd_existed:  # shim sockets, fifos, runc state: all ours
        unmount_under(str(SHIM_SOCKETS.parent))
        shutil.rmtree(SHIM_SOCKETS.parent, ignore_errors=True)
    for name, value in record.sysctls.items():
        with contextlib.suppress(OSError):
            if (Path("/proc/sys") / name).read_text().strip() != value:
                write_sysctl(name, value)
    with contextlib.suppress(OSError):
        state_path().unlink()


def leftovers(record: HostRecord) -> list[str]:
    """What of the node is still on the host (empty after a clean :func:`undo`): for tests."""
    found = []
    if cgroup_pids():
        found.append("processes in /kubepods cgroups")
    if any(True for _ in _kubepods_dirs()):
        found.append("/kubepods cgroups")
    if shim_pids(record.containerd_address):
        found.append("containerd shims")
    if mounts_under(record.owner_dir):
        found.append(f"mounts under {record.owner_dir}")
    if mounts_under(str(KUBELET_ROOT)) or KUBELET_ROOT.exists():
        found.append(f"{KUBELET_ROOT}")
    if [n for n in netns_names() if n.startswith("cni-") and n not in record.netns_before]:
        found.append("CNI network namespaces")
    if link_exists(record.bridge):
        found.append(f"bridge {record.bridge}")
    if not record.run_containerd_existed and SHIM_SOCKETS.parent.exists():
        found.append(f"{SHIM_SOCKETS.parent}")
    veths = [p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("veth")]
    if veths:
        found.append(f"veths {veths}")
    for save_cmd in ("iptables-save", "ip6tables-save"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            dump = subprocess.run([save_cmd], capture_output=True, text=True, check=True).stdout
            if any(p in dump for p in OUR_CHAIN_PREFIXES):
                found.append(f"{save_cmd}: KUBE-/CNI-/THV- rules")
    now = read_sysctls()
    changed = [k for k, v in record.sysctls.items() if now.get(k) != v]
    if changed:
        found.append(f"sysctls {changed}")
    return found
