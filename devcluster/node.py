"""A real node for the local cluster: containerd + runc, a kubelet, kube-proxy, CNI, CoreDNS.

``ControlPlane(node="real")`` starts one next to the control plane: pods scheduled to it run for
real, from images built locally by :mod:`devcluster.images` (there is no registry: every pod
uses ``imagePullPolicy: Never`` or ``IfNotPresent``).

Layout (everything below the control plane's data directory, ``<dir>/node``):

- **containerd** (Debian's package) with its own root, state and socket; CRI with cgroupfs,
  ``restrict_oom_score_adj`` (this host lacks ``CAP_SYS_RESOURCE``) and the pinned local pause
  image;
- **CNI**: a bridge :data:`BRIDGE` with :data:`NODE_IP`/24 (the node's address and the pods'
  gateway), host-local IPAM in :data:`POD_SUBNET`, portmap, loopback; **no masquerade and no
  default route** in pods: pods reach each other, Services (:data:`SERVICE_CIDR` routed via the
  bridge) and the host at :data:`NODE_IP`, and nothing leaves the machine (a ``THV-NODE``
  FORWARD rule drops pod traffic to any other interface as a second guard);
- **kubelet** v1.36.3 (built from the pinned Go module, ``tools/node/build.sh``) registered as
  :data:`NODE_NAME` with a client certificate signed by the control plane's CA, cgroup v1
  (``failCgroupV1: false``), webhook authn/authz, serving certificate from the same CA;
- **kube-proxy** in iptables mode (this kernel has no IPVS);
- **CoreDNS** as a Deployment in ``kube-system`` behind the ``kube-dns`` Service at
  :data:`CLUSTER_DNS`, answering ``cluster.local`` only (no forwarding off the machine).

One real node per machine: it holds ``flock`` on ``/run/thv-node/lock`` and records in
``/run/thv-node/state.json`` what it changes on the host (:mod:`devcluster.hostnet`), so that
``stop()`` — or the next start, after a kill — leaves no process, mount, cgroup, bridge, veth,
iptables rule or changed sysctl behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from devcluster import hostnet
from devcluster.gobuild import run_build_script
from devcluster.lifecycle import Steps, Wait
from devcluster.paths import find_tool_script
from devcluster.pki import issue_cert

if TYPE_CHECKING:
    from devcluster.images import BuiltImage


class NodeHost(Protocol):
    """What a node needs of the cluster it joins (:class:`~devcluster.controlplane.ControlPlane`)."""

    @property
    def dir(self) -> Path: ...

    def spawn(self, name: str, args: list[str]) -> None: ...

    def http_ok(self, url: str) -> bool: ...

    def api_request(self, method: str, path: str, body: Any | None = None) -> tuple[int, Any]: ...

    def write_client_cert_kubeconfig(self, path: Path, cert: Path, key: Path, user: str) -> Path: ...


NODE_NAME = "thv-node"
NODE_LABEL = "thv.dev/node"
"""Label on the real node (value ``real``): pods that must really run select it."""
BRIDGE = "thv0"
POD_SUBNET = "10.244.0.0/24"
NODE_IP = "10.244.0.1"
"""The node's InternalIP, the bridge's address and the pods' gateway; services on the host that
pods must reach (Keycloak, Jaeger) listen here (or on 0.0.0.0)."""
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DNS = "10.96.0.10"
KUBELET_PORT = 10250
PAUSE_REF = "localhost/pause:3.10"
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "iptables-save", "ip")
CNI_DIR = Path("/usr/lib/cni")
WAIT_FOR_LOCK_S = 1800.0
NODE_IMAGES = ("pause", "coredns")
"""Images the node itself needs (imported into containerd before the kubelet starts)."""


class NodeError(RuntimeError):
    """The real node could not start: the message names the component and the log to read."""


def _say(msg: str) -> None:
    import sys

    print(f"[devcluster] {msg}", file=sys.stderr, flush=True)


def build_node_binaries(*, quiet: bool = False) -> Path:
    """kubelet and kube-proxy (``tools/node/build.sh``, cached; ``$THV_NODE_BIN`` overrides);
    returns their directory."""
    env_dir = os.environ.get("THV_NODE_BIN")
    if env_dir:
        bin_dir = Path(env_dir)
    else:
        script = find_tool_script("node")
        if script is None:
            raise NodeError("no tools/node/build.sh (not in a checkout; set THV_CHECKOUT or THV_NODE_BIN)")
        bin_dir = run_build_script(script, NodeError, quiet=quiet).parent
    for b in ("kubelet", "kube-proxy"):
        if not os.access(bin_dir / b, os.X_OK):
            raise NodeError(f"no {b} in {bin_dir}")
    return bin_dir


def check_host() -> None:
    """One clear line when this host cannot run a node (not root, tools or CNI plugins missing)."""
    if os.geteuid() != 0:
        raise NodeError("a real node needs root (containerd, kubelet, iptables)")
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    missing += [
        f"{CNI_DIR}/{p}"
        for p in ("bridge", "host-local", "portmap", "loopback")
        if not (CNI_DIR / p).exists()
    ]
    if missing:
        raise NodeError(
            f"missing on this host: {', '.join(missing)}; run tools/node/packages.sh (Debian packages)"
        )


def reap_stale_node() -> bool:
    """Undo what a killed real node left on the host (when no live node holds the lock);
    returns whether there was something to undo. Call before removing stale data directories."""
    if hostnet.load() is None:
        return False
    lock = hostnet.HostLock()
    if not lock.try_acquire():
        return False  # a live node owns it
    try:
        stale = hostnet.load()
        if stale is None:
            return False
        _say(f"cleaning up after a real node that was killed (data dir {stale.owner_dir})")
        hostnet.undo(stale)
        return True
    finally:
        lock.release()


class RealNode:
    """The node's processes and host state, driven by its :class:`ControlPlane`."""

    def __init__(self, cp: NodeHost, *, quiet: bool = False) -> None:
        self.cp = cp
        self.quiet = quiet
        self.bin_dir: Path | None = None
        self._lock = hostnet.HostLock()
        self._record: hostnet.HostRecord | None = None
        self.images: dict[str, BuiltImage] = {}

    # -- paths -----------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.cp.dir / "node"

    @property
    def containerd_address(self) -> str:
        # not below the data directory: a unix socket path has at most 107 bytes
        return str(hostnet.RUN_DIR / "containerd.sock")

    @property
    def host_ip(self) -> str:
        """Where pods reach services running on the host (bind them here or on 0.0.0.0)."""
        return NODE_IP

    def _log(self, msg: str) -> None:
        if not self.quiet:
            _say(msg)

    # -- images ----------------------------------------------------------------------------------
    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against this node's containerd in the ``k8s.io`` namespace."""
        proc = subprocess.run(
            ["ctr", "--address", self.containerd_address, "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()[:500]}")
        return proc

    def load_image(self, image: BuiltImage) -> str:
        """Import a locally built image into the node's containerd (pinned); returns its ref."""
        from devcluster.images import import_image

        t0 = time.monotonic()
        import_image(image, containerd_address=self.containerd_address)
        self._log(f"image {image.ref} imported in {time.monotonic() - t0:.1f}s")
        return image.ref

    def load(self, name: str) -> str:
        """Build (cached) and import the image ``name`` of :mod:`devcluster.images`; its ref."""
        from devcluster.images import build_image

        image = self.images.get(name) or build_image(name, quiet=self.quiet)
        self.images[name] = image
        return self.load_image(image)

    # -- bring-up --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Before any node process starts: take the host, undo a killed node, write configs."""
        check_host()
        if self.bin_dir is None:
            self.bin_dir = build_node_binaries(quiet=self.quiet)
        self._take_host()
        self.dir.mkdir(parents=True, exist_ok=True)
        record = hostnet.HostRecord(
            owner_dir=str(self.cp.dir),
            containerd_address=self.containerd_address,
            bridge=BRIDGE,
            sysctls=hostnet.read_sysctls(),
            netns_before=hostnet.netns_names(),
            run_containerd_existed=hostnet.SHIM_SOCKETS.parent.exists(),
        )
        hostnet.save(record)  # before the host changes
        self._record = record
        self._network()
        self._write_configs()

    def _take_host(self) -> None:
        t0 = time.monotonic()
        announced = False
        while not self._lock.try_acquire():
            if not announced:
                self._log(
                    "another real node runs on this machine; waiting for it to stop (/run/thv-node/lock)"
                )
                announced = True
            if time.monotonic() - t0 > WAIT_FOR_LOCK_S:
                raise NodeError("another real node kept /run/thv-node/lock for 30 min")
            time.sleep(1.0)
        stale = hostnet.load()
        if stale is not None:
            self._log(f"cleaning up after a real node that was killed (data dir {stale.owner_dir})")
            hostnet.undo(stale)

    def _network(self) -> None:
        def ip(*args: str) -> None:
            proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise NodeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")

        if not hostnet.link_exists(BRIDGE):
            ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "replace", f"{NODE_IP}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        hostnet.write_sysctl("net/ipv4/ip_forward", "1")
        hostnet.write_sysctl("net/bridge/bridge-nf-call-iptables", "1")
        # second guard (pods have no default route): pod traffic never leaves through another interface
        for args in (
            ["-N", "THV-NODE"],
            ["-A", "THV-NODE", "-s", POD_SUBNET, "!", "-o", BRIDGE, "-j", "DROP"],
            ["-I", "FORWARD", "1", "-j", "THV-NODE"],
        ):
            subprocess.run(["iptables", *args], capture_output=True, check=False)

    def _write_configs(self) -> None:
        d = self.dir
        for sub in ("containerd/root", "containerd/state", "cni", "pod-logs", "pki"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "containerd" / "config.toml").write_text(self._containerd_config())
        (d / "cni" / "10-thv.conflist").write_text(json.dumps(_cni_conflist(), indent=2))
        pki = self.cp.dir / "pki"
        issue_cert(
            pki,
            "kubelet-client",
            common_name=f"system:node:{NODE_NAME}",
            organizations=("system:nodes",),
        )
        issue_cert(
            pki,
            "kubelet-serving",
            common_name=NODE_NAME,
            ip_sans=(NODE_IP,),
            dns_sans=(NODE_NAME,),
            client=False,
            server=True,
        )
        self.cp.write_client_cert_kubeconfig(
            d / "kubelet.kubeconfig", pki / "kubelet-client.crt", pki / "kubelet-client.key", NODE_NAME
        )
        self.healthz_port = _free_port()
        (d / "kubelet.yaml").write_text(yaml.safe_dump(self._kubelet_config(), sort_keys=False))
        self.proxy_metrics_port, self.proxy_healthz_port = _free_port(), _free_port()

    def _containerd_config(self) -> str:
        d = self.dir / "containerd"
        return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.grpc.v1.cri.restart"]

[grpc]
  address = "{self.containerd_address}"

[debug]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_REF}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_DIR}"
    conf_dir = "{self.dir / "cni"}"
