"""thv.api: the typed models decode upstream manifests, encode valid bodies and round-trip."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from thv.api import crds, k8s, meta, runconfig
from thv.api.crds import (
    MCPExternalAuthConfig,
    MCPExternalAuthConfigList,
    MCPServer,
    MCPServerList,
    MCPServerSpec,
    MCPToolConfig,
)

# upstream chainsaw test external-auth-configmap fixtures (toolhive-operator.md §14), without the Secret
CHAINSAW = "---".join(
    part
    for part in (Path(__file__).resolve().parents[1] / "fixtures" / "chainsaw-external-auth.yaml")
    .read_text()
    .split("---")
    if "kind: Secret" not in part
)

TOOLCONFIG = """
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPToolConfig
metadata:
  name: fetch-tools
  namespace: default
spec:
  toolsFilter: [fetch]
  toolsOverride:
    fetch:
      name: web_fetch
      description: Fetch a web page
"""

# every MCPServer spec field, none at its default, so the round trip must be exact
FULL_SERVER: dict[str, Any] = {
    "apiVersion": "toolhive.stacklok.dev/v1alpha1",
    "kind": "MCPServer",
    "metadata": {
        "name": "full",
        "namespace": "ns",
        "uid": "0d6f1b9e-1111-2222-3333-444455556666",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2025-10-16T10:00:00Z",
        "labels": {"a": "b"},
        "annotations": {"toolhive.stacklok.dev/externalauthconfig-hash": "0badf00d"},
        "finalizers": ["mcpserver.toolhive.stacklok.dev/finalizer"],
    },
    "spec": {
        "image": "ghcr.io/example/server:1",
        "transport": "streamable-http",
        "proxyMode": "streamable-http",
        "port": 9090,
        "targetPort": 9091,
        "proxyPort": 9092,
        "mcpPort": 9093,
        "args": ["--verbose", "--x=1"],
        "env": [{"name": "A", "value": "1"}],
        "volumes": [{"name": "data", "hostPath": "/data", "mountPath": "/mnt/data", "readOnly": True}],
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
        "secrets": [{"name": "gh", "key": "token", "targetEnvName": "GITHUB_TOKEN"}],
        "serviceAccount": "custom-sa",
        "permissionProfile": {"type": "configmap", "name": "profiles", "key": "profile.json"},
        "podTemplateSpec": {
            "metadata": {"annotations": {"vault.hashicorp.com/agent-inject": "true"}},
            "spec": {"containers": [{"name": "mcp", "resources": {"limits": {"cpu": "2"}}}]},
        },
        "resourceOverrides": {
            "proxyDeployment": {
                "annotations": {"x": "y"},
                "labels": {"team": "a"},
                "podTemplateMetadataOverrides": {"annotations": {"p": "q"}, "labels": {"l": "m"}},
                "env": [{"name": "HTTP_PROXY", "value": "http://proxy:3128"}],
            },
            "proxyService": {"annotations": {"s": "t"}, "labels": {"u": "v"}},
        },
        "oidcConfig": {
            "type": "inline",
            "resourceUrl": "https://mcp.example.com",
            "kubernetes": {
                "serviceAccount": "sa",
                "namespace": "ns2",
                "audience": "aud",
                "issuer": "https://issuer",
                "jwksUrl": "https://issuer/jwks",
                "introspectionUrl": "https://issuer/introspect",
                "useClusterAuth": False,
            },
            "configMap": {"name": "oidc", "key": "other.json"},
            "inline": {
                "issuer": "https://idp",
                "audience": "mcp",
                "jwksUrl": "https://idp/jwks",
                "introspectionUrl": "https://idp/introspect",
                "clientId": "cid",
                "clientSecret": "plain",
                "clientSecretRef": {"name": "oidc-secret", "key": "secret"},
                "thvCABundlePath": "/etc/ca/ca.crt",
                "jwksAuthTokenPath": "/etc/token",
                "jwksAllowPrivateIP": True,
                "insecureAllowHTTP": True,
            },
        },
        "authzConfig": {
            "type": "inline",
            "configMap": {"name": "authz", "key": "policy.json"},
            "inline": {"policies": ["permit(principal, action, resource);"], "entitiesJson": "[{}]"},
        },
        "audit": {"enabled": True},
        "tools": ["fetch"],
        "toolConfigRef": {"name": "tc"},
        "externalAuthConfigRef": {"name": "ea"},
        "telemetry": {
            "openTelemetry": {
                "enabled": True,
                "endpoint": "otel:4318",
                "serviceName": "svc",
                "headers": ["k=v"],
                "insecure": True,
                "metrics": {"enabled": True},
                "tracing": {"enabled": True, "samplingRate": "1.0"},
            },
            "prometheus": {"enabled": True},
        },
        "trustProxyHeaders": True,
        "groupRef": "group-a",
    },
    "status": {
        "conditions": [
            {
                "type": "ImageValidated",
                "status": "True",
                "reason": "ImageValidationSkipped",
                "message": "",
                "lastTransitionTime": "2025-10-16T10:00:01Z",
                "observedGeneration": 3,
            }
        ],
        "toolConfigHash": "12345678",
        "externalAuthConfigHash": "9abcdef0",
        "url": "http://mcp-full-proxy.ns.svc.cluster.local:9092",
        "phase": "Running",
        "message": "ok",
        "observedGeneration": 3,
    },
}


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _decode(data: dict[str, Any], type_: type[Any]) -> Any:
    return msgspec.json.decode(json.dumps(data).encode(), type=type_)


def _subset_modulo_defaults(encoded: Any, original: Any, path: str = "$") -> None:
    """``encoded`` equals ``original`` except for keys dropped because they held the default."""
    if isinstance(original, dict):
        assert isinstance(encoded, dict), path
        for key, value in original.items():
            if key in encoded:
                _subset_modulo_defaults(encoded[key], value, f"{path}.{key}")
            else:
                assert value in DEFAULTS.get(key, ()), f"{path}.{key}={value!r} was dropped"
        assert set(encoded) <= set(original), f"{path}: invented keys {set(encoded) - set(original)}"
    else:
        assert encoded == original, path


#: keys whose value may be omitted on encode because it equals the schema default
DEFAULTS: dict[str, tuple[Any, ...]] = {"transport": ("stdio",), "port": (8080,), "type": ("builtin",)}


@pytest.mark.parametrize("doc", _docs(CHAINSAW) + _docs(TOOLCONFIG), ids=lambda d: d["kind"])
def test_upstream_manifests_round_trip(doc: dict[str, Any]) -> None:
    type_ = {
        "MCPServer": MCPServer,
        "MCPToolConfig": MCPToolConfig,
        "MCPExternalAuthConfig": MCPExternalAuthConfig,
    }[doc["kind"]]
    obj = _decode(doc, type_)
    encoded = msgspec.json.encode(obj)
    assert msgspec.json.decode(encoded, type=type_) == obj
    _subset_modulo_defaults(json.loads(encoded), doc)


def test_chainsaw_values_are_reachable_by_attribute() -> None:
    ea_doc, srv_doc = _docs(CHAINSAW)
    ea = _decode(ea_doc, MCPExternalAuthConfig)
    te = ea.spec.token_exchange
    assert ea.spec.type == crds.EXTERNAL_AUTH_TOKEN_EXCHANGE
    assert te is not None and te.client_secret_ref is not None
    assert (te.token_url, te.client_id, te.audience, te.scopes) == (
        "https://oauth.example.com/token",
        "test-client-id",
        "mcp-backend",
        ["read", "write"],
    )
    assert (te.client_secret_ref.name, te.client_secret_ref.key) == ("oauth-test-secret", "client-secret")
    assert te.external_token_header_name == "X-Upstream-Token"
    srv = _decode(srv_doc, MCPServer)
    assert srv.metadata.name == "external-auth-test"
    assert srv.spec.external_auth_config_ref is not None
    assert srv.spec.external_auth_config_ref.name == "test-external-auth"
    assert srv.spec.permission_profile == crds.PermissionProfileRef(type="builtin", name="network")
    assert srv.spec.resources is not None and srv.spec.resources.limits is not None
    assert srv.spec.resources.limits.cpu == "100m"
    assert srv.spec.proxy_mode == "sse"  # schema default, also the Python default
    assert srv.status is None


def test_full_mcpserver_round_trips_exactly() -> None:
    obj = _decode(FULL_SERVER, MCPServer)
    assert json.loads(msgspec.json.encode(obj)) == FULL_SERVER
    spec = obj.spec
    assert spec.oidc_config is not None and spec.oidc_config.inline is not None
    assert spec.oidc_config.inline.thv_ca_bundle_path == "/etc/ca/ca.crt"
    assert spec.oidc_config.inline.jwks_allow_private_ip is True
    assert spec.pod_template_spec is not None
    assert spec.pod_template_spec["spec"]["containers"][0]["name"] == "mcp"
    assert obj.status is not None and obj.status.conditions is not None
    assert obj.status.conditions[0].observed_generation == 3


def test_every_spec_field_is_exercised_by_the_full_manifest() -> None:
    fields = {f.encode_name for f in msgspec.structs.fields(MCPServerSpec)}
    assert fields == set(FULL_SERVER["spec"])


def test_unknown_fields_are_ignored_on_decode() -> None:
    doc = json.loads(json.dumps(FULL_SERVER))
    doc["spec"]["someFutureField"] = {"nested": [1, 2]}
    doc["spec"]["oidcConfig"]["inline"]["newKnob"] = True
    doc["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
    doc["status"]["referencingWorkloads"] = ["x"]
    obj = _decode(doc, MCPServer)
    assert obj == _decode(FULL_SERVER, MCPServer)
    ea = _docs(CHAINSAW)[0]
    ea["status"] = {"configHash": "abc", "referencingServers": ["a"], "observedGeneration": 1}
    assert _decode(ea, MCPExternalAuthConfig).status == crds.MCPExternalAuthConfigStatus(
        config_hash="abc", observed_generation=1
    )


def test_ports_prefer_new_names_over_deprecated_ones() -> None:
    assert MCPServerSpec(image="i").effective_proxy_port() == 8080
    assert MCPServerSpec(image="i", port=9000).effective_proxy_port() == 9000
    assert MCPServerSpec(image="i", port=9000, proxy_port=7000).effective_proxy_port() == 7000
    assert MCPServerSpec(image="i").effective_mcp_port() is None
    assert MCPServerSpec(image="i", target_port=3000).effective_mcp_port() == 3000
    assert MCPServerSpec(image="i", target_port=3000, mcp_port=4000).effective_mcp_port() == 4000


def test_top_level_objects_encode_api_version_and_kind() -> None:
    srv = MCPServer(metadata=meta.ObjectMeta(name="a", namespace="b"), spec=MCPServerSpec(image="i"))
    assert json.loads(msgspec.json.encode(srv)) == {
        "apiVersion": "toolhive.stacklok.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": "a", "namespace": "b"},
        "spec": {"image": "i"},
    }
    kinds: list[tuple[Any, str]] = [
        (k8s.Deployment, "apps/v1"),
        (k8s.Service, "v1"),
        (k8s.ConfigMap, "v1"),
        (k8s.Secret, "v1"),
        (k8s.ServiceAccount, "v1"),
        (k8s.Role, "rbac.authorization.k8s.io/v1"),
        (k8s.RoleBinding, "rbac.authorization.k8s.io/v1"),
        (k8s.Event, "v1"),
        (k8s.Lease, "coordination.k8s.io/v1"),
    ]
    for cls, api_version in kinds:
        body = json.loads(msgspec.json.encode(cls()))
        assert body["apiVersion"] == api_version == cls.RESOURCE.api_version
        assert body["kind"] == cls.__name__ == cls.RESOURCE.kind


def test_resource_info() -> None:
    assert MCPServer.RESOURCE.api_version == "toolhive.stacklok.dev/v1alpha1"
    assert MCPServer.RESOURCE.plural == "mcpservers"
    assert MCPToolConfig.RESOURCE.short_names == ("tc", "toolconfig")
    assert MCPExternalAuthConfig.RESOURCE.crd_name == "mcpexternalauthconfigs.toolhive.stacklok.dev"
    assert k8s.Deployment.RESOURCE.api_version == "apps/v1"


def test_list_decoding() -> None:
    body = {
        "apiVersion": "toolhive.stacklok.dev/v1alpha1",
        "kind": "MCPServerList",
        "metadata": {"resourceVersion": "77", "continue": "tok"},
        "items": [FULL_SERVER],
    }
    lst = _decode(body, MCPServerList)
    assert lst.metadata.resource_version == "77" and lst.metadata.continue_ == "tok"
    assert lst.items is not None and lst.items[0].metadata.name == "full"
    empty = _decode({"metadata": {"resourceVersion": "1"}, "items": []}, MCPExternalAuthConfigList)
    assert empty.items == []


def _structs(*modules: Any) -> list[type[msgspec.Struct]]:
    return [
        obj
        for module in modules
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, msgspec.Struct) and obj.__module__ == module.__name__
    ]


@pytest.mark.parametrize(
    "cls", _structs(meta, crds, k8s, runconfig), ids=lambda c: f"{c.__module__}.{c.__name__}"
)
def test_every_struct_builds_a_decoder_and_schema(cls: type[msgspec.Struct]) -> None:
    msgspec.json.Decoder(cls)
    msgspec.json.schema(cls)


def test_wire_structs_use_the_shared_config() -> None:
    for cls in _structs(meta, crds, k8s):
        assert cls.__struct_config__.omit_defaults, cls
        for f in msgspec.structs.fields(cls):
            assert "_" not in f.encode_name or f.name == "continue_", (cls, f.name)


def test_deployment_decodes_a_live_object() -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "external-auth-test",
            "namespace": "toolhive-system",
            "ownerReferences": [
                {
                    "apiVersion": "toolhive.stacklok.dev/v1alpha1",
                    "kind": "MCPServer",
                    "name": "external-auth-test",
                    "uid": "u",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [{"manager": "thv"}],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "mcpserver"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "mcpserver"}},
                "spec": {
                    "serviceAccountName": "external-auth-test-proxy-runner",
                    "containers": [
                        {
                            "name": "toolhive",
                            "image": "ghcr.io/stacklok/toolhive/proxyrunner:latest",
                            "args": ["run", "--foreground=true"],
                            "env": [
                                {
                                    "name": "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "oauth-test-secret", "key": "client-secret"}
                                    },
                                }
                            ],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "livenessProbe": {
                                "httpGet": {"path": "/health", "port": "http", "scheme": "HTTP"},
                                "initialDelaySeconds": 30,
                            },
                            "volumeMounts": [
                                {"name": "runconfig", "mountPath": "/etc/runconfig", "readOnly": True}
                            ],
                            "securityContext": {
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                            },
                            "terminationMessagePath": "/dev/termination-log",
                        }
                    ],
                    "volumes": [
                        {"name": "runconfig", "configMap": {"name": "x-runconfig", "defaultMode": 420}}
                    ],
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                    "dnsPolicy": "ClusterFirst",
                },
            },
        },
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
    }
    dep = _decode(live, k8s.Deployment)
    assert dep.metadata.owner_references is not None
    assert dep.metadata.owner_references[0].block_owner_deletion is True
    assert dep.spec is not None and dep.spec.template is not None and dep.spec.template.spec is not None
    (c,) = dep.spec.template.spec.containers or []
    assert c.env is not None and c.env[0].value_from is not None
    assert c.env[0].value_from.secret_key_ref == meta.SecretKeySelector(
        name="oauth-test-secret", key="client-secret"
    )
    assert c.liveness_probe is not None and c.liveness_probe.http_get is not None
    assert c.liveness_probe.http_get.port == "http"
    assert dep.status is not None and dep.status.ready_replicas == 1


def test_runconfig_matches_upstream_shape() -> None:
    """The post-#2537 token-exchange RunConfig for the chainsaw MCPServer (§7.1, §7.3, §14)."""
    te = runconfig.TokenExchangeConfig(
        token_url="https://oauth.example.com/token",
        client_id="test-client-id",
        audience="mcp-backend",
        scopes=["read", "write"],
        header_strategy=runconfig.HEADER_STRATEGY_CUSTOM,
        external_token_header_name="X-Upstream-Token",
    )
    rc = runconfig.RunConfig(
        image="ghcr.io/stackloklabs/yardstick/yardstick-server:0.0.2",
        name="external-auth-test",
        container_name="external-auth-test",
        base_name="external-auth-test",
        transport="stdio",
        host="0.0.0.0",
        port=8080,
        permission_profile_name_or_path="network",
        permission_profile=runconfig.PermissionProfile.builtin_network(),
        env_vars={"MCP_TRANSPORT": "stdio"},
        container_labels={"toolhive-name": "external-auth-test", "toolhive": "true"},
        token_exchange_config=te,
        proxy_mode="sse",
        middleware_configs=[
            runconfig.MiddlewareConfig(
                type=runconfig.MW_TOKEN_EXCHANGE,
                parameters=runconfig.TokenExchangeMiddlewareParams(token_exchange_config=te),
            ),
            runconfig.MiddlewareConfig(
                type=runconfig.MW_MCP_PARSER, parameters=runconfig.ParserMiddlewareParams()
            ),
        ],
    )
    raw = msgspec.json.Encoder(order="deterministic").encode(rc)
    doc = json.loads(raw)
    assert list(doc) == [
        "schema_version",
        "image",
        "name",
        "container_name",
        "base_name",
        "transport",
        "host",
        "port",
        "permission_profile_name_or_path",
        "permission_profile",
        "env_vars",
        "container_labels",
        "token_exchange_config",
        "proxy_mode",
        "middleware_configs",
    ]
    assert doc["schema_version"] == "v0.1.0"
    assert doc["permission_profile"] == {
        "name": "network",
        "network": {"outbound": {"insecure_allow_all": True}, "inbound": {}},
    }
    assert list(doc["container_labels"]) == ["toolhive", "toolhive-name"]  # Go sorts map keys
    params = doc["middleware_configs"][0]["parameters"]["token_exchange_config"]
    # the chainsaw jq assertions
    assert params["token_url"] == "https://oauth.example.com/token"
    assert params["client_id"] == "test-client-id"
    assert params["audience"] == "mcp-backend"
    assert " ".join(params["scopes"]) == "read write"
    assert params["external_token_header_name"] == "X-Upstream-Token"
    assert params["header_strategy"] == "custom"
    assert params["client_secret"] == ""  # no omitempty upstream; `.client_secret // empty` is empty
    assert doc["middleware_configs"][1] == {"type": "mcp-parser", "parameters": {}}
    assert msgspec.json.decode(raw, type=runconfig.RunConfig).token_exchange_config == te


