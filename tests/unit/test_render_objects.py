"""thv.render.desired.render: every object thv owns, in both modes (Deployment, Service, RBAC,
ConfigMaps), as server-side-apply bodies owned by the MCPServer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.render.desired import Desired, render
from thv.render.errors import REASON_INVALID_AUTHZ, RenderError
from thv.render.settings import OperatorSettings
from thvtest import objects

FLAGS = OperatorSettings(runner_image="runner:1")
CONFIGMAP = OperatorSettings(runner_image="runner:1", use_configmap=True)
MODES = pytest.mark.parametrize("settings", [FLAGS, CONFIGMAP], ids=["flags", "configmap"])
COMMON = {
    "app": "mcpserver",
    "app.kubernetes.io/name": "mcpserver",
    "app.kubernetes.io/instance": "srv",
    "toolhive": "true",
    "toolhive-name": "srv",
}
#: on every object thv renders (and so applies); never on the pod template
MANAGED = {"app.kubernetes.io/managed-by": "thv"}
REQUIRED_ENV = [
    {"name": "XDG_CONFIG_HOME", "value": "/tmp"},
    {"name": "HOME", "value": "/tmp"},
    {"name": "TOOLHIVE_RUNTIME", "value": "kubernetes"},
    {"name": "UNSTRUCTURED_LOGS", "value": "false"},
]


def server(spec: str) -> MCPServer:
    return objects.server(
        spec,
        metadata={"uid": "uid-1", "resourceVersion": "42", "generation": 3},
        status={"phase": "Running", "url": "http://x"},
    )


def extauth(token_exchange: str, config_hash: str = "ea11") -> MCPExternalAuthConfig:
    return objects.extauth(token_exchange, config_hash=config_hash)


def toolconfig(config_hash: str = "7c11") -> MCPToolConfig:
    return objects.toolconfig({"toolsFilter": ["a"]}, config_hash=config_hash)


TE = "tokenUrl: https://idp/token\nclientId: cid\nclientSecretRef: {name: te-secret, key: te-key}\naudience: aud"


def body(obj: Any) -> dict[str, Any]:
    out = msgspec.to_builtins(obj)
    assert isinstance(out, dict)
    return out


def dep(d: Desired) -> dict[str, Any]:
    return body(d.deployment)


def container(d: Desired) -> dict[str, Any]:
    c = dep(d)["spec"]["template"]["spec"]["containers"][0]
    assert isinstance(c, dict)
    return c


def template_meta(d: Desired) -> dict[str, Any]:
    meta = dep(d)["spec"]["template"]["metadata"]
    assert isinstance(meta, dict)
    return meta


# --- Deployment ------------------------------------------------------------------------------------


@MODES
def test_deployment_shape(settings: OperatorSettings) -> None:
    d = render(server("image: img:1\nresources: {limits: {cpu: 100m}, requests: {memory: 64Mi}}"), settings)
    dep_body = dep(d)
    assert (dep_body["apiVersion"], dep_body["kind"]) == ("apps/v1", "Deployment")
    assert dep_body["metadata"]["name"] == "srv" and dep_body["metadata"]["namespace"] == "ns"
    assert dep_body["metadata"]["labels"] == {**COMMON, **MANAGED}
    assert "annotations" not in dep_body["metadata"]
    spec = dep_body["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == {"matchLabels": COMMON}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "srv-proxy-runner"
    assert len(pod["containers"]) == 1
    c = pod["containers"][0]
    assert c["name"] == "toolhive" and c["image"] == "runner:1" and "imagePullPolicy" not in c
    assert (
        c["args"] == list(d.args)
        and c["args"][:2] == ["run", "--foreground=true"]
        and c["args"][-1] == "img:1"
    )
    assert c["ports"] == [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]
    assert c["resources"] == {"limits": {"cpu": "100m"}, "requests": {"memory": "64Mi"}}
    probe = {"httpGet": {"port": "http", "path": "/health"}}
    assert c["livenessProbe"] == {
        **probe,
        "initialDelaySeconds": 30,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"] == {
        **probe,
        "initialDelaySeconds": 5,
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    assert c["securityContext"] == {
        "privileged": False,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
    }
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
    }
    assert c["env"] == REQUIRED_ENV


def test_openshift_security_context() -> None:
    d = render(server("image: img"), OperatorSettings(platform="openshift"))
    assert container(d)["securityContext"] == {
        "privileged": False,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert dep(d)["spec"]["template"]["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


@pytest.mark.parametrize(
    ("spec", "port"),
    [
        ("image: img", 8080),
        ("image: img\nport: 9000", 9000),
        ("image: img\nport: 9000\nproxyPort: 9100", 9100),
    ],
)
def test_proxy_port_everywhere(spec: str, port: int) -> None:
    d = render(server(spec), CONFIGMAP)
    assert container(d)["ports"][0]["containerPort"] == port
    assert body(d.service)["spec"]["ports"] == [
        {"port": port, "name": "http", "protocol": "TCP", "targetPort": port}
    ]
    assert d.run_config.port == port


def test_no_resources_when_unset() -> None:
    assert "resources" not in container(render(server("image: img\nresources: {limits: {}}"), FLAGS))


@MODES
def test_env_in_upstream_order(settings: OperatorSettings) -> None:
    spec = """