"""

    def _kubelet_config(self) -> dict[str, Any]:
        pki = self.cp.dir / "pki"
        endpoint = f"unix://{self.containerd_address}"
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "address": NODE_IP,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "clusterDNS": [CLUSTER_DNS],
            "resolvConf": "",
            "containerRuntimeEndpoint": endpoint,
            "imageServiceEndpoint": endpoint,
            "podLogsDir": str(self.dir / "pod-logs"),
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
            "registerNode": True,
            "rotateCertificates": False,
            "kubeAPIQPS": 50,
            "kubeAPIBurst": 100,
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "failSwapOn": False,
        }

    def start_steps(self) -> Steps:
        """containerd → images → kubelet (node Ready) → kube-proxy → CoreDNS."""
        assert self.bin_dir is not None
        cp = self.cp
        cp.spawn(
            "containerd",
            ["containerd", "--config", str(self.dir / "containerd" / "config.toml"), "--log-level", "warn"],
        )
        yield Wait("containerd", self._containerd_ready, "containerd", 30.0)
        t0 = time.monotonic()
        for name in NODE_IMAGES:
            self.load(name)
        self._log(f"node images ready in {time.monotonic() - t0:.1f}s")
        self._node_rbac()
        cp.spawn(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={self.dir / 'kubelet.yaml'}",
                f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
                # not below the data directory: the kubelet's unix sockets need a short path
                f"--root-dir={hostnet.KUBELET_ROOT}",
                f"--cert-dir={self.dir / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--node-labels={NODE_LABEL}=real",
                "--v=1",
            ],
        )
        yield Wait(f"node {NODE_NAME}", self._node_ready, "kubelet", 120.0)
        cp.spawn(
            "kube-proxy",
            [
                str(self.bin_dir / "kube-proxy"),
                f"--kubeconfig={cp.dir / 'kube-proxy.kubeconfig'}",
                f"--hostname-override={NODE_NAME}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={POD_SUBNET}",
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
                "--iptables-localhost-nodeports=false",
                f"--nodeport-addresses={NODE_IP}/32",
                f"--metrics-bind-address=127.0.0.1:{self.proxy_metrics_port}",
                f"--healthz-bind-address=127.0.0.1:{self.proxy_healthz_port}",
                "--v=1",
            ],
        )
        yield Wait(
            "kube-proxy",
            lambda: cp.http_ok(f"http://127.0.0.1:{self.proxy_healthz_port}/healthz"),
            "kube-proxy",
            60.0,
        )
        self._deploy_coredns()
        yield Wait("CoreDNS", self._coredns_ready, "kubelet", 120.0)

    def _containerd_ready(self) -> bool:
        if not Path(self.containerd_address).exists():
            return False
        return self.ctr("version", check=False).returncode == 0

    def _node_ready(self) -> bool:
        status, node = self.cp.api_request("GET", f"/api/v1/nodes/{NODE_NAME}")
        conds = node.get("status", {}).get("conditions", []) if status == 200 else []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    def _apply(self, path: str, obj: dict[str, Any]) -> None:
        status, body = self.cp.api_request("POST", path, obj)
        if status not in (201, 409):
            raise NodeError(f"creating {obj['kind']} {obj['metadata']['name']}: HTTP {status}: {body}")

    def _node_rbac(self) -> None:
        # the Node authorizer covers the node's own objects; RBAC's system:node role (token and
        # access reviews for the kubelet's webhook authn/authz) is bound to the nodes group here
        self._apply(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "thv-dev:system:nodes"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:node",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}
                ],
            },
        )

    def _deploy_coredns(self) -> None:
        ref = self.images["coredns"].ref
        for path, obj in coredns_objects(ref):
            self._apply(path, obj)

    def _coredns_ready(self) -> bool:
        status, dep = self.cp.api_request("GET", "/apis/apps/v1/namespaces/kube-system/deployments/coredns")
        return status == 200 and int(dep.get("status", {}).get("availableReplicas", 0) or 0) >= 1

    # -- teardown --------------------------------------------------------------------------------
    def undo_host(self) -> None:
        """After the node's processes were stopped: put the host back, release the lock."""
        if self._record is not None:
            hostnet.undo(self._record)
            self._record = None
        self._lock.release()

    @property
    def record(self) -> hostnet.HostRecord | None:
        return self._record


