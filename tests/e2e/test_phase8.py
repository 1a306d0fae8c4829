"""The seed's phase 8 ("End-to-End Validation"), every criterion in order, in real pods, in both
modes (issue 16 items 2 and 3).

Per mode (``operator.useConfigMap`` false = CLI flags, true = RunConfig ConfigMap, set through
the Helm chart), the operator runs **in-cluster**: ``helm install`` of ``helm/thv`` with the
locally built ``thv`` image (operator and runner), exporting its traces to a Jaeger on the host.
Then, in a fresh namespace, the tests below walk the seed's list; the test names are the seed's
wording. The order is the issue's (criteria of the seed that need traffic come where the traffic
is): the seed's "token exchange works with real OAuth provider" is checked right after the MCP
server pod runs, before the update whose effect the next tool call shows, and the issue's "the
runner pod creates the MCP server pod" is a test of its own after the Deployment's. Keycloak (realm ``mcp-test``) runs on the host at ``NODE_IP``, so the runner pod
exchanges alice's token there and the demo MCP server pod verifies what it receives against
Keycloak's keys (audience ``mcp-server``, issuer, signature).

What "a change to the MCPExternalAuthConfig" changes: the audience. The realm lets ``mcp-proxy``
exchange for ``mcp-server`` and ``mcp-server-v2`` (any other is ``Requested audience not
available``), and the demo MCP server accepts a token for either. The update switches
``audience`` from ``mcp-server`` to ``mcp-server-v2``; the next tool call after the runner rolled
reaches the MCP server with ``aud`` ``mcp-server-v2``.

Traces (item 3): the operator pod's reconcile trace (``watch MCPServer …`` → ``bus.deliver …`` →
``k8s apply deployments.apps``) and the runner pod's request spans (``thv.proxy.request``,
``thv.proxy.token_exchange`` from the runner's own tracer, ``tools/call whoami`` from the MCP
telemetry middleware configured by ``spec.telemetry``) are read back through Jaeger's HTTP
query API. A trace context crosses one boundary: the test's client span sends ``traceparent``
to the runner, and both runner spans are its children in one trace. Nothing carries a trace
context from the operator to the runner (Kubernetes objects do not), so those are two traces.

Runtime: one Keycloak and one Jaeger for the module, one Helm install per mode.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from devcluster import ControlPlane
from devcluster.e2e import (
    CRDS,
    GROUP,
    OPERATOR_NS,
    G,
    audiences,
    call_tool,
    claims,
    condition,
    crds_present,
    diagnose,
    events_for,
    helm_install,
    helm_uninstall,
    ready_endpoints,
    release_namespaces,
    service_url,
    wait_or_diagnose,
)
from devcluster.helm import Helm, helm_binary
from devcluster.jaeger import Jaeger
from devcluster.keycloak import (
    PROXY_CLIENT_ID,
    PROXY_CLIENT_SECRET,
    SECOND_AUDIENCE,
    TARGET_AUDIENCE,
    KeycloakServer,
    find_jdk,
    install_keycloak,
)
from devcluster.node import NODE_IP, NODE_NAME
from devcluster.podkit import create, get, pods, ready, wait_for

NAME = "demo"
EXT = "ext"
SECRET = "te-secret"
MCP_PORT = 8080
OPERATOR_SERVICE = "thv-operator"  # the chart's otel.serviceName
FINALIZER = "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer"
NEW_AUDIENCE = SECOND_AUDIENCE
APPLY = "k8s apply deployments.apps"  # the operator's client span: k8s <verb> <resource>[.<group>]


# -- module fixtures: one Keycloak, one Jaeger, the images --------------------------------------------
@pytest.fixture(scope="module")
def keycloak(
    real_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeycloakServer]:
    """Keycloak on ``NODE_IP`` (the bridge exists once the real node runs): pods and the test
    use one URL, so the tokens' ``iss`` agrees everywhere."""
    kc = KeycloakServer(
        install_keycloak(), find_jdk(21), tmp_path_factory.mktemp("kc") / "keycloak.log", http_host=NODE_IP
    )
    kc.start()
    try:
        yield kc
    finally:
        kc.stop()