image: img
externalAuthConfigRef: {name: ext}
oidcConfig: {type: inline, inline: {issuer: https://iss, clientSecretRef: {name: oidc-secret, key: oidc-key}}}
telemetry: {openTelemetry: {enabled: false, serviceName: svc}}
resourceOverrides: {proxyDeployment: {env: [{name: HOME, value: /home/x}, {name: EXTRA, value: '1'}]}}
"""
    d = render(server(spec), settings, external_auth=extauth(TE))
    assert container(d)["env"] == [
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "service.name=svc,service.namespace=ns"},
        {
            "name": "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET",
            "valueFrom": {"secretKeyRef": {"key": "te-key", "name": "te-secret"}},
        },
        {
            "name": "TOOLHIVE_OIDC_CLIENT_SECRET",
            "valueFrom": {"secretKeyRef": {"key": "oidc-key", "name": "oidc-secret"}},
        },
        {"name": "HOME", "value": "/home/x"},
        {"name": "EXTRA", "value": "1"},
        {"name": "XDG_CONFIG_HOME", "value": "/tmp"},
        {"name": "TOOLHIVE_RUNTIME", "value": "kubernetes"},
        {"name": "UNSTRUCTURED_LOGS", "value": "false"},
    ]


def test_otel_env_defaults_to_the_server_name_and_no_secret_env_without_ref() -> None:
    d = render(
        server("image: img\ntelemetry: {openTelemetry: {}}\nexternalAuthConfigRef: {name: ext}"),
        FLAGS,
        external_auth=extauth("tokenUrl: https://t\naudience: a"),
    )
    assert container(d)["env"][0] == {
        "name": "OTEL_RESOURCE_ATTRIBUTES",
        "value": "service.name=srv,service.namespace=ns",
    }
    assert [e["name"] for e in container(d)["env"]][1:] == [e["name"] for e in REQUIRED_ENV]


VOLUMES = """
image: img
volumes: [{name: data, hostPath: /h, mountPath: /m, readOnly: true}, {name: rw, hostPath: /h2, mountPath: /m2}]
permissionProfile: {type: configmap, name: prof, key: p.json}
authzConfig: {type: configMap, configMap: {name: az, key: policy.json}}
"""


@MODES
def test_volumes_in_upstream_order(settings: OperatorSettings) -> None:
    d = render(
        server(VOLUMES),
        settings,
        permission_profile_data={"p.json": "{}"},
        authz_configmap_data={
            "policy.json": '{"version":"1.0","type":"cedarv1","cedar":{"policies":["permit(principal, action, resource);"]}}'
        },
    )
    pod = dep(d)["spec"]["template"]["spec"]
    runconfig = (
        [{"name": "runconfig", "configMap": {"name": "srv-runconfig"}}] if settings.use_configmap else []
    )
    runconfig_mount = (
        [{"name": "runconfig", "mountPath": "/etc/runconfig", "readOnly": True}]
        if settings.use_configmap
        else []
    )
    assert pod["volumes"] == [
        *runconfig,
        {"name": "data", "hostPath": {"path": "/h"}},
        {"name": "rw", "hostPath": {"path": "/h2"}},
        {"name": "permission-profile", "configMap": {"name": "prof"}},
        {
            "name": "authz-config",
            "configMap": {"name": "az", "items": [{"key": "policy.json", "path": "authz.json"}]},
        },
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        *runconfig_mount,
        {"name": "data", "mountPath": "/m", "readOnly": True},
        {"name": "rw", "mountPath": "/m2"},
        {"name": "permission-profile", "mountPath": "/etc/toolhive/profiles", "readOnly": True},
        {"name": "authz-config", "mountPath": "/etc/toolhive/authz", "readOnly": True},
    ]


def test_no_volumes_in_flag_mode_by_default() -> None:
    pod = dep(render(server("image: img"), FLAGS))["spec"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]


OVERRIDES = """
image: img
resourceOverrides:
  proxyDeployment:
    labels: {app: hijack, team: a, app.kubernetes.io/managed-by: argocd}
    annotations: {dep-note: d, shared: from-deployment}
    podTemplateMetadataOverrides:
      labels: {toolhive-name: hijack, pod-label: p}
      annotations:
        shared: from-template
        pod-note: p
        toolhive.stacklok.dev/runconfig-checksum: user-value
        toolhive.stacklok.dev/externalauthconfig-hash: user-value
  proxyService:
    labels: {toolhive: 'false', svc-label: s}
    annotations: {svc-note: s}
externalAuthConfigRef: {name: ext}
"""


@MODES
def test_resource_overrides(settings: OperatorSettings) -> None:
    d = render(server(OVERRIDES), settings, external_auth=extauth(TE))
    meta = dep(d)["metadata"]
    assert meta["labels"] == {**COMMON, **MANAGED, "team": "a"}  # operator labels win
    assert meta["annotations"] == {"dep-note": "d", "shared": "from-deployment"}
    tmeta = template_meta(d)
    assert tmeta["labels"] == {**COMMON, "pod-label": "p"}  # applied to the template (fixed upstream bug)
    expected = {
        "dep-note": "d",
        "shared": "from-deployment",  # Deployment annotations win over template overrides
        "pod-note": "p",
        "toolhive.stacklok.dev/externalauthconfig-hash": "ea11",  # thv's own annotations win
    }
    if settings.use_configmap:
        expected["toolhive.stacklok.dev/runconfig-checksum"] = d.runconfig_checksum or ""
    else:
        expected["toolhive.stacklok.dev/runconfig-checksum"] = "user-value"
    assert tmeta["annotations"] == expected
    assert dep(d)["spec"]["selector"]["matchLabels"] == COMMON
    svc = body(d.service)
    assert svc["metadata"]["name"] == "mcp-srv-proxy"
    assert svc["metadata"]["labels"] == {**COMMON, **MANAGED, "svc-label": "s"}
    assert svc["metadata"]["annotations"] == {"svc-note": "s"}
    assert svc["spec"]["selector"] == COMMON


def test_template_annotations_without_overrides() -> None:
    assert "annotations" not in template_meta(render(server("image: img"), FLAGS))
    d = render(server("image: img"), CONFIGMAP)
    assert template_meta(d)["annotations"] == {
        "toolhive.stacklok.dev/runconfig-checksum": d.runconfig_checksum
    }
    assert d.runconfig_configmap is not None and d.runconfig_configmap.metadata.annotations == {
        "toolhive.stacklok.dev/content-checksum": d.runconfig_checksum
    }


@MODES
def test_config_hash_annotations_roll_the_pods(settings: OperatorSettings) -> None:
    spec = "image: img\nexternalAuthConfigRef: {name: ext}\ntoolConfigRef: {name: tc}"
    d = render(server(spec), settings, external_auth=extauth(TE), tool_config=toolconfig())
    annotations = template_meta(d)["annotations"]
    assert annotations["toolhive.stacklok.dev/externalauthconfig-hash"] == "ea11"
    assert annotations["toolhive.stacklok.dev/toolconfig-hash"] == "7c11"
    explicit = render(
        server(spec),
        settings,
        external_auth=extauth(TE),
        tool_config=toolconfig(),
        extauth_hash="e2",
        toolconfig_hash="t2",
    )
    annotations = template_meta(explicit)["annotations"]
    assert annotations["toolhive.stacklok.dev/externalauthconfig-hash"] == "e2"
    assert annotations["toolhive.stacklok.dev/toolconfig-hash"] == "t2"
    changed = render(server(spec), settings, external_auth=extauth(TE, "ea22"), tool_config=toolconfig())
    assert template_meta(changed)["annotations"] != template_meta(d)["annotations"]
    unhashed = render(server(spec), settings, external_auth=extauth(TE, ""), tool_config=toolconfig(""))
    assert not any(k.endswith("-hash") for k in (template_meta(unhashed).get("annotations") or {}))


def restart_request(annotations: dict[str, str]) -> MCPServer:
    srv = server("image: img")
    return msgspec.structs.replace(
        srv, metadata=msgspec.structs.replace(srv.metadata, annotations=annotations)
    )


RESTARTED_AT = "mcpserver.toolhive.stacklok.dev/restarted-at"
STRATEGY = "mcpserver.toolhive.stacklok.dev/restart-strategy"
LAST = "mcpserver.toolhive.stacklok.dev/last-processed-restart"


@pytest.mark.parametrize("strategy", [None, "rolling", "unknown-means-rolling"])
def test_a_rolling_restart_request_is_kept_on_the_pod_template(strategy: str | None) -> None:
    annotations = {RESTARTED_AT: "2025-10-16T10:00:00Z", **({STRATEGY: strategy} if strategy else {})}
    d = render(restart_request(annotations), FLAGS)
    assert template_meta(d)["annotations"] == {RESTARTED_AT: "2025-10-16T10:00:00Z"}
    # processed or not, the request stays on the template (no second roll on a later apply)
    processed = render(restart_request({**annotations, LAST: "2025-10-16T10:00:00Z"}), FLAGS)
    assert template_meta(processed)["annotations"] == {RESTARTED_AT: "2025-10-16T10:00:00Z"}


@pytest.mark.parametrize(
    "annotations",
    [
        {RESTARTED_AT: "2025-10-16T10:00:00Z", STRATEGY: "immediate"},  # deletes pods instead
        {RESTARTED_AT: "yesterday"},  # unparsable: ignored, as upstream
        {RESTARTED_AT: "2025-10-16"},  # a date is not an RFC 3339 time
    ],
)
def test_no_template_annotation_for_immediate_or_invalid_requests(annotations: dict[str, str]) -> None:
    assert "annotations" not in template_meta(render(restart_request(annotations), FLAGS))


def test_pending_restart_requests() -> None:
    from thv.render.restart import pending

    at = "2025-10-16T10:00:00Z"
    assert pending(restart_request({RESTARTED_AT: at})) == at
    assert pending(restart_request({RESTARTED_AT: at, LAST: "2025-10-16T09:59:59Z"})) == at
    assert pending(restart_request({RESTARTED_AT: at, LAST: "not a time"})) == at
    assert pending(restart_request({RESTARTED_AT: at, LAST: at})) is None
    assert (
        pending(restart_request({RESTARTED_AT: "2025-10-16T12:00:00+02:00", LAST: at})) is None
    )  # same instant
    assert pending(restart_request({RESTARTED_AT: "garbage"})) is None
    assert pending(restart_request({})) is None


def test_runconfig_checksum_follows_the_runconfig() -> None:
    spec = "image: img\nexternalAuthConfigRef: {name: ext}"
    one = render(server(spec), CONFIGMAP, external_auth=extauth(TE), extauth_hash="same")
    two = render(server(spec), CONFIGMAP, external_auth=extauth(TE + "\nscopes: [x]"), extauth_hash="same")
    assert one.runconfig_checksum != two.runconfig_checksum
    assert template_meta(one)["annotations"] != template_meta(two)["annotations"]


# --- RBAC, ServiceAccounts, ConfigMaps -----------------------------------------------------------------


def test_rbac() -> None:
    d = render(server("image: img"), FLAGS)
    sa = body(d.proxy_runner_service_account)
    assert (sa["kind"], sa["metadata"]["name"]) == ("ServiceAccount", "srv-proxy-runner")
    role = body(d.proxy_runner_role)
    assert (role["apiVersion"], role["kind"], role["metadata"]["name"]) == (
        "rbac.authorization.k8s.io/v1",
        "Role",
        "srv-proxy-runner",
    )
    all_verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    assert role["rules"] == [
        {"verbs": all_verbs, "apiGroups": ["apps"], "resources": ["statefulsets"]},
        {"verbs": all_verbs, "apiGroups": [""], "resources": ["services"]},
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
        {"verbs": ["create", "get"], "apiGroups": [""], "resources": ["pods/attach"]},
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps"]},
    ]
    assert not any("apply" in rule["verbs"] for rule in role["rules"])
    binding = body(d.proxy_runner_role_binding)
    assert binding["metadata"]["name"] == "srv-proxy-runner"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "srv-proxy-runner",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "srv-proxy-runner", "namespace": "ns"}]
    for obj in (sa, role, binding):
        assert obj["metadata"]["labels"] == MANAGED  # upstream: no labels


def test_mcp_service_account_only_when_unset() -> None:
    d = render(server("image: img"), FLAGS)
    assert d.mcp_service_account is not None and d.mcp_service_account.metadata.name == "srv-sa"
    assert render(server("image: img\nserviceAccount: mine"), FLAGS).mcp_service_account is None
    assert "srv-sa" in json.dumps(list(d.args))  # the pod patch names it


def test_inline_authz_configmap() -> None:
    spec = (
        "image: img\nauthzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource)"
        " when { context.x > 1 };', 'forbid(principal, action, resource);'], entitiesJson: '[ ]'}}"
    )
    d = render(server(spec), FLAGS)
    assert d.authz_configmap is not None
    cm = body(d.authz_configmap)
    assert cm["metadata"]["name"] == "srv-authz-inline"
    assert cm["metadata"]["labels"] == {**COMMON, **MANAGED, "toolhive.stacklok.io/authz": "inline"}
    assert cm["data"] == {
        "authz.json": '{"cedar":{"entities_json":"[ ]","policies":["permit(principal, action, resource)'
        ' when { context.x \\u003e 1 };","forbid(principal, action, resource);"]},'
        '"type":"cedarv1","version":"1.0"}'
    }
    assert ("ConfigMap", "srv-authz-inline") not in d.unwanted
    assert "--authz-config=/etc/toolhive/authz/authz.json" in d.args
    mount = container(d)["volumeMounts"][-1]
    assert mount == {"name": "authz-config", "mountPath": "/etc/toolhive/authz", "readOnly": True}
    assert dep(d)["spec"]["template"]["spec"]["volumes"][-1] == {
        "name": "authz-config",
        "configMap": {"name": "srv-authz-inline", "items": [{"key": "authz.json", "path": "authz.json"}]},
    }


def test_unwanted_and_mode_specific_objects() -> None:
    flags = render(server("image: img"), FLAGS)
    assert flags.runconfig_configmap is None and flags.runconfig_checksum is None
    assert flags.unwanted == (("ConfigMap", "srv-runconfig"), ("ConfigMap", "srv-authz-inline"))
    cm = render(server("image: img"), CONFIGMAP)
    assert cm.runconfig_configmap is not None
    assert cm.unwanted == (("ConfigMap", "srv-authz-inline"),)
    assert [o.kind for o in cm.objects()] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
    ]


# --- every object: ownership, SSA hygiene, determinism, no secrets ---------------------------------------

RICH = """
image: img
transport: streamable-http
mcpPort: 9090
serviceAccount: mine
secrets: [{name: app-secret, key: token, targetEnvName: APP_TOKEN}]
externalAuthConfigRef: {name: ext}
toolConfigRef: {name: tc}
oidcConfig: {type: inline, inline: {issuer: https://iss, clientSecretRef: {name: oidc-secret, key: k}}}
authzConfig: {type: inline, inline: {policies: ["permit(principal, action, resource);"]}}
audit: {enabled: true}
telemetry: {openTelemetry: {enabled: true, endpoint: otel:4317}}
"""


def rich(settings: OperatorSettings) -> Desired:
    return render(server(RICH), settings, external_auth=extauth(TE), tool_config=toolconfig())


@MODES
def test_every_object_is_an_owned_apply_body(settings: OperatorSettings) -> None:
    d = rich(settings)
    objects = d.bodies()
    assert len(objects) == (7 if settings.use_configmap else 6)
    for obj in objects:
        meta = obj["metadata"]
        assert set(obj) <= {"apiVersion", "kind", "metadata", "spec", "data", "rules", "roleRef", "subjects"}
        assert meta["namespace"] == "ns"
        assert set(meta) <= {"name", "namespace", "labels", "annotations", "ownerReferences"}
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "toolhive.stacklok.dev/v1alpha1",
                "kind": "MCPServer",
                "name": "srv",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


@MODES
def test_render_twice_gives_identical_bytes(settings: OperatorSettings) -> None:
    encode = msgspec.json.Encoder(order="deterministic").encode
    assert encode(rich(settings).bodies()) == encode(rich(settings).bodies())
    assert msgspec.json.encode(rich(settings).bodies()) == msgspec.json.encode(rich(settings).bodies())


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


@MODES
def test_secret_names_only_as_references(settings: OperatorSettings) -> None:
    d = rich(settings)
    everything = json.dumps(d.bodies())
    assert "test-secret-value" not in everything
    for path, value in _strings(d.bodies()):
        for secret in ("te-secret", "oidc-secret"):
            if secret in value:
                assert path.endswith("secretKeyRef.name"), path
    patch = json.loads(next(a for a in d.args if a.startswith("--k8s-pod-patch=")).split("=", 1)[1])
    assert patch["spec"]["containers"] == [
        {
            "name": "mcp",
            "env": [
                {"name": "APP_TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "token"}}}
            ],
        }
    ]
    assert patch["spec"]["serviceAccountName"] == "mine"
    assert not any("secret" in a.split("=", 1)[0] for a in d.args)


def test_render_errors_propagate() -> None:
    with pytest.raises(RenderError) as err:
        render(server("image: img\ntransport: sse"), FLAGS)
    assert err.value.reason == "MissingTargetPort"
    with pytest.raises(RenderError) as err:
        render(server("image: img\npodTemplateSpec: {spec: {containers: 1}}"), CONFIGMAP)
    assert err.value.reason == "InvalidPodTemplateSpec"
    with pytest.raises(RenderError) as err:
        render(server("image: img\nexternalAuthConfigRef: {name: ext}"), CONFIGMAP)
    assert err.value.reason == "MissingReferencedConfig"


def test_namespace_less_manifest_renders_into_default() -> None:
    srv = msgspec.convert(
        {
            "apiVersion": "toolhive.stacklok.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "x"},
            "spec": {"image": "i"},
        },
        MCPServer,
    )
    d = render(srv, CONFIGMAP)
    assert {o.metadata.namespace for o in d.objects()} == {"default"}


@pytest.mark.parametrize("transport", ["stdio", "sse", "streamable-http"])
def test_names_the_proxy_runners_statefulset_cannot_run_are_refused(transport: str) -> None:
    """The StatefulSet ``<name>`` labels its pods ``controller-revision-hash=<name>-<10 chars>``:
    52 characters is the longest name whose pods can exist, whatever the Service names allow."""
    spec = f"image: img\ntransport: {transport}\nmcpPort: 8080"
    longest = 52 if transport == "stdio" else 50  # sse/streamable-http: mcp-<name>-headless
    ok = msgspec.structs.replace(
        server(spec), metadata=msgspec.structs.replace(server(spec).metadata, name="a" * longest)
    )
    render(ok, FLAGS)
    for length in range(longest + 1, 64):
        bad = msgspec.structs.replace(ok, metadata=msgspec.structs.replace(ok.metadata, name="a" * length))
        with pytest.raises(RenderError) as err:
            render(bad, FLAGS)
        assert err.value.reason == "InvalidName"
        assert ("over 52 characters" if transport == "stdio" else "at most") in err.value.message


@MODES
def test_what_thv_applies_is_what_it_renders(settings: OperatorSettings) -> None:
    """The managed-by label thv's watches select by is part of the rendering (so ``thv render`` and
    ``--diff`` show it, and it wins over an override), and the Applier sends each body unchanged."""
    import anyio

    from thv.kube.resources import Resource
    from thv.sources.kinds import OWNED_RESOURCES as RESOURCES
    from thv.writers.apply import Applier

    d = render(server(OVERRIDES), settings, external_auth=extauth(TE))
    for body in d.bodies():
        assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "thv", body["kind"]
    assert "app.kubernetes.io/managed-by" not in template_meta(d)["labels"]

    sent: list[dict[str, Any]] = []

    class Client:
        async def apply(self, res: Resource, name: str, body: bytes, namespace: str | None) -> bytes:
            sent.append(json.loads(body))
            return b'{"metadata": {"resourceVersion": "1"}}'

    applier = Applier(Client())  # type: ignore[arg-type]

    async def apply_all() -> None:
        for obj in d.objects():
            await applier.apply(RESOURCES[obj.kind], obj, None)

    anyio.run(apply_all)
    assert sent == d.bodies()


@pytest.mark.parametrize(
    ("spec", "data", "message"),
    [
        (
            "image: img\nauthzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource']}}",
            None,
            "authzConfig.inline: Cedar policy 0 does not parse: ",
        ),
        (
            "image: img\nauthzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);'],"
            " entitiesJson: '{}'}}",
            None,
            "authzConfig.inline: Cedar entities_json is invalid: entities_json must be a JSON array",
        ),
        (
            "image: img\nauthzConfig: {type: configMap, configMap: {name: pol}}",
            {"authz.json": '{"version":"1.0","type":"cedarv1","cedar":{"policies":["permit(x);"]}}'},
            'authz ConfigMap ns/pol key "authz.json": Cedar policy 0 does not parse: ',
        ),
    ],
    ids=["inline-policy", "inline-entities", "configmap-policy"],
)
def test_a_cedar_policy_that_does_not_parse_is_refused_before_any_pod_starts(
    spec: str, data: dict[str, str] | None, message: str
) -> None:
    """The same parse the runner's authorization middleware runs at start (thv.render.authz)."""
    with pytest.raises(RenderError) as caught:
        render(server(spec), FLAGS, authz_configmap_data=data)
    assert caught.value.reason == REASON_INVALID_AUTHZ
    assert caught.value.message.startswith(message), caught.value.message