def _cni_conflist() -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": "thv",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    "routes": [{"dst": SERVICE_CIDR}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


COREFILE = """\
.:53 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
"""


def coredns_objects(image: str) -> list[tuple[str, dict[str, Any]]]:
    """CoreDNS for ``cluster.local`` (no forwarding): RBAC, Corefile, Deployment, kube-dns Service."""
    ns = "kube-system"
    labels = {"k8s-app": "kube-dns"}
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    return [
        (
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}},
        ),
        (
            f"{rbac}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "thv-dev:coredns"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["services", "pods", "namespaces", "endpoints"],
                        "verbs": ["list", "watch"],
                    },
                    {
                        "apiGroups": ["discovery.k8s.io"],
                        "resources": ["endpointslices"],
                        "verbs": ["list", "watch"],
                    },
                ],
            },
        ),
        (
            f"{rbac}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "thv-dev:coredns"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "thv-dev:coredns",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
            },
        ),
        (
            f"/api/v1/namespaces/{ns}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": ns},
                "data": {"Corefile": COREFILE},
            },
        ),
        (
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": "coredns",
                            "dnsPolicy": "Default",
                            "nodeSelector": {NODE_LABEL: "real"},
                            "containers": [
                                {
                                    "name": "coredns",
                                    "image": image,
                                    "imagePullPolicy": "Never",
                                    "args": ["-conf", "/etc/coredns/Corefile"],
                                    "ports": [
                                        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                        {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                    ],
                                    "readinessProbe": {
                                        "httpGet": {"path": "/ready", "port": 8181},
                                        "periodSeconds": 2,
                                    },
                                    "livenessProbe": {
                                        "httpGet": {"path": "/health", "port": 8080},
                                        "periodSeconds": 10,
                                    },
                                    "resources": {
                                        "limits": {"memory": "128Mi"},
                                        "requests": {"cpu": "10m", "memory": "32Mi"},
                                    },
                                    "volumeMounts": [
                                        {"name": "config", "mountPath": "/etc/coredns", "readOnly": True}
                                    ],
                                }
                            ],
                            "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                        },
                    },
                },
            },
        ),
        (
            f"/api/v1/namespaces/{ns}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
                "spec": {
                    "clusterIP": CLUSTER_DNS,
                    "selector": labels,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    ],
                },
            },
        ),
    ]