@pytest.fixture(scope="module")
def jaeger(real_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """Jaeger with its OTLP receiver on ``NODE_IP`` (pods export there), query API on loopback."""
    j = Jaeger(base_dir=tmp_path_factory.mktemp("jaeger"), otlp_host=NODE_IP, otlp_grpc=False).start()
    try:
        yield j
    finally:
        j.stop()


@pytest.fixture(scope="module")
def images(real_cluster: ControlPlane) -> dict[str, str]:
    return {name: real_cluster.node.load(name) for name in ("thv", "demo-mcp")}


@dataclass
class Phase8:
    """One mode's run: the cluster, the namespaces, what earlier steps observed."""

    cp: ControlPlane
    mode: str
    use_configmap: bool
    kc: KeycloakServer
    jaeger: Jaeger
    images: dict[str, str]
    helm: Helm
    ns: str
    other_ns: str
    install_seconds: float = 0.0
    started: float = field(default_factory=time.time)
    seen: dict[str, Any] = field(default_factory=dict)

    @property
    def server_path(self) -> str:
        return f"{G}/namespaces/{self.ns}/mcpservers/{NAME}"

    @property
    def config_path(self) -> str:
        return f"{G}/namespaces/{self.ns}/mcpexternalauthconfigs/{EXT}"

    def diagnose(self) -> str:
        return diagnose(self.cp, self.ns, OPERATOR_NS)

    def wait(self, what: str, check: Any, timeout: float = 180) -> Any:
        self.seen.pop("last_error", None)
        try:
            return wait_or_diagnose(self.cp, (self.ns, OPERATOR_NS), what, check, timeout)
        except AssertionError as exc:
            raise AssertionError(f"last error: {self.seen.get('last_error')}\n{exc}") from None


@pytest.fixture(scope="module", params=["flags", "configmap"])
def phase8(
    request: pytest.FixtureRequest,
    real_cluster: ControlPlane,
    keycloak: KeycloakServer,
    jaeger: Jaeger,
    images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Phase8]:
    cp, mode = real_cluster, str(request.param)
    helm = Helm(helm_binary(), tmp_path_factory.mktemp(f"helm-{mode}"))
    if crds_present(cp):  # left by an earlier module or mode: each mode installs them itself
        helm_uninstall(cp, helm)
    suffix = uuid.uuid4().hex[:5]
    run = Phase8(
        cp,
        mode,
        mode == "configmap",
        keycloak,
        jaeger,
        images,
        helm,
        ns=f"p8-{mode}-{suffix}",
        other_ns=f"p8-{mode}-other-{suffix}",
    )
    try:
        yield run
    finally:
        # the operator still runs: it releases the finalizers of what the namespaces hold
        release_namespaces(cp, run.ns, run.other_ns)
        helm_uninstall(cp, helm)


# -- manifests ---------------------------------------------------------------------------------------
def _extauth(kc: KeycloakServer, name: str = EXT, **extra: Any) -> dict[str, Any]:
    te: dict[str, Any] = {
        "tokenUrl": kc.token_url,
        "clientId": PROXY_CLIENT_ID,
        "clientSecretRef": {"name": SECRET, "key": "client-secret"},
        "audience": TARGET_AUDIENCE,
        **extra,
    }
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "MCPExternalAuthConfig",
        "metadata": {"name": name},
        "spec": {"type": "tokenExchange", "tokenExchange": te},
    }


def _server(run: Phase8, name: str, ref: str) -> dict[str, Any]:
    kc = run.kc
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name},
        "spec": {
            "image": run.images["demo-mcp"],
            "transport": "streamable-http",
            "mcpPort": MCP_PORT,
            "externalAuthConfigRef": {"name": ref},
            "env": [
                {"name": "DEMO_MCP_JWKS_URL", "value": kc.jwks_url},
                {"name": "DEMO_MCP_AUDIENCE", "value": f"{TARGET_AUDIENCE},{NEW_AUDIENCE}"},
                {"name": "DEMO_MCP_ISSUER", "value": kc.issuer},
            ],
            "podTemplateSpec": {"spec": {"containers": [{"name": "mcp", "imagePullPolicy": "Never"}]}},
            # the MCP telemetry middleware: a span per MCP request, exported to Jaeger
            "telemetry": {
                "openTelemetry": {
                    "enabled": True,
                    "endpoint": run.jaeger.otlp_http_endpoint,
                    "insecure": True,
                    "serviceName": f"mcp-{run.mode}",
                    "tracing": {"enabled": True, "samplingRate": "1.0"},
                }
            },
            # the runner's own spans (request, token exchange): its OTEL_* environment
            "resourceOverrides": {
                "proxyDeployment": {
                    "env": [
                        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": run.jaeger.otlp_http_endpoint},
                        {"name": "OTEL_SERVICE_NAME", "value": f"thv-runner-{run.mode}"},
                        {"name": "OTEL_BSP_SCHEDULE_DELAY", "value": "500"},
                    ]
                }
            },
        },
    }


