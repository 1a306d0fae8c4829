"""ProxyConfig from runconfig.json and from flags: one config, equal for equal meaning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thv.proxy import (
    ConfigError,
    ProxyConfig,
    Secret,
    TokenExchangeSettings,
    config_from_args,
    config_from_runconfig,
)
from thv.proxy.config import (
    SECRET_ENV,
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_TOKEN,
    TOKEN_TYPE_JWT,
    OIDCSettings,
    describe,
)

SECRET = "s3cr3t-value-XYZ"
ENV = {SECRET_ENV: SECRET}

# the reference's representative ConfigMap runconfig (operator @ 5bc66cc9c), verbatim keys
REFERENCE_RUNCONFIG: dict[str, Any] = {
    "schema_version": "v0.1.0",
    "image": "ghcr.io/stackloklabs/yardstick/yardstick-server:0.0.2",
    "name": "external-auth-test",
    "container_name": "external-auth-test",
    "base_name": "external-auth-test",
    "transport": "stdio",
    "host": "0.0.0.0",
    "port": 8080,
    "permission_profile_name_or_path": "network",
    "permission_profile": {
        "name": "network",
        "network": {"outbound": {"insecure_allow_all": True}, "inbound": {}},
    },
    "env_vars": {"MCP_TRANSPORT": "stdio"},
    "container_labels": {"toolhive": "true"},
    "proxy_mode": "sse",
    "middleware_configs": [
        {
            "type": "tokenexchange",
            "parameters": {
                "token_exchange_config": {
                    "audience": "mcp-backend",
                    "client_id": "test-client-id",
                    "external_token_header_name": "X-Upstream-Token",
                    "header_strategy": "custom",
                    "scopes": ["read", "write"],
                    "token_url": "https://oauth.example.com/token",
                }
            },
        }
    ],
}


def test_reference_runconfig() -> None:
    cfg = config_from_runconfig(json.dumps(REFERENCE_RUNCONFIG).encode(), env=ENV)
    assert cfg == ProxyConfig(
        listen_host="0.0.0.0",
        listen_port=8080,
        target_url=None,
        name="external-auth-test",
        token_exchange=TokenExchangeSettings(
            token_url="https://oauth.example.com/token",
            client_id="test-client-id",
            client_secret=Secret(SECRET),
            audience="mcp-backend",
            scopes=("read", "write"),
            subject_token_type=TOKEN_TYPE_ACCESS_TOKEN,
            header_strategy="custom",
            external_token_header_name="X-Upstream-Token",
        ),
    )
    # bytes, str and dict inputs agree
    assert cfg == config_from_runconfig(json.dumps(REFERENCE_RUNCONFIG), env=ENV)
    assert cfg == config_from_runconfig(REFERENCE_RUNCONFIG, env=ENV)


def _client_secret(rc: dict[str, Any], *, env: dict[str, str]) -> Secret | None:
    exchange = config_from_runconfig(rc, env=env).token_exchange
    assert exchange is not None
    return exchange.client_secret


def test_secret_sources_and_repr() -> None:
    rc = json.loads(json.dumps(REFERENCE_RUNCONFIG))
    assert _client_secret(rc, env={}) is None
    te = rc["middleware_configs"][0]["parameters"]["token_exchange_config"]
    te["client_secret"] = ""  # post-45716962c serialisation: empty means "use the env"
    assert _client_secret(rc, env=ENV) == Secret(SECRET)
    te["client_secret"] = "inline"
    assert _client_secret(rc, env=ENV) == Secret("inline")
    cfg = config_from_runconfig(REFERENCE_RUNCONFIG, env=ENV)
    for text in (repr(cfg), str(cfg), json.dumps(describe(cfg))):
        assert SECRET not in text
    assert Secret("a") != Secret("b") and Secret("a") == Secret("a")


def test_top_level_token_exchange_config_and_conflicts() -> None:
    rc = json.loads(json.dumps(REFERENCE_RUNCONFIG))
    te = rc["middleware_configs"][0]["parameters"]["token_exchange_config"]
    only_top = {**rc, "middleware_configs": [], "token_exchange_config": te}
    assert config_from_runconfig(only_top, env=ENV) == config_from_runconfig(rc, env=ENV)
    both = {**rc, "token_exchange_config": {**te, "client_secret": "", "subject_token_type": "access_token"}}
    assert config_from_runconfig(both, env=ENV) == config_from_runconfig(rc, env=ENV)  # same meaning
    differ = {**rc, "token_exchange_config": {**te, "audience": "other"}}
    with pytest.raises(ConfigError, match="differ"):
        config_from_runconfig(differ, env=ENV)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"header_strategy": "custom", "external_token_header_name": None},
            "needs external_token_header_name",
        ),
        ({"header_strategy": "sideways"}, "must be 'replace' or 'custom'"),
        ({"token_url": ""}, "token_url is required"),
        ({"subject_token_type": "saml2"}, "subject_token_type"),
        ({"external_token_header_name": "Bad Header"}, "not a valid header name"),
        ({"scopes": "read"}, "Expected `array"),
    ],
)
def test_runconfig_errors(patch: dict[str, Any], message: str) -> None:
    rc = json.loads(json.dumps(REFERENCE_RUNCONFIG))
    rc["middleware_configs"][0]["parameters"]["token_exchange_config"].update(patch)
    with pytest.raises(ConfigError, match=message):
        config_from_runconfig(rc, env=ENV)


def test_runconfig_not_json() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_from_runconfig(b"{nope", env=ENV)


def test_replace_strategy_drops_header_name_and_subject_types() -> None:
    rc = json.loads(json.dumps(REFERENCE_RUNCONFIG))
    te = rc["middleware_configs"][0]["parameters"]["token_exchange_config"]
    te["header_strategy"] = "replace"
    for short, urn in (
        ("id_token", TOKEN_TYPE_ID_TOKEN),
        ("jwt", TOKEN_TYPE_JWT),
        (TOKEN_TYPE_JWT, TOKEN_TYPE_JWT),
    ):
        te["subject_token_type"] = short
        got = config_from_runconfig(rc, env=ENV).token_exchange
        assert got is not None
        assert got.header_strategy == "replace" and got.external_token_header_name is None
        assert got.subject_token_type == urn


def test_oidc_from_auth_middleware_and_top_level() -> None:
    oidc = {
        "Issuer": "https://kc.example.test/realms/r",
        "Audience": "mcp-proxy",
        "JWKSURL": "",
        "ClientID": "",
        "ClientSecret": "never-used",
        "CACertPath": "",
        "AuthTokenFile": "",
        "AllowPrivateIP": True,
        "IntrospectionURL": "",
        "ResourceURL": "http://srv.ns.svc.cluster.local:8080",
    }
    expected = OIDCSettings(
        issuer="https://kc.example.test/realms/r",
        audience="mcp-proxy",
        allow_private_ip=True,
        resource_url="http://srv.ns.svc.cluster.local:8080",
        ca_cert_path="/ca.crt",
    )
    top = {**REFERENCE_RUNCONFIG, "oidc_config": oidc, "thv_ca_bundle": "/ca.crt"}
    assert config_from_runconfig(top, env=ENV).oidc == expected
    mw = {
        **REFERENCE_RUNCONFIG,
        "thv_ca_bundle": "/ca.crt",
        "middleware_configs": [
            {"type": "auth", "parameters": {"oidc_config": oidc}},
            *REFERENCE_RUNCONFIG["middleware_configs"],
        ],
    }
    assert config_from_runconfig(mw, env=ENV).oidc == expected
    only_resource = {**REFERENCE_RUNCONFIG, "oidc_config": {"ResourceURL": "http://x"}}
    assert config_from_runconfig(only_resource, env=ENV).oidc is None


def test_target_from_runconfig_and_no_token_exchange() -> None:
    cfg = config_from_runconfig(
        {"name": "plain", "port": 9000, "target_port": 9090, "target_host": "::1"}, env={}
    )
    assert cfg.target_url == "http://[::1]:9090"
    assert cfg.token_exchange is None and cfg.oidc is None
    assert cfg.listen_port == 9000 and cfg.listen_host == "127.0.0.1"


# ------------------------------------------------------------------------------------------------
# flags


def test_flags_full() -> None:
    cfg = config_from_args(
        [
            "--target",
            "http://127.0.0.1:9090/",
            "--port",
            "8081",
            "--token-exchange-url",
            "https://idp.example.test/token",
            "--token-exchange-client-id",
            "proxy",
            "--token-exchange-audience",
            "backend",
            "--token-exchange-scopes",
            "read, write",
            "--token-exchange-scopes=admin",
            "--token-exchange-subject-token-type",
            "jwt",
            "--token-exchange-header-name",
            "X-Upstream-Token",
        ],
        env=ENV,
    )
    assert cfg == ProxyConfig(
        listen_port=8081,
        target_url="http://127.0.0.1:9090",
        token_exchange=TokenExchangeSettings(
            token_url="https://idp.example.test/token",
            client_id="proxy",
            client_secret=Secret(SECRET),
            audience="backend",
            scopes=("read", "write", "admin"),
            subject_token_type=TOKEN_TYPE_JWT,
            header_strategy="custom",
            external_token_header_name="X-Upstream-Token",
        ),
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token-exchange-client-secret", "x"], "not accepted as flags"),
        (["--token-exchange-client-secret-file", "/f"], "not accepted as flags"),
        (["--token-exchange-audience", "a"], "--token-exchange-url is required"),
        (["--token-exchange-url", "u", "--token-exchange-subject-token-type", "saml"], "subject_token_type"),
        (["--target", "ftp://x"], "must start with http"),
        (["--bogus"], "unknown flag: --bogus"),
        (["--port", "nope"], "invalid int value"),
        (["--oidc-audience", "a"], "--oidc-issuer is required"),
        (["--target-host", "h"], "--target-host needs --target-port"),
    ],
)
def test_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_args(argv, env=ENV)


def test_runconfig_file_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "runconfig.json"
    path.write_text(json.dumps(REFERENCE_RUNCONFIG))
    cfg = config_from_args(
        ["--runconfig", str(path), "--target", "http://127.0.0.1:7000", "--port", "9999"], env=ENV
    )
    assert cfg == msgspec.structs.replace(
        config_from_runconfig(REFERENCE_RUNCONFIG, env=ENV),
        target_url="http://127.0.0.1:7000",
        listen_port=9999,
    )
    assert config_from_args(["--runconfig", str(path), "--target-port", "7001"], env=ENV).target_url == (
        "http://127.0.0.1:7001"
    )
    with pytest.raises(ConfigError, match="cannot be combined"):
        config_from_args(["--runconfig", str(path), "--token-exchange-url", "u"], env=ENV)
    with pytest.raises(ConfigError, match="cannot read"):
        config_from_args(["--runconfig", str(tmp_path / "missing.json")], env=ENV)


def test_oidc_flags() -> None:
    cfg = config_from_args(
        [
            "--oidc-issuer",
            "https://i",
            "--oidc-audience",
            "a",
            "--oidc-jwks-url",
            "https://i/jwks",
            "--jwks-allow-private-ip",
        ],
        env={},
    )
    assert cfg.oidc == OIDCSettings(
        issuer="https://i", audience="a", jwks_url="https://i/jwks", allow_private_ip=True
    )


def test_pure_and_deterministic() -> None:
    argv = ["--token-exchange-url", "https://t", "--token-exchange-scopes", "a,b"]
    assert config_from_args(argv, env=ENV) == config_from_args(list(argv), env=dict(ENV))
    assert config_from_args(argv, env={}) != config_from_args(argv, env=ENV)  # the secret is part of it


# ------------------------------------------------------------------------------------------------
# equivalence: the flags that mirror a ConfigMap parse back to the same config


def render_flags(rc: dict[str, Any]) -> list[str]:
    """What a flag-mode renderer would emit for the same MCPServer (reference implementation).

    Always ``--flag=value``: a value may start with ``-``."""
    flags: list[tuple[str, str]] = [("host", rc["host"]), ("port", str(rc["port"]))]
    if rc.get("name"):
        flags.append(("name", rc["name"]))
    if rc.get("target_port"):
        flags.append(("target-port", str(rc["target_port"])))
    te = rc["middleware_configs"][0]["parameters"]["token_exchange_config"]
    flags.append(("token-exchange-url", te["token_url"]))
    if te.get("client_id"):
        flags.append(("token-exchange-client-id", te["client_id"]))
    if te.get("audience"):
        flags.append(("token-exchange-audience", te["audience"]))
    if te.get("scopes"):
        flags.append(("token-exchange-scopes", ",".join(te["scopes"])))
    if te.get("subject_token_type"):
        flags.append(("token-exchange-subject-token-type", te["subject_token_type"]))
    if te.get("header_strategy") == "custom":
        flags.append(("token-exchange-header-name", te["external_token_header_name"]))
    return [f"--{name}={value}" for name, value in flags]


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:/", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    token_url=_word.map(lambda w: "https://idp.test/" + w),
    client_id=st.one_of(st.just(""), _word),
    audience=st.one_of(st.just(""), _word),
    scopes=st.lists(_word.filter(lambda w: "," not in w), max_size=4),
    subject=st.sampled_from(["", "access_token", "id_token", "jwt", TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT]),
    header=st.one_of(st.none(), st.sampled_from(["X-Upstream-Token", "x-backend-auth"])),
    port=st.integers(1, 65535),
    target_port=st.one_of(st.none(), st.integers(1, 65535)),
    secret=st.one_of(st.none(), st.just(SECRET)),
)
def test_flags_equal_configmap(
    token_url: str,
    client_id: str,
    audience: str,
    scopes: list[str],
    subject: str,
    header: str | None,
    port: int,
    target_port: int | None,
    secret: str | None,
) -> None:
    te: dict[str, Any] = {"token_url": token_url, "client_id": client_id, "audience": audience}
    if scopes:
        te["scopes"] = scopes
    if subject:
        te["subject_token_type"] = subject
    te["header_strategy"] = "custom" if header else "replace"
    if header:
        te["external_token_header_name"] = header
    rc: dict[str, Any] = {"name": "srv", "host": "0.0.0.0", "port": port}
    if target_port:
        rc["target_port"] = target_port
    rc["middleware_configs"] = [{"type": "tokenexchange", "parameters": {"token_exchange_config": te}}]
    env = {SECRET_ENV: secret} if secret else {}
    assert config_from_args(render_flags(rc), env=env) == config_from_runconfig(
        json.dumps(rc).encode(), env=env
    )
