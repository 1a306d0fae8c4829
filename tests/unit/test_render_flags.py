"""thv.render.flags and podpatch: flag-mode args (upstream order + token exchange), ConfigMap-mode args,
the ``--k8s-pod-patch`` JSON, the runner-image check; plus names and settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

import thv
from thv.render import names
from thv.render.errors import RenderError
from thv.render.flags import (
    configmap_mode_args,
    flag_mode_args,
    flag_mode_warnings,
    oidc_flags,
    runner_ignores_token_exchange_flags,
    token_exchange_flags,
)
from thv.render.podpatch import pod_template_patch, pod_template_patch_json
from thv.render.refs import References
from thv.render.settings import DEFAULT_RUNNER_IMAGE, OperatorSettings
from thvtest.objects import extauth, server, toolconfig

SETTINGS = OperatorSettings()


PATCH = '{"metadata":{},"spec":{"containers":[],"serviceAccountName":"srv-sa"}}'


# --- flag mode ------------------------------------------------------------------------------------


def test_minimal_flag_args() -> None:
    srv = server("image: img:1")
    assert flag_mode_args(srv, SETTINGS, References(), pod_template_patch_json(srv)) == [
        "run",
        "--foreground=true",
        "--proxy-port=8080",
        "--name=srv",
        "--transport=stdio",
        "--host=0.0.0.0",
        "--proxy-mode=sse",
        f"--k8s-pod-patch={PATCH}",
        "img:1",
    ]


FULL = """
image: img:2
transport: streamable-http
proxyPort: 9000
mcpPort: 9001
proxyMode: streamable-http
trustProxyHeaders: true
args: [--verbose, x]
env: [{name: A, value: '1'}, {name: B, value: 'x=y'}]
tools: [zeta, alpha]
permissionProfile: {type: builtin, name: none}
oidcConfig: {type: inline, resourceUrl: https://res, inline: {issuer: https://iss, audience: aud}}
externalAuthConfigRef: {name: ext}
authzConfig: {type: inline, inline: {policies: [p]}}
audit: {enabled: true}
telemetry:
  openTelemetry:
    enabled: true
    endpoint: https://otel:4318
    serviceName: svc
    headers: [h1=v1, h2=v2]
    insecure: true
    tracing: {enabled: true, samplingRate: '0.5'}
    metrics: {enabled: false}
  prometheus: {enabled: true}
resourceOverrides:
  proxyDeployment:
    podTemplateMetadataOverrides: {annotations: {vault.hashicorp.com/agent-inject: 'true'}}
"""


def test_full_flag_args_in_upstream_order() -> None:
    srv = server(FULL)
    refs = References(
        external_auth=extauth(
            "tokenUrl: https://idp/token\nclientId: cid\nclientSecretRef: {name: s, key: k}\naudience: aud2\n"
            "scopes: [read, write]\nsubjectTokenType: jwt\nexternalTokenHeaderName: X-Up"
        )
    )
    assert flag_mode_args(srv, SETTINGS, refs, pod_template_patch_json(srv)) == [
        "run",
        "--foreground=true",
        "--proxy-port=9000",
        "--name=srv",
        "--transport=streamable-http",
        "--host=0.0.0.0",
        "--target-port=9001",
        "--proxy-mode=streamable-http",
        "--trust-proxy-headers",
        f"--k8s-pod-patch={PATCH}",
        "--permission-profile=none",
        "--oidc-issuer=https://iss",
        "--oidc-audience=aud",
        "--resource-url=https://res",
        "--token-exchange-url=https://idp/token",
        "--token-exchange-client-id=cid",
        "--token-exchange-audience=aud2",
        "--token-exchange-scopes=read,write",
        "--token-exchange-subject-token-type=urn:ietf:params:oauth:token-type:jwt",
        "--token-exchange-header-name=X-Up",
        "--authz-config=/etc/toolhive/authz/authz.json",
        "--enable-audit",
        "--env=A=1",
        "--env=B=x=y",
        "--tools=alpha,zeta",
        "--otel-enabled",
        "--otel-endpoint=https://otel:4318",
        "--otel-service-name=svc",
        "--otel-headers=h1=v1",
        "--otel-headers=h2=v2",
        "--otel-insecure",
        "--otel-tracing-enabled=true",
        "--otel-tracing-sampling-rate=0.5",
        "--otel-metrics-enabled=false",
        "--enable-prometheus-metrics-path",
        "--env-file-dir=/vault/secrets",
        "img:2",
        "--",
        "--verbose",
        "x",
    ]


def test_flag_args_other_branches() -> None:
    srv = server(
        "image: img\npermissionProfile: {type: configmap, name: p, key: prof.json}\n"
        "authzConfig: {type: configMap, configMap: {name: az}}\ntelemetry: {openTelemetry: {tracing: {enabled: false}}}"
    )
    args = flag_mode_args(srv, SETTINGS, References(), None)
    assert "--permission-profile-path=/etc/toolhive/profiles/prof.json" in args
    assert "--authz-config=/etc/toolhive/authz/authz.json" in args
    assert "--otel-tracing-enabled=false" in args
    assert not any(a.startswith("--k8s-pod-patch") for a in args)
    custom = flag_mode_args(
        server("image: img"), OperatorSettings(proxy_host="127.0.0.1"), References(), None
    )
    assert "--host=127.0.0.1" in custom


@pytest.mark.parametrize(
    ("token_exchange", "expected"),
    [
        (
            "tokenUrl: https://t\naudience: a",
            ["--token-exchange-url=https://t", "--token-exchange-audience=a"],
        ),
        (
            "tokenUrl: https://t\naudience: a\nclientId: c\nclientSecretRef: {name: sec, key: key}",
            ["--token-exchange-url=https://t", "--token-exchange-client-id=c", "--token-exchange-audience=a"],
        ),
        (
            "tokenUrl: https://t\naudience: a\nscopes: [one]",
            ["--token-exchange-url=https://t", "--token-exchange-audience=a", "--token-exchange-scopes=one"],
        ),
        (
            "tokenUrl: https://t\naudience: a\nsubjectTokenType: urn:ietf:params:oauth:token-type:id_token",
            [
                "--token-exchange-url=https://t",
                "--token-exchange-audience=a",
                "--token-exchange-subject-token-type=urn:ietf:params:oauth:token-type:id_token",
            ],
        ),
        (
            "tokenUrl: https://t\naudience: a\nexternalTokenHeaderName: X-Token",
            [
                "--token-exchange-url=https://t",
                "--token-exchange-audience=a",
                "--token-exchange-header-name=X-Token",
            ],
        ),
    ],
    ids=["minimal", "client", "one-scope", "subject-urn", "header"],
)
def test_token_exchange_flags(token_exchange: str, expected: list[str]) -> None:
    srv = server("image: img\nexternalAuthConfigRef: {name: ext}")
    flags = token_exchange_flags(srv, References(external_auth=extauth(token_exchange)))
    assert flags == expected
    assert not any("secret" in f for f in flags)


def test_no_token_exchange_flags_without_ref() -> None:
    srv = server("image: img")
    assert (
        token_exchange_flags(srv, References(external_auth=extauth("tokenUrl: https://t\naudience: a"))) == []
    )
    assert not any("token-exchange" in a for a in flag_mode_args(srv, SETTINGS, References(), None))


def test_scope_with_comma_cannot_be_a_flag() -> None:
    srv = server("image: img\nexternalAuthConfigRef: {name: ext}")
    with pytest.raises(RenderError) as err:
        token_exchange_flags(
            srv, References(external_auth=extauth("tokenUrl: t\naudience: a\nscopes: ['a,b']"))
        )
    assert err.value.reason == "InvalidExternalAuthConfig"


@pytest.mark.parametrize(
    ("oidc", "refs", "expected"),
    [
        (
            "{type: kubernetes}",
            References(),
            [
                "--oidc-issuer=https://kubernetes.default.svc",
                "--oidc-audience=toolhive",
                "--thv-ca-bundle=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                "--jwks-auth-token-file=/var/run/secrets/kubernetes.io/serviceaccount/token",
                "--jwks-allow-private-ip",
                "--oidc-client-id=default.ns.svc.cluster.local",
                "--resource-url=http://mcp-srv-proxy.ns.svc.cluster.local:8080",
            ],
        ),
        (
            "{type: kubernetes, kubernetes: {serviceAccount: sa, namespace: other, useClusterAuth: false, "
            "jwksUrl: https://j, introspectionUrl: https://i}}",
            References(),
            [
                "--oidc-issuer=https://kubernetes.default.svc",
                "--oidc-audience=toolhive",
                "--oidc-jwks-url=https://j",
                "--oidc-introspection-url=https://i",
                "--oidc-client-id=sa.other.svc.cluster.local",
                "--resource-url=http://mcp-srv-proxy.ns.svc.cluster.local:8080",
            ],
        ),
        (
            "{type: configMap, configMap: {name: o}}",
            References(
                oidc_configmap_data={
                    "issuer": "https://iss",
                    "clientId": "c",
                    "clientSecret": "cs",
                    "jwksAllowPrivateIP": "true",
                    "unrelated": "x",
                }
            ),
            [
                "--oidc-issuer=https://iss",
                "--oidc-client-id=c",
                "--oidc-client-secret=cs",
                "--jwks-allow-private-ip",
                "--resource-url=http://mcp-srv-proxy.ns.svc.cluster.local:8080",
            ],
        ),
        (
            "{type: inline, inline: {issuer: https://iss, audience: a, jwksUrl: https://j, introspectionUrl: https://i, "
            "clientId: c, clientSecret: never, thvCABundlePath: /ca, jwksAuthTokenPath: /t, jwksAllowPrivateIP: true}}",
            References(),
            [
                "--oidc-issuer=https://iss",
                "--oidc-audience=a",
                "--oidc-jwks-url=https://j",
                "--oidc-introspection-url=https://i",
                "--thv-ca-bundle=/ca",
                "--jwks-auth-token-file=/t",
                "--jwks-allow-private-ip",
                "--oidc-client-id=c",
                "--resource-url=http://mcp-srv-proxy.ns.svc.cluster.local:8080",
            ],
        ),
    ],
    ids=["kubernetes-default", "kubernetes-custom", "configmap", "inline"],
)
def test_oidc_flags(oidc: str, refs: References, expected: list[str]) -> None:
    assert oidc_flags(server(f"image: img\noidcConfig: {oidc}"), refs) == expected


def test_tools_from_tool_config_and_override_warning() -> None:
    srv = server("image: img\ntools: [ignored]\ntoolConfigRef: {name: tc}")
    refs = References(tool_config=toolconfig("toolsFilter: [b, a]\ntoolsOverride: {a: {name: z}}"))
    assert "--tools=a,b" in flag_mode_args(srv, SETTINGS, refs, None)
    assert flag_mode_warnings(srv, SETTINGS, refs) == []  # thv's runner takes --tools-override
    upstream = OperatorSettings(runner_image="ghcr.io/stacklok/toolhive/proxyrunner:v0.6.0")
    warnings = flag_mode_warnings(srv, upstream, refs)
    assert len(warnings) == 1 and "toolsOverride" in warnings[0]


def test_warning_when_the_runner_ignores_token_exchange_flags() -> None:
    srv = server("image: img\nexternalAuthConfigRef: {name: ext}")
    refs = References(external_auth=extauth("tokenUrl: t\naudience: a"))
    upstream = OperatorSettings(runner_image="ghcr.io/stacklok/toolhive/proxyrunner:v0.6.0")
    warnings = flag_mode_warnings(srv, upstream, refs)
    assert len(warnings) == 1 and "WITHOUT token exchange" in warnings[0]
    latest = OperatorSettings(runner_image="ghcr.io/stacklok/toolhive/proxyrunner:latest")
    warnings = flag_mode_warnings(srv, latest, refs)
    assert len(warnings) == 2 and "refuses to start without a runconfig.json" in warnings[1]
    assert flag_mode_warnings(srv, SETTINGS, refs) == []  # thv's runner (the default)
    assert flag_mode_warnings(srv, OperatorSettings(runner_image="example.com/thv:1"), refs) == []
    assert flag_mode_warnings(server("image: img"), SETTINGS, References()) == []


@pytest.mark.parametrize(
    ("image", "ignores"),
    [
        (DEFAULT_RUNNER_IMAGE, False),
        ("ghcr.io/stacklok/toolhive/proxyrunner", True),
        ("ghcr.io/stacklok/toolhive/proxyrunner:v0.3.8", True),
        ("ghcr.io/stacklok/toolhive/proxyrunner@sha256:" + "a" * 64, True),
        ("ghcr.io/stacklok/toolhive/proxyrunner:v0.3.9@sha256:" + "0" * 64, True),
        ("GHCR.IO/stacklok/toolhive/proxyrunner:latest", True),
        ("ghcr.io/stacklok/toolhive/proxyrunner-fork:latest", False),
        ("ghcr.io/example/thv:latest", False),
        ("localhost:5000/proxyrunner:latest", False),
        ("ghcr.io/stacklok/toolhive/thv:latest", False),
    ],
)
def test_runner_ignores_token_exchange_flags(image: str, ignores: bool) -> None:
    assert runner_ignores_token_exchange_flags(image) is ignores


def test_configmap_mode_args() -> None:
    srv = server("image: img:3\nargs: [a]\nenv: [{name: A, value: b}]\ntransport: sse\ntargetPort: 1")
    assert configmap_mode_args(srv, PATCH) == [
        "run",
        "--foreground=true",
        f"--k8s-pod-patch={PATCH}",
        "img:3",
        "--",
        "a",
    ]
    assert configmap_mode_args(srv, None) == ["run", "--foreground=true", "img:3", "--", "a"]


# --- pod patch --------------------------------------------------------------------------------------


def patch(spec: str) -> dict[str, Any]:
    out = pod_template_patch(server(spec))
    assert out is not None
    return out


def test_pod_patch_defaults() -> None:
    assert pod_template_patch_json(server("image: img")) == PATCH
    assert patch("image: img\nserviceAccount: custom")["spec"]["serviceAccountName"] == "custom"
    assert pod_template_patch(server("image: img\nserviceAccount: ''")) is None


def test_pod_patch_secrets_add_an_mcp_container() -> None:
    got = patch("image: img\nsecrets: [{name: s1, key: k1}, {name: s2, key: k2, targetEnvName: TOKEN}]")
    assert got["spec"]["containers"] == [
        {
            "name": "mcp",
            "env": [
                {"name": "k1", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k1"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k2"}}},
            ],
        }
    ]


def test_pod_patch_merges_into_the_users_mcp_container() -> None:
    spec = """
image: img
serviceAccount: mine
secrets: [{name: s, key: k}]
podTemplateSpec:
  metadata: {labels: {team: a}}
  spec:
    serviceAccountName: overwritten
    nodeSelector: {disk: ssd}
    containers:
    - name: sidecar
      image: busybox
    - name: mcp
      env: [{name: PLAIN, value: v}]
      resources: {limits: {memory: 1Gi}}
"""
    got = patch(spec)
    assert got["metadata"] == {"labels": {"team": "a"}}
    assert got["spec"]["serviceAccountName"] == "mine"
    assert got["spec"]["nodeSelector"] == {"disk": "ssd"}
    sidecar, mcp = got["spec"]["containers"]
    assert sidecar == {"name": "sidecar", "image": "busybox"}
    assert mcp["resources"] == {"limits": {"memory": "1Gi"}}
    assert mcp["env"] == [
        {"name": "PLAIN", "value": "v"},
        {"name": "k", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    srv = server(spec)
    assert srv.spec.pod_template_spec is not None
    assert srv.spec.pod_template_spec["spec"]["serviceAccountName"] == "overwritten"  # input untouched
    text = pod_template_patch_json(srv)
    assert text is not None and json.loads(text) == got and " " not in text.replace("busybox", "")


@pytest.mark.parametrize(
    "template",
    [
        "{spec: []}",
        "{metadata: x}",
        "{spec: {containers: {}}}",
        "{spec: {containers: [x]}}",
        "{spec: {containers: [{name: 3}]}}",
        "{spec: {containers: [{name: mcp, env: {}}]}}",
    ],
)
def test_invalid_pod_template(template: str) -> None:
    with pytest.raises(RenderError) as err:
        pod_template_patch(server(f"image: img\npodTemplateSpec: {template}"))
    assert err.value.reason == "InvalidPodTemplateSpec"
    assert err.value.message.startswith("Invalid PodTemplateSpec: ")


# --- names and settings ------------------------------------------------------------------------------


def test_names_and_labels() -> None:
    assert names.deployment_name("x") == "x"
    assert names.service_name("x") == "mcp-x-proxy"
    assert names.proxy_runner_name("x") == "x-proxy-runner"
    assert names.mcp_service_account_name("x") == "x-sa"
    assert names.runconfig_configmap_name("x") == "x-runconfig"
    assert names.authz_inline_configmap_name("x") == "x-authz-inline"
    assert names.statefulset_name("x") == "x"
    assert names.headless_service_name("x") == "mcp-x-headless"
    assert names.service_url("x", "ns", 8080) == "http://mcp-x-proxy.ns.svc.cluster.local:8080"
    assert names.labels_for_server("x") == {
        "app": "mcpserver",
        "app.kubernetes.io/name": "mcpserver",
        "app.kubernetes.io/instance": "x",
        "toolhive": "true",
        "toolhive-name": "x",
    }
    assert names.labels_for_inline_authz("x")["toolhive.stacklok.io/authz"] == "inline"
    assert names.labels_for_runconfig("x") == {
        "toolhive.stacklok.io/component": "run-config",
        "toolhive.stacklok.io/mcp-server": "x",
        "toolhive.stacklok.io/managed-by": "toolhive-operator",
    }
    # the exact upstream strings (reference §15)
    assert names.ANNOTATION_CONTENT_CHECKSUM == "toolhive.stacklok.dev/content-checksum"
    assert names.ANNOTATION_RUNCONFIG_CHECKSUM == "toolhive.stacklok.dev/runconfig-checksum"
    assert names.ANNOTATION_TOOLCONFIG_HASH == "toolhive.stacklok.dev/toolconfig-hash"
    assert names.ANNOTATION_EXTAUTH_HASH == "toolhive.stacklok.dev/externalauthconfig-hash"
    assert names.FINALIZER_MCPSERVER == "mcpserver.toolhive.stacklok.dev/finalizer"
    assert names.FINALIZER_TOOLCONFIG == "toolhive.stacklok.dev/toolconfig-finalizer"
    assert names.FINALIZER_EXTAUTH == "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer"
    assert names.ENV_TOKEN_EXCHANGE_CLIENT_SECRET == "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"


@pytest.mark.parametrize(
    ("env", "kwargs", "expected"),
    [
        ({}, {}, OperatorSettings()),
        (
            {
                "TOOLHIVE_RUNNER_IMAGE": "r:1",
                "TOOLHIVE_PROXY_HOST": "127.0.0.1",
                "TOOLHIVE_USE_CONFIGMAP": "true",
                "OPERATOR_OPENSHIFT": "1",
            },
            {},
            OperatorSettings(
                runner_image="r:1", proxy_host="127.0.0.1", use_configmap=True, platform="openshift"
            ),
        ),
        ({"TOOLHIVE_USE_CONFIGMAP": "false", "TOOLHIVE_RUNNER_IMAGE": ""}, {}, OperatorSettings()),
        (
            {"TOOLHIVE_USE_CONFIGMAP": "true", "TOOLHIVE_RUNNER_IMAGE": "r:1"},
            {"use_configmap": False, "runner_image": "r:2", "platform": "openshift"},
            OperatorSettings(runner_image="r:2", platform="openshift"),
        ),
    ],
    ids=["defaults", "all-env", "false-and-empty", "flags-win"],
)
def test_settings_from_env(env: dict[str, str], kwargs: dict[str, Any], expected: OperatorSettings) -> None:
    assert OperatorSettings.from_env(env, **kwargs) == expected


def test_settings_defaults() -> None:
    s = OperatorSettings()
    assert s.runner_image == f"ghcr.io/thv-dev/thv:{thv.__version__}"
    assert (s.proxy_host, s.use_configmap, s.platform) == ("0.0.0.0", False, "kubernetes")