def _runner_pods(run: Phase8) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(run.cp, run.ns, f"app=mcpserver,app.kubernetes.io/instance={NAME}")
        if not p["metadata"].get("deletionTimestamp")
    ]


def _mcp_pod(run: Phase8) -> dict[str, Any] | None:
    live = [p for p in pods(run.cp, run.ns, f"app={NAME}") if not p["metadata"].get("deletionTimestamp")]
    return live[0] if len(live) == 1 else None


def _deployment(run: Phase8) -> dict[str, Any]:
    return get(run.cp, f"/apis/apps/v1/namespaces/{run.ns}/deployments/{NAME}") or {}


def _whoami(run: Phase8, token: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    url = service_url(run.cp, run.ns, f"mcp-{NAME}-proxy") + "/mcp"
    # short: a connection kube-proxy still sends to a gone pod must not eat the whole wait
    return anyio.run(lambda: call_tool(url, "whoami", token=token, headers=headers, timeout=10))


def _try_whoami(run: Phase8, token: str) -> dict[str, Any] | None:
    try:
        return _whoami(run, token)
    except Exception as exc:
        run.seen["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return None


# -- the seed's phase 8, in order ----------------------------------------------------------------------
def test_operator_deploys_successfully_to_test_cluster(phase8: Phase8) -> None:
    run = phase8
    run.install_seconds = helm_install(
        run.cp,
        run.helm,
        run.images["thv"],
        use_configmap=run.use_configmap,
        otel_endpoint=run.jaeger.otlp_http_endpoint,
    )
    pod = run.wait(
        "a Ready operator pod",
        lambda: next(
            (p for p in pods(run.cp, OPERATOR_NS, "app.kubernetes.io/name=thv-operator") if ready(p)), None
        ),
    )
    assert pod["spec"]["nodeName"] == NODE_NAME
    container = pod["spec"]["containers"][0]
    assert container["image"] == run.images["thv"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["TOOLHIVE_USE_CONFIGMAP"] == ("true" if run.use_configmap else "false")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == run.jaeger.otlp_http_endpoint
    # in-cluster configuration: the chart's ServiceAccount token, no kubeconfig
    assert pod["spec"]["serviceAccountName"] == "thv"
    for ns in (run.ns, run.other_ns):
        create(run.cp, "/api/v1/namespaces", {"metadata": {"name": ns}})
    for ns in (run.ns, run.other_ns):
        wait_for(
            f"{ns}'s default ServiceAccount",
            partial(get, run.cp, f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
        )
    print(f"\n[{run.mode}] helm install --wait: {run.install_seconds:.1f}s")


def test_mcpexternalauthconfig_crd_installs_correctly(phase8: Phase8) -> None:
    run = phase8
    assert crds_present(run.cp) == sorted(f"{c}.{GROUP}" for c in CRDS)
    crd = get(
        run.cp, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/mcpexternalauthconfigs.{GROUP}"
    )
    assert crd is not None
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established.get("Established") == "True" and established.get("NamesAccepted") == "True"
    assert crd["spec"]["scope"] == "Namespaced"
    assert [v["name"] for v in crd["spec"]["versions"] if v["served"] and v["storage"]] == ["v1alpha1"]
    # the apiserver validates against the installed schema (type is an enum)
    bad = _extauth(run.kc, "bad")
    bad["spec"]["type"] = "nonsense"
    status, body = run.cp.api_request("POST", f"{G}/namespaces/{run.ns}/mcpexternalauthconfigs", bad)
    assert status == 422, body
    # a valid one is admitted, hashed and guarded by the operator
    create(
        run.cp,
        f"/api/v1/namespaces/{run.ns}/secrets",
        {"metadata": {"name": SECRET}, "stringData": {"client-secret": PROXY_CLIENT_SECRET}},
    )
    create(run.cp, f"{G}/namespaces/{run.ns}/mcpexternalauthconfigs", _extauth(run.kc))
    cfg = run.wait(
        "the config hashed and finalized",
        lambda: (
            (c := get(run.cp, run.config_path))
            and (c.get("status") or {}).get("configHash")
            and FINALIZER in c["metadata"].get("finalizers", [])
            and c
        ),
        60,
    )
    run.seen["hash"] = cfg["status"]["configHash"]


def test_mcpserver_with_external_auth_reference_creates_deployment(phase8: Phase8) -> None:
    run = phase8
    t0 = time.monotonic()
    create(run.cp, f"{G}/namespaces/{run.ns}/mcpservers", _server(run, NAME, EXT))
    dep = run.wait("the runner Deployment", lambda: _deployment(run) or None, 60)
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("MCPServer", NAME, True)
    template = dep["spec"]["template"]
    assert template["metadata"]["annotations"][f"{GROUP}/externalauthconfig-hash"] == run.seen["hash"]
    assert template["spec"]["containers"][0]["image"] == run.images["thv"]
    run.wait(
        "a Ready runner pod",
        lambda: [p for p in _runner_pods(run) if ready(p)],
        240,
    )
    print(f"\n[{run.mode}] MCPServer applied -> runner pod Ready: {time.monotonic() - t0:.1f}s")


def test_the_runner_pod_creates_the_mcp_server_pod(phase8: Phase8) -> None:
    run = phase8
    sts = run.wait(
        "the runner's StatefulSet",
        lambda: get(run.cp, f"/apis/apps/v1/namespaces/{run.ns}/statefulsets/{NAME}"),
        120,
    )
    managers = {m["manager"] for m in sts["metadata"].get("managedFields", []) if m["operation"] == "Apply"}
    assert managers == {"toolhive-container-manager"}, managers  # the runner wrote it, not the operator
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == run.images["demo-mcp"]
    assert get(run.cp, f"/api/v1/namespaces/{run.ns}/services/mcp-{NAME}-headless") is not None
    pod = run.wait("a Ready MCP server pod", lambda: (p := _mcp_pod(run)) and ready(p) and p, 180)
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["metadata"]["name"] == f"{NAME}-0"


def test_deployment_contains_correct_external_auth_configuration_flags_or_configmap(phase8: Phase8) -> None:
    run = phase8
    container = _deployment(run)["spec"]["template"]["spec"]["containers"][0]
    args = container.get("args", [])
    env = {e["name"]: e for e in container.get("env", [])}
    # the client secret is a secretKeyRef, never a value, in both modes
    secret_env = env["TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"]
    assert secret_env["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "client-secret"}
    assert PROXY_CLIENT_SECRET not in str(_deployment(run))
    expected = {
        "--token-exchange-url": run.kc.token_url,
        "--token-exchange-client-id": PROXY_CLIENT_ID,
        "--token-exchange-audience": TARGET_AUDIENCE,
    }
    flags = dict(a.split("=", 1) for a in args if a.startswith("--token-exchange-"))
    if run.use_configmap:
        assert flags == {}, args
        volumes = run.wait(
            "the runconfig volume", lambda: _deployment(run)["spec"]["template"]["spec"].get("volumes"), 10
        )
        assert [v["configMap"]["name"] for v in volumes if v["name"] == "runconfig"] == [f"{NAME}-runconfig"]
        cm = get(run.cp, f"/api/v1/namespaces/{run.ns}/configmaps/{NAME}-runconfig")
        assert cm is not None
        doc = json.loads(cm["data"]["runconfig.json"])
        te = doc["token_exchange_config"]
        assert (te["token_url"], te["client_id"], te["audience"]) == (
            run.kc.token_url,
            PROXY_CLIENT_ID,
            TARGET_AUDIENCE,
        )
        assert te.get("client_secret", "") == ""
        assert PROXY_CLIENT_SECRET not in cm["data"]["runconfig.json"]
    else:
        assert {k: flags.get(k) for k in expected} == expected, args
        assert get(run.cp, f"/api/v1/namespaces/{run.ns}/configmaps/{NAME}-runconfig") is None


def test_token_exchange_works_with_real_oauth_provider_keycloak(phase8: Phase8) -> None:
    run = phase8
    token = run.kc.password_token()
    user = claims(token)
    assert TARGET_AUDIENCE not in audiences(user)
    # no token: the runner refuses (fail closed)
    url = service_url(run.cp, run.ns, f"mcp-{NAME}-proxy")
    assert httpx.post(f"{url}/mcp", json={}, timeout=30).status_code == 401
    # the user's own token, straight to the MCP server pod: refused (wrong audience)
    pod = _mcp_pod(run)
    assert pod is not None
    direct = httpx.post(
        f"http://{pod['status']['podIP']}:{MCP_PORT}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        timeout=30,
    )
    assert direct.status_code == 401
    # through the runner, with a trace context the runner's spans continue (item 3)
    provider = TracerProvider(resource=Resource.create({"service.name": f"phase8-client-{run.mode}"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{run.jaeger.otlp_http_endpoint}/v1/traces"))
    )
    tracer = provider.get_tracer("phase8")
    with tracer.start_as_current_span("phase8 whoami", kind=trace.SpanKind.CLIENT) as span:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        seen = run.wait(
            "a whoami answer through the runner", lambda: _try_whoami_with(run, token, carrier), 90
        )
    provider.shutdown()
    run.seen["client_trace"] = format(span.get_span_context().trace_id, "032x")
    run.seen["client_span"] = format(span.get_span_context().span_id, "016x")
    # what the MCP server verified: the exchanged token, never the user's
    assert seen.get("token_seen") is True, seen
    assert audiences(seen) == [TARGET_AUDIENCE], seen
    assert seen["azp"] == PROXY_CLIENT_ID and seen["sub"] == user["sub"], seen
    assert seen["iss"] == run.kc.issuer
    run.seen["first_call"] = seen


def _try_whoami_with(run: Phase8, token: str, headers: dict[str, str]) -> dict[str, Any] | None:
    try:
        return _whoami(run, token, headers)
    except Exception as exc:
        run.seen["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return None


def test_updates_to_mcpexternalauthconfig_trigger_mcpserver_reconciliation(phase8: Phase8) -> None:
    run = phase8
    run.seen["runner_pods"] = {p["metadata"]["uid"] for p in _runner_pods(run)}
    status, body = run.cp.api_request(
        "PATCH", run.config_path, {"spec": {"tokenExchange": {"audience": NEW_AUDIENCE}}}
    )
    assert status == 200, body
    cfg = run.wait(
        "a new config hash",
        lambda: (
            (c := get(run.cp, run.config_path)) and c["status"].get("configHash") != run.seen["hash"] and c
        ),
        60,
    )
    new_hash = cfg["status"]["configHash"]
    run.wait(
        "the MCPServer's status follows the new hash",
        lambda: (
            ((get(run.cp, run.server_path) or {}).get("status") or {}).get("externalAuthConfigHash")
            == new_hash
        ),
        60,
    )
    run.seen["new_hash"] = new_hash


def test_mcpserver_deployment_is_updated_with_new_configuration(phase8: Phase8) -> None:
    run = phase8
    t0 = time.monotonic()
    dep = run.wait(
        "the Deployment's template carries the new hash",
        lambda: (
            (d := _deployment(run))
            and d["spec"]["template"]["metadata"]["annotations"].get(f"{GROUP}/externalauthconfig-hash")
            == run.seen["new_hash"]
            and d
        ),
        60,
    )
    if run.use_configmap:
        cm = get(run.cp, f"/api/v1/namespaces/{run.ns}/configmaps/{NAME}-runconfig")
        assert cm is not None and f'"audience": "{NEW_AUDIENCE}"' in cm["data"]["runconfig.json"]
    else:
        assert (
            f"--token-exchange-audience={NEW_AUDIENCE}"
            in dep["spec"]["template"]["spec"]["containers"][0]["args"]
        )
    # the runner rolls: a new Ready pod, the old ones gone
    old = run.seen["runner_pods"]
    run.wait(
        "the runner rolled",
        lambda: (
            (live := _runner_pods(run))
            and all(p["metadata"]["uid"] not in old for p in live)
            and all(ready(p) for p in live)
        ),
        240,
    )
    rolled = time.monotonic() - t0
    # the Service's endpoints are the new pods only (kube-proxy follows the EndpointSlices)
    run.wait(
        "the runner Service's ready endpoints are the new pods",
        lambda: (
            ready_endpoints(run.cp, run.ns, f"mcp-{NAME}-proxy")
            == {p["status"].get("podIP") for p in _runner_pods(run)}
        ),
        60,
    )
    # the next tool call carries the new audience
    token = run.kc.password_token()
    seen = run.wait(
        "a whoami answer with the new audience",
        lambda: (s := _try_whoami(run, token)) and audiences(s) == [NEW_AUDIENCE] and s,
        120,
    )
    assert seen["azp"] == PROXY_CLIENT_ID and seen.get("token_seen") is True, seen
    print(
        f"\n[{run.mode}] audience patched -> runner rolled in {rolled:.1f}s; MCP server saw aud={seen['aud']!r}"
    )


def test_finalizer_prevents_deletion_of_referenced_mcpexternalauthconfig(phase8: Phase8) -> None:
    run = phase8
    status, body = run.cp.api_request("DELETE", run.config_path)
    assert status == 200, body
    blocked = run.wait(
        "DeletionBlocked",
        lambda: (c := get(run.cp, run.config_path)) and condition(c, "DeletionBlocked") and c,
        60,
    )
    assert blocked["metadata"].get("deletionTimestamp")
    assert FINALIZER in blocked["metadata"]["finalizers"]
    assert NAME in condition(blocked, "DeletionBlocked")["message"]
    run.wait("a DeletionBlocked Event", lambda: events_for(run.cp, run.ns, EXT, "DeletionBlocked"), 30)
    # the server keeps working meanwhile
    token = run.kc.password_token()
    run.wait("a tool call while the deletion is blocked", lambda: _try_whoami(run, token), 60)


def test_finalizer_is_removed_when_no_mcpservers_reference_the_config(phase8: Phase8) -> None:
    run = phase8
    status, body = run.cp.api_request("DELETE", run.server_path)
    assert status == 200, body
    run.wait("the MCPServer gone", lambda: get(run.cp, run.server_path) is None, 120)
    run.wait("the config released and deleted", lambda: get(run.cp, run.config_path) is None, 60)
    run.wait(
        "the runner's StatefulSet and headless Service gone",
        lambda: (
            get(run.cp, f"/apis/apps/v1/namespaces/{run.ns}/statefulsets/{NAME}") is None
            and get(run.cp, f"/api/v1/namespaces/{run.ns}/services/mcp-{NAME}-headless") is None
        ),
        120,
    )


def test_both_flag_based_and_configmap_based_modes_work_correctly(phase8: Phase8) -> None:
    """Both modes: this mode's run saw the exchanged token before and after the update (the
    other mode is the other parameter of this module)."""
    run = phase8
    first = run.seen.get("first_call")
    assert first and audiences(first) == [TARGET_AUDIENCE], run.seen
    assert run.seen.get("new_hash") and run.seen["new_hash"] != run.seen["hash"]


def _failed_with(run: Phase8, name: str, reason: str) -> dict[str, Any]:
    path = f"{G}/namespaces/{run.ns}/mcpservers/{name}"
    srv: dict[str, Any] = run.wait(
        f"{name} Failed ({reason})",
        lambda: (s := get(run.cp, path)) and condition(s, "Ready").get("reason") == reason and s,
        60,
    )
    assert (srv.get("status") or {}).get("phase") == "Failed", srv.get("status")
    assert condition(srv, "Ready")["status"] == "False"
    events = run.wait(
        f"a Warning Event {reason} for {name}", lambda: events_for(run.cp, run.ns, name, reason), 30
    )
    assert {e["type"] for e in events} == {"Warning"}
    assert get(run.cp, f"/apis/apps/v1/namespaces/{run.ns}/deployments/{name}") is None
    return srv


def test_cross_namespace_references_are_rejected(phase8: Phase8) -> None:
    run = phase8
    # a config that exists, but in another namespace
    create(
        run.cp,
        f"/api/v1/namespaces/{run.other_ns}/secrets",
        {"metadata": {"name": SECRET}, "stringData": {"client-secret": PROXY_CLIENT_SECRET}},
    )
    create(run.cp, f"{G}/namespaces/{run.other_ns}/mcpexternalauthconfigs", _extauth(run.kc, "elsewhere"))
    # 1. a namespace field is not part of the reference: refused at admission
    srv = _server(run, "xns-field", "elsewhere")
    srv["spec"]["externalAuthConfigRef"]["namespace"] = run.other_ns
    # (strict field validation, as kubectl sends it; a client asking for none gets the field dropped
    # with a warning, and then case 3 below)
    status, body = run.cp.api_request(
        "POST", f"{G}/namespaces/{run.ns}/mcpservers?fieldValidation=Strict", srv
    )
    assert status in (400, 422) and "namespace" in str(body), (status, body)
    # 2. "<namespace>/<name>": a clear condition and Event, no Deployment
    create(
        run.cp, f"{G}/namespaces/{run.ns}/mcpservers", _server(run, "xns-slash", f"{run.other_ns}/elsewhere")
    )
    srv_slash = _failed_with(run, "xns-slash", "ExternalAuthConfigNotFound")
    assert "same-namespace" in condition(srv_slash, "Ready")["message"]
    # 3. the name of a config that only exists in the other namespace: not found here
    create(run.cp, f"{G}/namespaces/{run.ns}/mcpservers", _server(run, "xns-name", "elsewhere"))
    srv_name = _failed_with(run, "xns-name", "ExternalAuthConfigNotFound")
    assert f"namespace {run.ns}" in condition(srv_name, "Ready")["message"]
    # and the other namespace's config is not held by these servers
    other = get(run.cp, f"{G}/namespaces/{run.other_ns}/mcpexternalauthconfigs/elsewhere")
    assert other is not None and not condition(other, "DeletionBlocked")


def test_missing_references_cause_appropriate_errors(phase8: Phase8) -> None:
    run = phase8
    create(run.cp, f"{G}/namespaces/{run.ns}/mcpservers", _server(run, "lonely", "not-there"))
    srv = _failed_with(run, "lonely", "ExternalAuthConfigNotFound")
    message = condition(srv, "Ready")["message"]
    assert "not-there" in message and run.ns in message, message
    event = events_for(run.cp, run.ns, "lonely", "ExternalAuthConfigNotFound")[0]
    assert "not-there" in event["message"]


# -- item 3: traces through Jaeger's query API ---------------------------------------------------------
def _tag(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span.get("tags", ()) if t["key"] == key), None)


def _parent(span: dict[str, Any]) -> str | None:
    return next((r["spanID"] for r in span.get("references", ()) if r["refType"] == "CHILD_OF"), None)


def _service(tr: dict[str, Any], span: dict[str, Any]) -> str:
    return str(tr["processes"][span["processID"]]["serviceName"])


def _jaeger_holds(j: Jaeger, since: float) -> str:
    """What Jaeger has: services, and per service the root operations of recent traces."""
    lines = []
    for service in j.services():
        roots = sorted(
            {
                f"{s['operationName']} {_tag(s, 'k8s.key') or ''}".strip()
                for tr in j.find_traces(service, start=since - 5, limit=500)
                for s in tr["spans"]
                if _parent(s) is None
            }
        )
        lines.append(f"Jaeger service {service}: roots {roots[:20]}")
    return "\n".join(lines) or "Jaeger has no service"


def test_reconcile_trace_and_runner_request_spans_are_found_in_jaeger(phase8: Phase8) -> None:
    run = phase8
    j = run.jaeger
    key = f"{run.ns}/{NAME}"

    deployment = f"/namespaces/{run.ns}/deployments/{NAME}"

    def reconcile_trace() -> dict[str, Any] | None:
        """The trace of the operator's first apply of the runner Deployment (the operator's
        lease renewals fill Jaeger too: search by the apply's operation, then its url.path)."""
        found = [
            tr
            for tr in j.find_traces(OPERATOR_SERVICE, operation=APPLY, start=run.started - 5, limit=500)
            if any(
                s["operationName"] == APPLY and str(_tag(s, "url.path")).endswith(deployment)
                for s in tr["spans"]
            )
        ]
        return min(found, key=lambda t: min(s["startTime"] for s in t["spans"])) if found else None

    try:
        tr = wait_for("the operator pod's reconcile trace in Jaeger", reconcile_trace, 60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_jaeger_holds(j, run.started)}") from None
    spans = {s["spanID"]: s for s in tr["spans"]}
    roots = [s for s in tr["spans"] if _parent(s) is None]
    assert len(roots) == 1, [s["operationName"] for s in roots]
    root = roots[0]
    # the change that created the Deployment: an event of the MCPServer, of its config, or of one
    # of its owned objects (in ConfigMap mode the Deployment waits for the RunConfig ConfigMap, so
    # whichever of the server's watch events comes after that brings the apply: a level-triggered
    # reconcile, not a fixed order)
    owned = ("ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Service", "Deployment")
    kinds = ("MCPServer", "MCPExternalAuthConfig", *owned)
    assert root["operationName"].startswith(tuple(f"watch {k} " for k in kinds)), root
    root_key = str(_tag(root, "k8s.key"))
    assert root_key in (key, f"{run.ns}/{EXT}") or (
        root["operationName"].split()[1] in owned and root_key.startswith(f"{run.ns}/") and NAME in root_key
    ), root
    applies = [
        s
        for s in tr["spans"]
        if s["operationName"] == APPLY and str(_tag(s, "url.path")).endswith(deployment)
    ]
    assert applies
    for a in applies:  # every write hangs under a delivery, under the watch event
        chain, at = [], a
        while (p := _parent(at)) is not None and p in spans:
            at = spans[p]
            chain.append(at["operationName"])
        assert chain and chain[-1] == root["operationName"], chain
        assert any(n.startswith("bus.deliver ") for n in chain), chain
    assert {_service(tr, s) for s in tr["spans"]} == {OPERATOR_SERVICE}

    # the runner pod's request spans, in the trace the test's client started
    trace_id, client_span = run.seen["client_trace"], run.seen["client_span"]

    def request_trace() -> dict[str, Any] | None:
        t = j.get_trace(trace_id)
        names = {s["operationName"] for s in (t or {}).get("spans", [])}
        wanted = {"phase8 whoami", "thv.proxy.request", "thv.proxy.token_exchange", "tools/call whoami"}
        return t if t and wanted <= names else None

    try:
        req = wait_for("the runner's request spans in the client's trace", request_trace, 60)
    except AssertionError as exc:
        got = sorted(s["operationName"] for s in (j.get_trace(trace_id) or {}).get("spans", []))
        raise AssertionError(f"{exc}: trace {trace_id} has {got}\n{_jaeger_holds(j, run.started)}") from None
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in req["spans"]:
        by_name.setdefault(s["operationName"], []).append(s)
    client = by_name["phase8 whoami"][0]
    assert client["spanID"] == client_span and _service(req, client) == f"phase8-client-{run.mode}"
    # the runner continued the client's context: its request spans are children of the client span
    requests = by_name["thv.proxy.request"]
    assert requests and all(_parent(s) == client_span for s in requests)
    assert {_service(req, s) for s in requests} == {f"thv-runner-{run.mode}"}
    assert all(_tag(s, "thv.mcp_server") in (None, NAME) for s in requests)
    request_ids = {s["spanID"] for s in requests}
    exchanges = by_name["thv.proxy.token_exchange"]
    assert all(_parent(s) in request_ids for s in exchanges)
    tool = by_name["tools/call whoami"]
    assert tool and all(_parent(s) == client_span for s in tool)
    assert {_service(req, s) for s in tool} == {f"mcp-{run.mode}"}
    assert {_tag(s, "mcp.tool.name") for s in tool} == {"whoami"}
    # no secret or token in any exported attribute
    token_fragment = run.kc.password_token().split(".")[2][:24]
    for s in req["spans"] + tr["spans"]:
        for t in s.get("tags", ()):
            value = str(t["value"])
            assert PROXY_CLIENT_SECRET not in value and token_fragment not in value, (
                s["operationName"],
                t["key"],
            )
    print(
        f"\n[{run.mode}] Jaeger: reconcile trace {tr['traceID']} ({len(tr['spans'])} spans); "
        f"request trace {trace_id} ({len(req['spans'])} spans: {sorted(by_name)})"
    )
