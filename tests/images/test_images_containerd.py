"""Built images imported into a real containerd (a throwaway one, in a temp dir): ``ctr`` names them
exactly by their refs, pinned; the demo MCP server's image then runs and answers over stdio."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.images import PINNED_LABEL, build_image, import_image

pytestmark = pytest.mark.integration
NEEDED = ("containerd", "ctr", "runc", "umoci", "mmdebstrap", "gcc", "go")


def _unmount_under(root: Path) -> None:
    """Unmount whatever is still mounted below ``root`` (deepest first)."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _remove_containers(address: str) -> None:
    """Kill and delete every task and container left in the namespace (their cgroups go too)."""
    base = ["ctr", "--address", address, "-n", "k8s.io"]
    listed = subprocess.run([*base, "containers", "ls", "-q"], capture_output=True, text=True, check=False)
    for cid in listed.stdout.split():
        subprocess.run([*base, "tasks", "rm", "-f", cid], capture_output=True, check=False)
        subprocess.run([*base, "containers", "rm", cid], capture_output=True, check=False)


@pytest.fixture(scope="module")
def containerd() -> Iterator[str]:
    """A containerd of our own (root, state and sockets in a temp dir, CRI off); its address."""
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(
            f"needs root and {', '.join(missing) or 'nothing else'} (scripts/bootstrap.sh installs them)"
        )
    # `ctr run` puts containers in /k8s.io/<id> of every cgroup hierarchy; remove what we add
    cgroup_parents = [p for p in Path("/sys/fs/cgroup").glob("*/k8s.io") if p.is_dir()]
    root = Path(tempfile.mkdtemp(prefix="thv-ctd-", dir="/tmp"))  # short: socket paths are limited
    address = f"{root}/containerd.sock"
    (root / "config.toml").write_text(
        f"""version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{address}"
[ttrpc]
  address = "{address}.ttrpc"
[debug]
  address = "{root}/debug.sock"
"""
    )
    log = (root / "containerd.log").open("wb")
    proc = subprocess.Popen(
        ["containerd", "--config", str(root / "config.toml")], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ctr", "--address", address, "version"], capture_output=True).returncode != 0:
            assert proc.poll() is None, (root / "containerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "containerd did not answer in 20 s"
            time.sleep(0.1)
        yield address
    finally:
        if proc.poll() is None:
            _remove_containers(address)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
        for parent in Path("/sys/fs/cgroup").glob("*/k8s.io"):
            if parent not in cgroup_parents:
                with contextlib.suppress(OSError):
                    parent.rmdir()


def ctr(address: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["ctr", "--address", address, "-n", "k8s.io", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"ctr {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_pause_and_demo_mcp_import_as_their_refs_pinned(containerd: str) -> None:
    pause = build_image("pause")
    demo = build_image("demo-mcp")
    assert pause.ref == "localhost/pause:3.10"
    assert demo.ref.startswith("localhost/demo-mcp:") and len(demo.ref.rsplit(":", 1)[1]) == 12
    for image in (pause, demo):
        import_image(image, containerd_address=containerd)
    listing = ctr(containerd, "images", "ls").splitlines()
    refs = {line.split()[0]: line for line in listing[1:]}
    assert {pause.ref, demo.ref} <= set(refs), listing
    for ref in (pause.ref, demo.ref):
        assert PINNED_LABEL in refs[ref] and "linux/amd64" in refs[ref]
    import_image(pause, containerd_address=containerd)  # importing again is harmless
    assert ctr(containerd, "images", "ls", "-q").split().count(pause.ref) == 1


def test_demo_mcp_image_answers_over_stdio_as_uid_1000(containerd: str) -> None:
    cid = f"thv-images-stdio-{uuid.uuid4().hex[:8]}"  # runc's state directory is per namespace, machine-wide
    demo = build_image("demo-mcp", quiet=True)
    import_image(demo, containerd_address=containerd)
    assert (
        ctr(containerd, "run", "--rm", demo.ref, f"thv-images-id-{uuid.uuid4().hex[:8]}", "id", "-u").strip()
        == "1000"
    )
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
    ]
    # ctr does not close the container's stdin at EOF: read the replies, then stop the server
    server = subprocess.Popen(
        ["ctr", "--address", containerd, "-n", "k8s.io", "run", "--rm", demo.ref, cid],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    replies: dict[int, dict[str, Any]] = {}
    try:
        server.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        server.stdin.flush()
        deadline = time.monotonic() + 60
        while 2 not in replies:
            ready, _, _ = select.select([server.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no reply to tools/call in 60 s (got {replies})"
            line = server.stdout.readline()
            assert line, f"the server closed stdout (got {replies})"
            reply = json.loads(line)
            replies[reply.get("id", -1)] = reply
    finally:
        subprocess.run(
            ["ctr", "--address", containerd, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", cid],
            capture_output=True,
            check=False,
        )
        server.stdin.close()
        server.wait(30)
    assert replies[1]["result"]["serverInfo"]["name"] == "demo-mcp"
    assert replies[2]["result"]["structuredContent"] == {"token_seen": False}


def test_coredns_serves_port_53_as_nonroot(containerd: str, tmp_path: Path) -> None:
    """Upstream's CoreDNS image runs as nonroot with cap_net_bind_service on /coredns; so does
    this one (the capability travels as an xattr of the layer)."""
    coredns = build_image("coredns", quiet=True)
    import_image(coredns, containerd_address=containerd)
    cid = f"thv-images-dns-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "coredns.log"
    ctr(containerd, "run", "-d", "--log-uri", f"file://{log}", coredns.ref, cid)
    try:
        deadline = time.monotonic() + 30
        while ".:53" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
            time.sleep(0.2)
        assert "RUNNING" in ctr(containerd, "tasks", "ls"), log.read_text()
        assert "permission denied" not in log.read_text()
        status = ctr(containerd, "tasks", "exec", "--exec-id", "id", cid, "/coredns", "-version")
        assert "CoreDNS-" in status
    finally:
        subprocess.run(
            ["ctr", "--address", containerd, "-n", "k8s.io", "tasks", "rm", "-f", cid],
            capture_output=True,
            check=False,
        )
        subprocess.run(
            ["ctr", "--address", containerd, "-n", "k8s.io", "containers", "rm", cid],
            capture_output=True,
            check=False,
        )