def test_runconfig_always_present_keys() -> None:
    rc = runconfig.RunConfig(image="i", name="n", transport="stdio", host="0.0.0.0", port=8080)
    assert json.loads(msgspec.json.encode(rc)) == {
        "schema_version": "v0.1.0",
        "image": "i",
        "name": "n",
        "transport": "stdio",
        "host": "0.0.0.0",
        "port": 8080,
        "permission_profile": None,
    }


def test_oidc_and_telemetry_key_styles() -> None:
    oidc = json.loads(msgspec.json.encode(runconfig.OIDCConfig(issuer="https://kubernetes.default.svc")))
    assert list(oidc) == [
        "Issuer",
        "Audience",
        "JWKSURL",
        "ClientID",
        "ClientSecret",
        "CACertPath",
        "AuthTokenFile",
        "AllowPrivateIP",
        "InsecureAllowHTTP",
        "IntrospectionURL",
        "ResourceURL",
    ]
    tel = json.loads(msgspec.json.encode(runconfig.TelemetryConfig(endpoint="otel:4318")))
    assert list(tel) == [
        "endpoint",
        "serviceName",
        "serviceVersion",
        "tracingEnabled",
        "metricsEnabled",
        "samplingRate",
        "headers",
        "insecure",
        "enablePrometheusMetricsPath",
        "environmentVariables",
    ]
    assert "customAttributes" in json.loads(
        msgspec.json.encode(runconfig.TelemetryConfig(custom_attributes={"a": "b"}))
    )
    authz = runconfig.AuthzConfig(
        cedar=runconfig.CedarConfig(policies=["permit(principal, action, resource);"])
    )
    assert json.loads(msgspec.json.encode(authz)) == {
        "version": "v1",
        "type": "cedarv1",
        "cedar": {"policies": ["permit(principal, action, resource);"], "entities_json": "[]"},
    }
    assert json.loads(msgspec.json.encode(runconfig.AuditConfig(max_data_size=1024))) == {
        "max_data_size": 1024
    }
