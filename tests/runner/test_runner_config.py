"""The runner's configuration: every rendered flag is understood, and flag mode ≡ ConfigMap mode.

The operator's own renderers (``thv.render.render``) produce both modes of one MCPServer; the
runner parses the flag-mode container args (after ``run``) and the ConfigMap's ``runconfig.json``
with the ConfigMap-mode args, each with the env the kubelet would give the container, and the two
:class:`RunnerConfig` values must be equal — workload, proxy and middleware, not only the exchange.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from thv.api import contract
from thv.api.crds import MCPServer
from thv.proxy.config import Secret
from thv.render.desired import render
from thv.render.settings import OperatorSettings
from thv.runner.config import ConfigError, RunnerConfig, runner_config
from thvtest.modes import container_env, render_both, runconfig_json, runner_argv
from thvtest.objects import extauth, server, toolconfig


def parse_both(srv: MCPServer, tmp_path: Path, **refs: Any) -> tuple[RunnerConfig, RunnerConfig]:
    flag_mode, cm_mode = render_both(srv, **refs)
    path = tmp_path / "runconfig.json"
    path.write_text(runconfig_json(cm_mode))
    _, from_flags = runner_config(runner_argv(flag_mode), env=container_env(flag_mode), runconfig_paths=())
    _, from_cm = runner_config(
        ["--runconfig", str(path), *runner_argv(cm_mode)], env=container_env(cm_mode), runconfig_paths=()
    )
    return from_flags, from_cm


TE = {
    "tokenUrl": "https://idp.example.com/realms/r/protocol/openid-connect/token",
    "audience": "backend",
    "clientId": "proxy",
    "clientSecretRef": {"name": "te-secret", "key": "te-key"},
    "scopes": ["openid", "read:all"],
    "subjectTokenType": "jwt",
}

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("minimal-stdio", "image: img", {}),
    ("stdio-streamable", "image: img\nproxyMode: streamable-http\nargs: [--verbose, '-x', '--']", {}),
    (
        "exchange-replace",
        "image: img\ntransport: streamable-http\nproxyPort: 9000\nmcpPort: 9001\nexternalAuthConfigRef: {name: ext}",
        {"external_auth": extauth(TE)},
    ),
    (
        "exchange-custom",
        "image: img\ntransport: sse\nmcpPort: 9001\nexternalAuthConfigRef: {name: ext}",
        {"external_auth": extauth({**TE, "externalTokenHeaderName": "X-Upstream-Token"})},
    ),
    (
        "env-volumes-profile-args",
        "image: img\nargs: [a, b]\nenv: [{name: A, value: '1'}, {name: B, value: 'x=y'}]\n"
        "volumes: [{name: data, hostPath: /srv/data, mountPath: /data, readOnly: true},"
        " {name: w, hostPath: /srv/w, mountPath: /w}]\n"
        "permissionProfile: {type: builtin, name: none}\ntrustProxyHeaders: true",
        {},
    ),
    (
        "tools-inline",
        "image: img\ntools: [b_tool, a_tool]",
        {},
    ),
    (
        "tools-config-with-overrides",
        "image: img\ntoolConfigRef: {name: tc}",
        {
            "tool_config": toolconfig(
                {"toolsFilter": ["fetch"], "toolsOverride": {"fetch": {"name": "get", "description": "d"}}}
            )
        },
    ),
    (
        "telemetry-enabled",
        "image: img\ntelemetry: {openTelemetry: {enabled: true, endpoint: 'https://otel:4318', "
        "serviceName: svc, headers: ['a=b'], insecure: true, tracing: {enabled: true, samplingRate: '0.5'}, "
        "metrics: {enabled: true}}, prometheus: {enabled: true}}",
        {},
    ),
    (
        "telemetry-disabled",
        "image: img\ntelemetry: {openTelemetry: {enabled: false, endpoint: 'https://otel:4318'}}",
        {},
    ),
    ("audit", "image: img\naudit: {enabled: true}", {}),
    (
        "inline-oidc-and-exchange",
        "image: img\ntransport: streamable-http\nmcpPort: 8081\nexternalAuthConfigRef: {name: ext}\n"
        "oidcConfig: {type: inline, resourceUrl: https://mcp.example.com, inline: "
        "{issuer: https://iss, audience: aud, jwksUrl: https://iss/jwks, clientId: cid}}",
        {"external_auth": extauth(TE)},
    ),
    (
        "pod-template-and-secrets",
        "image: img\nserviceAccount: mcp-sa\nsecrets: [{name: s1, key: k1, targetEnvName: T1}]\n"
        "podTemplateSpec: {spec: {containers: [{name: mcp, resources: {limits: {cpu: 100m}}}]}}",
        {},
    ),
]


PARAMS = [pytest.param(spec, refs, id=name) for name, spec, refs in CASES]


@pytest.mark.parametrize(("spec", "refs"), PARAMS)
def test_flag_mode_and_configmap_mode_give_the_same_runner_config(
    spec: str, refs: dict[str, Any], tmp_path: Path
) -> None:
    from_flags, from_cm = parse_both(server(spec), tmp_path, **refs)
    assert from_flags.workload == from_cm.workload
    assert from_flags.middleware == from_cm.middleware
    assert from_flags.proxy == from_cm.proxy
    assert from_flags == from_cm


def test_exchange_in_effect(tmp_path: Path) -> None:
    from_flags, _ = parse_both(
        server("image: img\ntransport: streamable-http\nmcpPort: 9\nexternalAuthConfigRef: {name: ext}"),
        tmp_path,
        external_auth=extauth({**TE, "externalTokenHeaderName": "X-Up"}),
    )
    te = from_flags.proxy.token_exchange
    assert te is not None
    assert te.client_secret == Secret("s3cr3t-value")
    assert (te.audience, te.scopes, te.subject_token_type) == (
        "backend",
        ("openid", "read:all"),
        contract.TOKEN_TYPE_JWT,
    )
    assert (te.header_strategy, te.external_token_header_name) == ("custom", "X-Up")


@pytest.mark.parametrize(("spec", "refs"), PARAMS)
def test_every_rendered_flag_is_in_the_table_and_round_trips(spec: str, refs: dict[str, Any]) -> None:
    d = render(server(spec), OperatorSettings(use_configmap=False), **refs)
    argv = runner_argv(d)
    parsed = contract.parse_flags(argv)
    image_at = argv.index(server(spec).spec.image)
    for arg in argv[:image_at]:
        name, eq, value = arg.partition("=")
        spec_ = contract.FLAGS_BY_NAME[name]  # KeyError = a flag the runner does not know
        assert eq or spec_.kind is contract.FlagKind.BOOL
        got = parsed.values[spec_.dest]
        if spec_.kind is contract.FlagKind.LIST:
            assert isinstance(got, tuple) and value in got
        elif spec_.kind is contract.FlagKind.BOOL:
            assert got is contract.parse_bool(value, name) if eq else got is True
        else:
            assert got == value
    assert parsed.positionals == (server(spec).spec.image,)
    assert list(parsed.rest) == list(server(spec).spec.args or [])


def test_upstream_proxyrunner_flags_are_all_accepted() -> None:
    upstream = [
        "--transport",
        "--proxy-mode",
        "--name",
        "--proxy-port",
        "--host",
        "--target-port",
        "--permission-profile",
        "--env",
        "--k8s-pod-patch",
        "--thv-ca-bundle",
        "--jwks-auth-token-file",
        "--jwks-allow-private-ip",
        "--oidc-issuer",
        "--oidc-audience",
        "--oidc-jwks-url",
        "--oidc-client-id",
        "--oidc-client-secret",
        "--oidc-introspection-url",
        "--secret",
        "--authz-config",
        "--audit-config",
        "--enable-audit",
        "--otel-enabled",
        "--otel-endpoint",
        "--otel-service-name",
        "--otel-headers",
        "--otel-insecure",
        "--otel-tracing-enabled",
        "--otel-metrics-enabled",
        "--otel-tracing-sampling-rate",
        "--enable-prometheus-metrics-path",
        "--isolate-network",
        "--trust-proxy-headers",
        "--tools",
        "--resource-url",
        "--env-file-dir",
        "--debug",
    ]
    for name in upstream:
        assert name in contract.FLAGS_BY_NAME and contract.FLAGS_BY_NAME[name].upstream, name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus=1", "img"], "unknown flag: --bogus"),
        (["--name=x", "--frobnicate", "img"], "unknown flag: --frobnicate"),
        (["--name=x"], "IMAGE is required"),
        (["--name=x", "img", "other"], "unexpected argument 'other'"),
        (["img"], "--name is required"),
        (["--name=x", "--transport=sse", "img"], "--target-port is required"),
        (["--name=x", "--transport=grpc", "img"], "transport must be one of"),
        (["--name=x", "--env=NOVALUE", "img"], "expected KEY=VALUE"),
        (["--name=x", "--volume=/a", "img"], "invalid volume"),
        (["--name=x", "--k8s-pod-patch=[1]", "img"], "must be a JSON object"),
        (["--name=x", "--jwks-allow-private-ip=maybe", "img"], "invalid boolean"),
        (["--name=x", "--token-exchange-client-secret=s", "img"], "not accepted as flags"),
        (["--name=x", "--oidc-client-secret=s", "img"], "not accepted"),
        (["--name=x", "--proxy-port=eighty", "img"], "invalid int value"),
        (["--name=x", "--proxy-port"], "flag needs an argument: --proxy-port"),
    ],
)
def test_errors_are_one_line_naming_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        runner_config(argv, env={}, runconfig_paths=())
    assert "\n" not in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_configmap_mode_refuses_flags_that_describe_the_server(tmp_path: Path) -> None:
    d = render(server("image: img"), OperatorSettings(use_configmap=True))
    assert d.runconfig_configmap is not None and d.runconfig_configmap.data is not None
    path = tmp_path / "runconfig.json"
    path.write_text(d.runconfig_configmap.data["runconfig.json"])
    with pytest.raises(ConfigError, match="--transport cannot be combined with the runconfig"):
        runner_config(["--runconfig", str(path), "--transport=sse", "img"], env={})
    # the first existing default path is used, as upstream's runner does
    invocation, config = runner_config(
        ["img", "--", "x"], env={}, runconfig_paths=(str(tmp_path / "no"), str(path))
    )
    assert invocation.source == str(path)
    assert config.workload.cmd_args == ("x",) and config.workload.name == "srv"


def test_a_bool_flag_never_swallows_the_image() -> None:
    _, config = runner_config(
        ["--name=x", "--trust-proxy-headers", "img", "--", "--debug"], env={}, runconfig_paths=()
    )
    assert config.workload.image == "img" and config.workload.trust_proxy_headers
    assert config.workload.cmd_args == ("--debug",) and not config.workload.debug


def test_kubernetes_oidc_keeps_upstreams_two_divergences(tmp_path: Path) -> None:
    """Upstream's modes disagree for ``oidcConfig.type: kubernetes``: flag mode's resource URL is the
    proxy Service and it sends ``--oidc-client-id=<sa>.<ns>.svc.cluster.local``; ConfigMap mode's
    resolver uses the bare server name and no client id. Everything else is equal."""
    from_flags, from_cm = parse_both(server("image: img\noidcConfig: {type: kubernetes}"), tmp_path)
    assert from_flags.workload == from_cm.workload
    assert from_flags.proxy.oidc is not None and from_cm.proxy.oidc is not None
    assert from_flags.proxy.oidc.resource_url == "http://mcp-srv-proxy.ns.svc.cluster.local:8080"
    assert from_cm.proxy.oidc.resource_url == "http://srv.ns.svc.cluster.local:8080"
    assert (from_flags.middleware.oidc_client_id, from_cm.middleware.oidc_client_id) == (
        "default.ns.svc.cluster.local",
        "",
    )
    same_oidc = msgspec.structs.replace(from_flags.proxy.oidc, resource_url=from_cm.proxy.oidc.resource_url)
    assert msgspec.structs.replace(from_flags.proxy, oidc=same_oidc) == from_cm.proxy
