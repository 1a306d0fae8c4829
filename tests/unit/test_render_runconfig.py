"""thv.render.runconfig: MCPServer (+ refs) → upstream runconfig.json, validation, ConfigMap."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from thv.api import runconfig as rc
from thv.api.crds import (
    MCPExternalAuthConfig,
    MCPExternalAuthConfigSpec,
    MCPServer,
    MCPToolConfig,
    TokenExchangeConfig,
)
from thv.render.errors import RenderError
from thv.render.refs import References
from thv.render.runconfig import (
    build_run_config,
    content_checksum,
    normalize_subject_token_type,
    runconfig_configmap,
    runconfig_json,
)
from thv.render.settings import OperatorSettings
from thvtest import objects

SETTINGS = OperatorSettings(use_configmap=True, service_version="v9.9.9")


def server(spec: str, name: str = "srv", namespace: str = "ns") -> MCPServer:
    return objects.server(spec, name=name, namespace=namespace, metadata={"uid": "u-1"})


def extauth(token_exchange: str, name: str = "ext") -> MCPExternalAuthConfig:
    return objects.extauth(token_exchange, name=name, config_hash="beefcafe")


def toolconfig(spec: str) -> MCPToolConfig:
    return objects.toolconfig(spec, config_hash="1234abcd")


def rendered(srv: MCPServer, refs: References | None = None) -> dict[str, Any]:
    out = json.loads(runconfig_json(build_run_config(srv, SETTINGS, refs or References())))
    assert isinstance(out, dict)
    return out


def mw(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [m["parameters"] for m in doc["middleware_configs"] if m["type"] == kind]
    assert len(found) == 1, kind
    params = found[0]
    assert isinstance(params, dict)
    return params


def mw_types(doc: dict[str, Any]) -> list[str]:
    return [m["type"] for m in doc["middleware_configs"]]


BASIC_TE = """
tokenUrl: https://idp.example.com/token
clientId: cid
clientSecretRef: {name: s, key: k}
audience: backend
"""


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


#: the key must not be in the JSON (Go omitempty); ``None`` means JSON ``null``
ABSENT: Any = _Absent()

# (id, spec, refs, expected subset of runconfig.json)
CASES: list[tuple[str, str, References, dict[str, Any]]] = [
    (
        "minimal-stdio",
        "image: img:1",
        References(),
        {
            "schema_version": "v0.1.0",
            "image": "img:1",
            "name": "srv",
            "container_name": "srv",
            "base_name": "srv",
            "transport": "stdio",
            "host": "0.0.0.0",
            "port": 8080,
            "target_port": ABSENT,
            "cmd_args": ABSENT,
            "permission_profile_name_or_path": ABSENT,
            "permission_profile": {
                "name": "network",
                "network": {"outbound": {"insecure_allow_all": True}, "inbound": {}},
            },
            "env_vars": {"MCP_TRANSPORT": "stdio"},
            "container_labels": {
                "toolhive": "true",
                "toolhive-basename": "srv",
                "toolhive-name": "srv",
                "toolhive-port": "8080",
                "toolhive-tool-type": "mcp",
                "toolhive-transport": "stdio",
            },
            "proxy_mode": "sse",
            "oidc_config": ABSENT,
            "token_exchange_config": ABSENT,
            "authz_config": ABSENT,
            "audit_config": ABSENT,
            "telemetry_config": ABSENT,
            "trust_proxy_headers": ABSENT,
            "tools_filter": ABSENT,
            "secrets": ABSENT,
            "k8s_pod_template_patch": ABSENT,
        },
    ),
    (
        "streamable-http-new-ports",
        "image: img\ntransport: streamable-http\nproxyPort: 8081\nmcpPort: 9090",
        References(),
        {
            "transport": "streamable-http",
            "port": 8081,
            "target_port": 9090,
            "env_vars": {"MCP_TRANSPORT": "streamable-http", "MCP_PORT": "9090", "FASTMCP_PORT": "9090"},
        },
    ),
    (
        "sse-deprecated-ports",
        "image: img\ntransport: sse\nport: 8000\ntargetPort: 8001",
        References(),
        {"transport": "sse", "port": 8000, "target_port": 8001},
    ),
    (
        "new-ports-win",
        "image: img\ntransport: sse\nport: 8000\ntargetPort: 8001\nproxyPort: 7000\nmcpPort: 7001",
        References(),
        {"port": 7000, "target_port": 7001},
    ),
    (
        "stdio-target-port-no-mcp-port-env",
        "image: img\ntargetPort: 9000",
        References(),
        {"target_port": 9000, "env_vars": {"MCP_TRANSPORT": "stdio"}},
    ),
    (
        "stdio-proxy-mode-streamable",
        "image: img\nproxyMode: streamable-http",
        References(),
        {"proxy_mode": "streamable-http"},
    ),
    ("args", "image: img\nargs: [--a, b]", References(), {"cmd_args": ["--a", "b"]}),
    (
        "env",
        "image: img\nenv: [{name: B, value: '2'}, {name: A, value: '1'}]",
        References(),
        {"env_vars": {"A": "1", "B": "2", "MCP_TRANSPORT": "stdio"}},
    ),
    (
        "volumes",
        "image: img\nvolumes:\n- {name: a, hostPath: /h/a, mountPath: /m/a, readOnly: true}\n"
        "- {name: b, hostPath: /h/b, mountPath: /m/b}",
        References(),
        {"volumes": ["/h/a:/m/a:ro", "/h/b:/m/b"]},
    ),
    (
        "permission-none",
        "image: img\npermissionProfile: {type: builtin, name: none}",
        References(),
        {
            "permission_profile_name_or_path": "none",
            "permission_profile": {"name": "none", "network": {"outbound": {}, "inbound": {}}},
        },
    ),
    (
        "permission-network",
        "image: img\npermissionProfile: {type: builtin, name: network}",
        References(),
        {"permission_profile_name_or_path": "network"},
    ),
    (
        "permission-configmap",
        "image: img\npermissionProfile: {type: configmap, name: prof, key: p.json}",
        References(permission_profile_data={"p.json": '{"name": "custom", "read": ["/x:/x"]}'}),
        {
            "permission_profile_name_or_path": "/etc/toolhive/profiles/p.json",
            "permission_profile": {"name": "custom", "read": ["/x:/x"]},
        },
    ),
    (
        "trust-proxy-headers",
        "image: img\ntrustProxyHeaders: true",
        References(),
        {"trust_proxy_headers": True},
    ),
    (
        "audit-on",
        "image: img\naudit: {enabled: true}",
        References(),
        {"audit_config": {"max_data_size": 1024}},
    ),
    ("audit-off", "image: img\naudit: {enabled: false}", References(), {"audit_config": ABSENT}),
    (
        "tools",
        "image: img\ntools: [b, a]",
        References(),
        {"tools_filter": ["b", "a"], "tools_override": ABSENT},
    ),
    (
        "tool-config-ref-wins",
        "image: img\ntools: [ignored]\ntoolConfigRef: {name: tc}",
        References(tool_config=toolconfig("toolsFilter: [fetch]\ntoolsOverride: {fetch: {name: web_fetch}}")),
        {"tools_filter": ["fetch"], "tools_override": {"fetch": {"name": "web_fetch"}}},
    ),
    (
        "vault-on-mcp-template",
        "image: img\npodTemplateSpec: {metadata: {annotations: {vault.hashicorp.com/agent-inject: 'true'}}}",
        References(),
        {"env_file_dir": "/vault/secrets"},
    ),
    (
        "vault-on-proxy-template",
        "image: img\nresourceOverrides: {proxyDeployment: {podTemplateMetadataOverrides: "
        "{annotations: {vault.hashicorp.com/agent-inject: 'true'}}}}",
        References(),
        {"env_file_dir": "/vault/secrets"},
    ),
    (
        "oidc-kubernetes-default",
        "image: img\noidcConfig: {type: kubernetes}",
        References(),
        {
            "oidc_config": {
                "Issuer": "https://kubernetes.default.svc",
                "Audience": "toolhive",
                "JWKSURL": "",
                "ClientID": "",
                "ClientSecret": "",
                "CACertPath": "",
                "AuthTokenFile": "",
                "AllowPrivateIP": True,
                "InsecureAllowHTTP": False,
                "IntrospectionURL": "",
                "ResourceURL": "http://srv.ns.svc.cluster.local:8080",
            },
            "thv_ca_bundle": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            "jwks_auth_token_file": "/var/run/secrets/kubernetes.io/serviceaccount/token",
        },
    ),
    (
        "oidc-kubernetes-no-cluster-auth",
        "image: img\nproxyPort: 9000\noidcConfig: {type: kubernetes, resourceUrl: https://r.example, "
        "kubernetes: {useClusterAuth: false, issuer: https://iss, audience: aud, jwksUrl: https://jwks}}",
        References(),
        {
            "oidc_config": {
                "Issuer": "https://iss",
                "Audience": "aud",
                "JWKSURL": "https://jwks",
                "AllowPrivateIP": False,
                "ResourceURL": "https://r.example",
            },
            "thv_ca_bundle": ABSENT,
            "jwks_auth_token_file": ABSENT,
        },
    ),
    (
        "oidc-configmap",
        "image: img\noidcConfig: {type: configMap, configMap: {name: oidc}}",
        References(
            oidc_configmap_data={
                "issuer": "https://iss",
                "audience": "aud",
                "jwksUrl": "https://jwks",
                "introspectionUrl": "https://intro",
                "clientId": "cid",
                "clientSecret": "csec",
                "thvCABundlePath": "/ca.pem",
                "jwksAuthTokenPath": "/tok",
                "jwksAllowPrivateIP": "true",
            }
        ),
        {
            "oidc_config": {
                "Issuer": "https://iss",
                "Audience": "aud",
                "JWKSURL": "https://jwks",
                "IntrospectionURL": "https://intro",
                "ClientID": "cid",
                "ClientSecret": "csec",
                "AllowPrivateIP": True,
                "ResourceURL": "http://srv.ns.svc.cluster.local:8080",
            },
            "thv_ca_bundle": "/ca.pem",
            "jwks_auth_token_file": "/tok",
        },
    ),
    (
        "oidc-inline",
        "image: img\noidcConfig: {type: inline, inline: {issuer: https://iss, audience: aud, "
        "clientId: cid, clientSecret: plain, thvCABundlePath: /ca, jwksAllowPrivateIP: true}}",
        References(),
        {
            "oidc_config": {
                "Issuer": "https://iss",
                "Audience": "aud",
                "ClientID": "cid",
                "ClientSecret": "plain",
                "AllowPrivateIP": True,
            },
            "thv_ca_bundle": "/ca",
        },
    ),
    (
        "oidc-inline-secret-ref",
        "image: img\noidcConfig: {type: inline, inline: {issuer: https://iss, clientSecret: plain, "
        "clientSecretRef: {name: s, key: k}, insecureAllowHTTP: true}}",
        References(),
        {"oidc_config": {"ClientSecret": "", "InsecureAllowHTTP": True}},
    ),
    (
        "authz-inline",
        "image: img\nauthzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);']}}",
        References(),
        {
            "authz_config": {
                "version": "v1",
                "type": "cedarv1",
                "cedar": {"policies": ["permit(principal, action, resource);"], "entities_json": "[]"},
            }
        },
    ),
    (
        "authz-configmap-json",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(
            authz_configmap_data={
                "authz.json": '{"version": "1.0", "type": "cedarv1", "cedar": '
                '{"policies": ["permit(principal, action, resource);"], "entities_json": "[]"}}'
            }
        ),
        {
            "authz_config": {
                "version": "1.0",
                "type": "cedarv1",
                "cedar": {"policies": ["permit(principal, action, resource);"], "entities_json": "[]"},
            }
        },
    ),
    (
        "authz-configmap-yaml-custom-key",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az, key: pol.yaml}}",
        References(
            authz_configmap_data={
                "pol.yaml": "version: 1.0\ntype: cedarv1\ncedar:\n  policies:\n    - forbid(principal, action, resource);\n"
            }
        ),
        {
            "authz_config": {
                "version": "1.0",
                "type": "cedarv1",
                "cedar": {"policies": ["forbid(principal, action, resource);"], "entities_json": ""},
            }
        },
    ),
    (
        "telemetry-otel",
        "image: img\ntelemetry: {openTelemetry: {enabled: true, endpoint: 'https://otel:4318', "
        "headers: [a=1, 'b=2=3', junk], insecure: true, tracing: {enabled: true, samplingRate: '0.25'}, "
        "metrics: {enabled: true}}, prometheus: {enabled: true}}",
        References(),
        {
            "telemetry_config": {
                "endpoint": "otel:4318",
                "serviceName": "srv",
                "serviceVersion": "v9.9.9",
                "tracingEnabled": True,
                "metricsEnabled": True,
                "samplingRate": 0.25,
                "headers": {"a": "1", "b": "2=3"},
                "insecure": True,
                "enablePrometheusMetricsPath": True,
                "environmentVariables": None,
            }
        },
    ),
    (
        "telemetry-service-name-and-default-rate",
        "image: img\ntelemetry: {openTelemetry: {enabled: true, endpoint: 'otel:4317', serviceName: svc, "
        "tracing: {enabled: false}}}",
        References(),
        {
            "telemetry_config": {
                "endpoint": "otel:4317",
                "serviceName": "svc",
                "samplingRate": 0.05,
                "headers": {},
                "enablePrometheusMetricsPath": False,
            }
        },
    ),
    (
        "telemetry-prometheus-only",
        "image: img\ntelemetry: {openTelemetry: {enabled: false, endpoint: x}, prometheus: {enabled: true}}",
        References(),
        {
            "telemetry_config": {
                "endpoint": "",
                "serviceName": "toolhive-mcp-proxy",
                "enablePrometheusMetricsPath": True,
                "tracingEnabled": False,
            }
        },
    ),
    (
        "telemetry-nothing-enabled",
        "image: img\ntelemetry: {openTelemetry: {enabled: false, endpoint: x}}",
        References(),
        {"telemetry_config": ABSENT},
    ),
    (
        "token-exchange-minimal",
        "image: img\nexternalAuthConfigRef: {name: ext}",
        References(external_auth=extauth("tokenUrl: https://idp/token\naudience: aud")),
        {
            "token_exchange_config": {
                "token_url": "https://idp/token",
                "client_id": "",
                "client_secret": "",
                "audience": "aud",
                "header_strategy": "replace",
            }
        },
    ),
    (
        "token-exchange-full",
        "image: img\nexternalAuthConfigRef: {name: ext}",
        References(
            external_auth=extauth(
                BASIC_TE + "scopes: [a, b]\nsubjectTokenType: id_token\nexternalTokenHeaderName: X-Up"
            )
        ),
        {
            "token_exchange_config": {
                "token_url": "https://idp.example.com/token",
                "client_id": "cid",
                "client_secret": "",
                "audience": "backend",
                "scopes": ["a", "b"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                "header_strategy": "custom",
                "external_token_header_name": "X-Up",
            }
        },
    ),
]


def _check(doc: dict[str, Any], expected: dict[str, Any], path: str = "") -> None:
    for key, want in expected.items():
        where = f"{path}.{key}" if path else key
        if want is ABSENT:
            assert key not in doc, f"{where} should be absent, got {doc.get(key)!r}"
        elif isinstance(want, dict) and want:
            assert isinstance(doc.get(key), dict), where
            _check(doc[key], want, where)
        else:
            assert doc.get(key) == want, f"{where}: {doc.get(key)!r} != {want!r}"


@pytest.mark.parametrize(("spec", "refs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_runconfig_fields(spec: str, refs: References, expected: dict[str, Any]) -> None:
    _check(rendered(server(spec), refs), expected)


def test_volumes_join_the_permission_profile() -> None:
    doc = rendered(
        server(
            "image: img\nvolumes:\n- {name: a, hostPath: /h/a, mountPath: /m/a, readOnly: true}\n"
            "- {name: b, hostPath: /h/b, mountPath: /m/b}\n- {name: c, hostPath: /h/c, mountPath: /m/a}"
        )
    )
    assert doc["permission_profile"]["read"] == ["/h/a:/m/a"]
    assert doc["permission_profile"]["write"] == ["/h/b:/m/b"]  # /m/a already mounted: skipped


# --- middleware chain ---------------------------------------------------------------------------


FULL = """
image: img
transport: streamable-http
mcpPort: 9000
oidcConfig: {type: inline, inline: {issuer: https://iss}}
externalAuthConfigRef: {name: ext}
toolConfigRef: {name: tc}
telemetry: {prometheus: {enabled: true}}
authzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);']}}
audit: {enabled: true}
"""


def full_refs() -> References:
    return References(
        external_auth=extauth(BASIC_TE),
        tool_config=toolconfig("toolsFilter: [a]\ntoolsOverride: {a: {description: d}}"),
    )


def test_middleware_chain_full_in_upstream_order() -> None:
    doc = rendered(server(FULL), full_refs())
    assert mw_types(doc) == [
        "auth",
        "tokenexchange",
        "tool-filter",
        "tool-call-filter",
        "mcp-parser",
        "telemetry",
        "authorization",
        "audit",
    ]
    assert mw(doc, "auth") == {"oidc_config": doc["oidc_config"]}
    assert mw(doc, "tokenexchange") == {"token_exchange_config": doc["token_exchange_config"]}
    tool_params = {"filter_tools": ["a"], "tools_override": {"a": {"name": "", "description": "d"}}}
    assert mw(doc, "tool-filter") == mw(doc, "tool-call-filter") == tool_params
    assert mw(doc, "mcp-parser") == {}
    assert mw(doc, "telemetry") == {
        "config": doc["telemetry_config"],
        "server_name": "srv",
        "transport": "streamable-http",
    }
    assert mw(doc, "authorization") == {"config_data": doc["authz_config"]}
    assert mw(doc, "audit") == {"config_data": {"max_data_size": 1024}, "transport_type": "streamable-http"}


@pytest.mark.parametrize(
    ("spec", "refs", "types"),
    [
        ("image: img", References(), ["auth", "mcp-parser"]),
        (
            "image: img\nexternalAuthConfigRef: {name: ext}",
            References(external_auth=extauth(BASIC_TE)),
            ["auth", "tokenexchange", "mcp-parser"],
        ),
        ("image: img\ntools: [x]", References(), ["auth", "tool-filter", "tool-call-filter", "mcp-parser"]),
        (
            "image: img\ntoolConfigRef: {name: tc}",
            References(tool_config=toolconfig("toolsOverride: {x: {name: y}}")),
            ["auth", "tool-filter", "tool-call-filter", "mcp-parser"],
        ),
        ("image: img\naudit: {enabled: true}", References(), ["auth", "mcp-parser", "audit"]),
    ],
    ids=["bare", "token-exchange", "tools", "override-only", "audit"],
)
def test_middleware_chain_only_what_applies(spec: str, refs: References, types: list[str]) -> None:
    assert mw_types(rendered(server(spec), refs)) == types


def test_tool_filter_params_with_override_only_has_null_filter() -> None:
    doc = rendered(
        server("image: img\ntoolConfigRef: {name: tc}"),
        References(tool_config=toolconfig("toolsOverride: {x: {name: y}}")),
    )
    assert mw(doc, "tool-filter") == {
        "filter_tools": None,
        "tools_override": {"x": {"name": "y", "description": ""}},
    }


def test_token_exchange_middleware_and_top_level_are_identical_and_secret_free() -> None:
    doc = rendered(
        server("image: img\nexternalAuthConfigRef: {name: ext}"),
        References(external_auth=extauth(BASIC_TE + "scopes: [x]")),
    )
    te = mw(doc, "tokenexchange")["token_exchange_config"]
    assert te == doc["token_exchange_config"]
    assert te["client_secret"] == ""
    assert "clientSecretRef" not in json.dumps(doc) and '"s"' not in json.dumps(te)


@pytest.mark.parametrize(
    ("given", "urn"),
    [
        (None, ""),
        ("", ""),
        ("access_token", rc.TOKEN_TYPE_ACCESS_TOKEN),
        ("id_token", rc.TOKEN_TYPE_ID_TOKEN),
        ("jwt", rc.TOKEN_TYPE_JWT),
        (rc.TOKEN_TYPE_JWT, rc.TOKEN_TYPE_JWT),
    ],
)
def test_subject_token_type_normalisation(given: str | None, urn: str) -> None:
    assert normalize_subject_token_type(given) == urn


# --- JSON format ----------------------------------------------------------------------------------

UPSTREAM_KEY_ORDER = [
    "schema_version",
    "image",
    "remote_url",
    "cmd_args",
    "name",
    "container_name",
    "base_name",
    "transport",
    "host",
    "port",
    "target_port",
    "target_host",
    "permission_profile_name_or_path",
    "permission_profile",
    "env_vars",
    "env_file_dir",
    "debug",
    "volumes",
    "container_labels",
    "oidc_config",
    "token_exchange_config",
    "authz_config",
    "authz_config_path",
    "audit_config",
    "audit_config_path",
    "telemetry_config",
    "secrets",
    "k8s_pod_template_patch",
    "isolate_network",
    "trust_proxy_headers",
    "proxy_mode",
    "thv_ca_bundle",
    "jwks_auth_token_file",
    "group",
    "tools_filter",
    "tools_override",
    "ignore_config",
    "middleware_configs",
]


def test_json_is_go_marshal_indent() -> None:
    srv = server(FULL + "args: [x]\nenv: [{name: E, value: v}]\ntrustProxyHeaders: true")
    text = runconfig_json(build_run_config(srv, SETTINGS, full_refs()))
    assert text.startswith('{\n  "schema_version": "v0.1.0",\n  "image": "img",\n')
    assert not text.endswith("\n") and text.endswith("\n}")
    assert "\t" not in text and '": ' in text
    keys = list(json.loads(text))
    assert keys == [k for k in UPSTREAM_KEY_ORDER if k in keys]
    # nested maps are sorted like Go maps
    assert list(json.loads(text)["container_labels"]) == sorted(json.loads(text)["container_labels"])


def test_json_escapes_html_like_go() -> None:
    policy = "permit(principal, action, resource) when { context.n > 1 && context.m < 2 };"
    srv = server(f"image: img\nauthzConfig: {{type: inline, inline: {{policies: ['{policy}']}}}}")
    text = runconfig_json(build_run_config(srv, SETTINGS, References()))
    assert "\\u003e 1 \\u0026\\u0026" in text and "\\u003c 2" in text
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["authz_config"]["cedar"]["policies"] == [policy]


def test_integral_sampling_rate_encodes_like_go() -> None:
    srv = server(
        "image: img\ntelemetry: {openTelemetry: {enabled: true, endpoint: e, tracing: {enabled: true, samplingRate: '1'}}}"
    )
    text = runconfig_json(build_run_config(srv, SETTINGS, References()))
    assert '"samplingRate": 1,' in text


@pytest.mark.parametrize("rate", ["abc", "nan", "inf", " 0.5", "1_0"])
def test_unparsable_sampling_rate_keeps_default(rate: str) -> None:
    srv = server(
        f"image: img\ntelemetry: {{openTelemetry: {{enabled: true, endpoint: e, tracing: {{enabled: true, samplingRate: '{rate}'}}}}}}"
    )
    assert rendered(srv)["telemetry_config"]["samplingRate"] == 0.05


def test_render_twice_gives_identical_bytes() -> None:
    a = runconfig_json(build_run_config(server(FULL), SETTINGS, full_refs()))
    b = runconfig_json(build_run_config(server(FULL), SETTINGS, full_refs()))
    assert a == b


# --- ConfigMap and checksum -------------------------------------------------------------------------


def reference_checksum(data: dict[str, str], labels: dict[str, str], annotations: dict[str, str]) -> str:
    parts = [k + data[k] for k in sorted(data)] + [k + labels[k] for k in sorted(labels)]
    parts += [
        k + annotations[k] for k in sorted(annotations) if k != "toolhive.stacklok.dev/content-checksum"
    ]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def test_runconfig_configmap_shape_and_checksum() -> None:
    srv = server(FULL)
    config = build_run_config(srv, SETTINGS, full_refs())
    cm = runconfig_configmap(srv, config)
    assert cm.metadata.name == "srv-runconfig" and cm.metadata.namespace == "ns"
    labels = {
        "toolhive.stacklok.io/component": "run-config",
        "toolhive.stacklok.io/mcp-server": "srv",
        "toolhive.stacklok.io/managed-by": "toolhive-operator",
    }
    # thv's managed-by label is added after the checksum, as thv applied it before: the
    # checksum is upstream's, over upstream's labels
    assert cm.metadata.labels == {**labels, "app.kubernetes.io/managed-by": "thv"}
    assert cm.data == {"runconfig.json": runconfig_json(config)}
    checksum = reference_checksum(cm.data, labels, {})
    assert cm.metadata.annotations == {"toolhive.stacklok.dev/content-checksum": checksum}
    assert len(checksum) == 64
    owner = cm.metadata.owner_references
    assert owner is not None and len(owner) == 1
    assert (
        owner[0].kind,
        owner[0].name,
        owner[0].uid,
        owner[0].controller,
        owner[0].block_owner_deletion,
    ) == (
        "MCPServer",
        "srv",
        "u-1",
        True,
        True,
    )


def test_content_checksum_matches_reference_algorithm() -> None:
    data, labels = {"b": "2", "a": "1"}, {"z": "9", "y": "8"}
    annotations = {"toolhive.stacklok.dev/content-checksum": "ignored", "k": "v"}
    assert content_checksum(data, labels, annotations) == reference_checksum(data, labels, annotations)
    assert content_checksum(data, labels) != content_checksum(data, {**labels, "x": ""})
    assert content_checksum({"a": "1"}, {}) == hashlib.sha256(b"a1").hexdigest()


def test_checksum_changes_with_the_external_auth_config() -> None:
    srv = server("image: img\nexternalAuthConfigRef: {name: ext}")
    one = runconfig_configmap(
        srv, build_run_config(srv, SETTINGS, References(external_auth=extauth(BASIC_TE)))
    )
    two = runconfig_configmap(
        srv, build_run_config(srv, SETTINGS, References(external_auth=extauth(BASIC_TE + "scopes: [x]")))
    )
    assert one.metadata.annotations != two.metadata.annotations


# --- validation errors --------------------------------------------------------------------------------

ERRORS: list[tuple[str, str, References, str, str]] = [
    (
        "sse-no-target",
        "image: img\ntransport: sse",
        References(),
        "MissingTargetPort",
        "target port is required",
    ),
    (
        "streamable-no-target",
        "image: img\ntransport: streamable-http\nport: 8080",
        References(),
        "MissingTargetPort",
        "transport type streamable-http",
    ),
    ("env-key-equals", "image: img\nenv: [{name: 'A=B', value: x}]", References(), "InvalidEnvVar", "A=B"),
    (
        "env-key-empty",
        "image: img\nenv: [{name: '', value: x}]",
        References(),
        "InvalidEnvVar",
        "cannot be empty",
    ),
    ("env-key-newline", 'image: img\nenv: [{name: "A\\nB", value: x}]', References(), "InvalidEnvVar", "key"),
    (
        "env-value-newline",
        'image: img\nenv: [{name: A, value: "x\\ry"}]',
        References(),
        "InvalidEnvVar",
        "value for A",
    ),
    ("tools-comma", "image: img\ntools: ['a,b']", References(), "InvalidToolsFilter", "a,b"),
    ("tools-empty", "image: img\ntools: ['']", References(), "InvalidToolsFilter", "empty"),
    (
        "tools-newline",
        'image: img\ntools: ["a\\nb"]',
        References(),
        "InvalidToolsFilter",
        "commas or newlines",
    ),
    (
        "toolconfig-filter-comma",
        "image: img\ntoolConfigRef: {name: tc}",
        References(tool_config=toolconfig("toolsFilter: ['x,y']")),
        "InvalidToolsFilter",
        "x,y",
    ),
    (
        "volume-bad-option",
        "image: img\nvolumes: [{name: v, hostPath: /a, mountPath: '/b:rw'}]",
        References(),
        "InvalidVolume",
        "/a:/b:rw",
    ),
    (
        "volume-empty-host",
        "image: img\nvolumes: [{name: v, hostPath: '', mountPath: /b}]",
        References(),
        "InvalidVolume",
        ":/b",
    ),
    (
        "unknown-builtin-profile",
        "image: img\npermissionProfile: {type: builtin, name: /etc/passwd}",
        References(),
        "InvalidPermissionProfile",
        "/etc/passwd",
    ),
    (
        "profile-configmap-bad-json",
        "image: img\npermissionProfile: {type: configmap, name: p, key: k}",
        References(permission_profile_data={"k": "{not json"}),
        "InvalidPermissionProfile",
        "/etc/toolhive/profiles/k",
    ),
    (
        "profile-configmap-missing-key",
        "image: img\npermissionProfile: {type: configmap, name: p, key: k}",
        References(permission_profile_data={}),
        "InvalidPermissionProfile",
        '"k"',
    ),
    (
        "profile-configmap-no-data",
        "image: img\npermissionProfile: {type: configmap, name: p, key: k}",
        References(),
        "MissingReferencedConfig",
        "ns/p",
    ),
    (
        "toolconfig-not-passed",
        "image: img\ntoolConfigRef: {name: tc}",
        References(),
        "MissingReferencedConfig",
        "MCPToolConfig tc not found in namespace ns",
    ),
    (
        "extauth-not-passed",
        "image: img\nexternalAuthConfigRef: {name: ext}",
        References(),
        "MissingReferencedConfig",
        "MCPExternalAuthConfig ext not found in namespace ns",
    ),
    (
        "oidc-configmap-not-passed",
        "image: img\noidcConfig: {type: configMap, configMap: {name: oidc}}",
        References(),
        "MissingReferencedConfig",
        "ns/oidc",
    ),
    (
        "authz-configmap-not-passed",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(),
        "MissingReferencedConfig",
        "ns/az",
    ),
    (
        "authz-configmap-missing-key",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(authz_configmap_data={"other": "x"}),
        "InvalidAuthzConfig",
        'missing key "authz.json"',
    ),
    (
        "authz-configmap-blank",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(authz_configmap_data={"authz.json": "  \n"}),
        "InvalidAuthzConfig",
        "is empty",
    ),
    (
        "authz-configmap-no-policies",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(
            authz_configmap_data={"authz.json": '{"version":"1","type":"cedarv1","cedar":{"policies":[]}}'}
        ),
        "InvalidAuthzConfig",
        "at least one policy",
    ),
    (
        "authz-configmap-wrong-type",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(authz_configmap_data={"authz.json": "version: '1'\ntype: opa\n"}),
        "InvalidAuthzConfig",
        "unsupported configuration type: opa",
    ),
    (
        "authz-configmap-no-version",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(authz_configmap_data={"authz.json": "type: cedarv1\n"}),
        "InvalidAuthzConfig",
        "version is required",
    ),
    (
        "authz-configmap-not-a-mapping",
        "image: img\nauthzConfig: {type: configMap, configMap: {name: az}}",
        References(authz_configmap_data={"authz.json": "- a\n- b\n"}),
        "InvalidAuthzConfig",
        "failed to parse",
    ),
    (
        "extauth-bad-header-name",
        "image: img\nexternalAuthConfigRef: {name: ext}",
        References(external_auth=extauth(BASIC_TE + "externalTokenHeaderName: 'X Bad'")),
        "InvalidExternalAuthConfig",
        "X Bad",
    ),
]


@pytest.mark.parametrize(
    ("spec", "refs", "reason", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_validation_errors(spec: str, refs: References, reason: str, fragment: str) -> None:
    with pytest.raises(RenderError) as err:
        build_run_config(server(spec), SETTINGS, refs)
    assert err.value.reason == reason
    assert fragment in err.value.message
    assert str(err.value) == err.value.message


def test_errors_for_values_the_crd_schema_would_refuse() -> None:
    srv = server("image: img\nexternalAuthConfigRef: {name: ext}")
    bad_type = MCPExternalAuthConfig(spec=MCPExternalAuthConfigSpec(type="oauth2"))
    no_te = MCPExternalAuthConfig(spec=MCPExternalAuthConfigSpec(type="tokenExchange"))
    bad_subject = MCPExternalAuthConfig(
        spec=MCPExternalAuthConfigSpec(
            type="tokenExchange",
            token_exchange=TokenExchangeConfig(
                token_url="https://t", audience="a", subject_token_type="saml"
            ),
        )
    )
    cases = [
        (bad_type, "unsupported external auth type: oauth2"),
        (no_te, "token exchange configuration is nil for type tokenExchange"),
        (bad_subject, "invalid subject token type"),
    ]
    for ext, fragment in cases:
        with pytest.raises(RenderError) as err:
            build_run_config(srv, SETTINGS, References(external_auth=ext))
        assert err.value.reason == "InvalidExternalAuthConfig"
        assert fragment in err.value.message
    with pytest.raises(RenderError) as err:
        build_run_config(server("image: img\ntransport: grpc"), SETTINGS, References())
    assert err.value.reason == "InvalidTransport"
    with pytest.raises(RenderError) as err:
        build_run_config(server("image: ''"), SETTINGS, References())
    assert err.value.reason == "InvalidSpec"
    with pytest.raises(RenderError) as err:
        build_run_config(
            server("image: img\ntoolConfigRef: {name: tc}"),
            SETTINGS,
            References(tool_config=toolconfig("toolsOverride: {x: {}}")),
        )
    assert err.value.reason == "InvalidToolsFilter" and "Name or Description" in err.value.message


def test_telemetry_service_version_is_not_thvs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing thv renders depends on thv's own version: an upgrade must not roll user pods
    (``serviceVersion`` stays empty; the runner reports its own version at runtime)."""
    import thv
    from thv.render.desired import render

    srv = server("image: img\ntelemetry: {openTelemetry: {enabled: true, endpoint: 'https://otel:4318'}}")
    settings = OperatorSettings(use_configmap=True)
    before = render(srv, settings).bodies()
    config = build_run_config(srv, settings, References())
    assert config.telemetry_config is not None and config.telemetry_config.service_version == ""
    monkeypatch.setattr(thv, "__version__", "99.0.0")
    assert render(srv, OperatorSettings(use_configmap=True)).bodies() == before
