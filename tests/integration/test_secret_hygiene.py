"""Secret hygiene: drive a secret down every path it can travel, then find it nowhere.

The scenario (in flag mode and in ConfigMap mode, one operator each) covers external auth with
``clientSecretRef`` (plain, special characters, control characters, a 64 KiB value, a
``kubernetes.io/basic-auth`` Secret given as base64 ``data``), a Secret rotation followed by a
re-render, a missing key (condition + Event) that later heals, the secret-related bad inputs of
``bad_inputs.py`` (missing Secret, missing key, empty/``..``/path-traversal refs, invalid keys)
plus an invalid token URL next to a valid secret, and a blocked deletion. Then the
``secret_scanner`` (``hygiene.py``) looks for every secret value — as is, JSON/Go-escaped,
URL-encoded, hex and base64 at every alignment — in all ConfigMaps, Deployments, ReplicaSets,
Pods, Services, RBAC objects, Events and thv objects (spec and status) of the namespace, in every
log record (thv's structlog JSON, messages, arguments, tracebacks), in every exported span and
in the metrics page. Zero occurrences are allowed.

With Keycloak (``-m keycloak``): a real RFC 8693 exchange through ``thv proxy`` configured from
the operator's rendered ConfigMap, plus a failing exchange with a wrong client secret; the
client secret, the subject token, the exchanged token and the wrong secret appear nowhere.
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from bad_inputs import (
    CASES,
    CLIENT_SECRET_VALUE,
    CONTROL_AUDIENCE,
    CONTROL_SETUP,
    CONTROLS_BEFORE,
    TOKEN_URL,
    Surfaced,
)
from hygiene import SecretScanner
from test_bad_input import GROUP_PATH, Snapshot, control_problem, send, surfaced_problem, wait_all

from devcluster import ControlPlane
from thvtest import manifests
from thvtest.harness import run_operator, wait_for

SECRET_ENV = "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"
#: the bad inputs of the corpus that involve a Secret
SECRET_CASES = (
    "missing-secret",
    "missing-secret-key",
    "secretref-empty",
    "secretref-dotdot",
    "secretref-traversal",
    "secretref-bad-key",
)
#: the resolver's Secret cache (subscribers/resolve.py CACHE_TTL) plus a margin
SECRET_CACHE_TTL = 2.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _extauth(name: str, secret: str, key: str, **te: Any) -> dict[str, Any]:
    fields = {
        "tokenUrl": TOKEN_URL,
        "clientId": "mcp-proxy",
        "audience": "hygiene-backend",
        "scopes": ["openid"],
    }
    return manifests.extauth(name, secret=(secret, key), **{**fields, **te})


def _server(name: str, auth: str) -> dict[str, Any]:
    return manifests.mcpserver(
        name,
        external_auth=auth,
        defaults=False,
        image=manifests.IMAGE,
        transport="streamable-http",
        proxyPort=8080,
        mcpPort=8080,
    )


def _create(cp: ControlPlane, ns: str, body: Any) -> None:
    status, out = send(cp, ns, ns, body)
    assert status == 201, out


def _running(snap: Snapshot, name: str) -> str | None:
    srv = snap.servers.get(name) or {}
    phase = (srv.get("status") or {}).get("phase")
    return None if phase == "Running" else f"{name} is {phase}"


def _secret_env_problem(snap: Snapshot, name: str, secret: str, key: str) -> str | None:
    """The client secret reaches the proxy only as a secretKeyRef, never as a value or a flag."""
    dep = snap.deployments.get(name)
    if dep is None:
        return f"no Deployment {name}"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container.get("env", [])}
    var = env.get(SECRET_ENV)
    if (
        var is None
        or "value" in var
        or var.get("valueFrom") != {"secretKeyRef": {"name": secret, "key": key}}
    ):
        return f"{SECRET_ENV} is {var}"
    if any(a.startswith("--token-exchange-client-secret") for a in container.get("args", [])):
        return "client secret passed as a flag"
    return None


@pytest.mark.parametrize("use_configmap", [False, True], ids=["flags", "configmap"])
def test_every_secret_path_leaves_no_trace(
    control_plane: ControlPlane,
    namespace: str,
    operator_kubeconfig_path: Path,
    secret_scanner: SecretScanner,
    use_configmap: bool,
) -> None:
    cp, ns, sc = control_plane, namespace, secret_scanner
    sc.watch_namespace(ns)
    uid = uuid.uuid4().hex
    client = sc.add_secret("client secret", f"hyg-client-{uid}")
    special = sc.add_secret("client secret with specials", f"p@ss/w0rd+{uid}&<é>=\"' \\%2F")
    controls = sc.add_secret("secret with control characters", f"line1\nline2\t\x00{uid}\u202e")
    large = sc.add_secret("64 KiB secret", secrets.token_urlsafe(48 * 1024))
    password = sc.add_secret("basic-auth password", f"hyg-basic-{uid}")
    unrelated = sc.add_secret("another key's value", f"hyg-other-key-{uid}")
    rotated = sc.add_secret("rotated client secret", f"hyg-rotated-{uid}")
    healed = sc.add_secret("late client secret", f"hyg-healed-{uid}")
    sc.add_secret("bad-input control secret", CLIENT_SECRET_VALUE)
    sc.add_secret("bad-input other key", "not-the-client-secret")

    port = _free_port()
    with run_operator(
        operator_kubeconfig_path,
        namespaces=[ns],
        use_configmap=use_configmap,
        health_address=("127.0.0.1", port),
    ) as op:
        secrets_ = [
            {"metadata": {"name": "hyg-client"}, "stringData": {"client-secret": client}},
            {
                "metadata": {"name": "hyg-special"},
                "data": {
                    "client-secret": base64.b64encode(special.encode()).decode(),
                    "ctl": base64.b64encode(controls.encode()).decode(),
                    "large": base64.b64encode(large.encode()).decode(),
                },
            },
            {
                "metadata": {"name": "hyg-basic"},
                "type": "kubernetes.io/basic-auth",
                "stringData": {"username": "mcp-proxy", "password": password},
            },
            {"metadata": {"name": "hyg-wrong-key"}, "stringData": {"other-key": unrelated, "large": large}},
        ]
        for body in secrets_:
            status, out = cp.api_request("POST", f"/api/v1/namespaces/{ns}/secrets", body)
            assert status == 201, out
        configs = [
            _extauth("hyg-auth", "hyg-client", "client-secret", externalTokenHeaderName="X-Upstream-Token"),
            _extauth("hyg-special", "hyg-special", "client-secret"),
            _extauth("hyg-ctl-chars", "hyg-special", "ctl"),
            _extauth("hyg-large", "hyg-special", "large"),
            _extauth("hyg-basic", "hyg-basic", "password"),
            _extauth("hyg-missing-key", "hyg-wrong-key", "client-secret"),
            # bad inputs next to valid secrets
            _extauth("hyg-traversal", "../secrets/hyg-client", "client-secret"),
            _extauth("hyg-bad-url", "hyg-client", "client-secret", tokenUrl="https://[::1/token"),
            _extauth("hyg-absent", "hyg-absent", "client-secret"),
        ]
        for body in configs:
            _create(cp, ns, body)
            _create(cp, ns, _server(body["metadata"]["name"], body["metadata"]["name"]))
        for body in (*CONTROL_SETUP, *CONTROLS_BEFORE):
            _create(cp, ns, body)
        corpus = [c for c in CASES if c.id in SECRET_CASES]
        assert len(corpus) == len(SECRET_CASES)
        for case in corpus:
            for step in case.steps:
                _create(cp, ns, step)

        running = {
            "hyg-auth": ("hyg-client", "client-secret"),
            "hyg-special": ("hyg-special", "client-secret"),
            "hyg-ctl-chars": ("hyg-special", "ctl"),
            "hyg-large": ("hyg-special", "large"),
            "hyg-basic": ("hyg-basic", "password"),
        }
        checks: dict[str, Any] = {
            name: (lambda s, n=name, r=ref: _running(s, n) or _secret_env_problem(s, n, *r))
            for name, ref in running.items()
        }
        surfaced = [
            Surfaced("hyg-missing-key", "ClientSecretKeyMissing", 'is missing key "client-secret"'),
            Surfaced("hyg-traversal", "InvalidExternalAuthConfig", "is not a valid Secret name"),
            Surfaced("hyg-bad-url", "InvalidExternalAuthConfig", "is not a valid URL"),
            Surfaced("hyg-absent", "ClientSecretNotFound", "hyg-absent not found"),
            *(c.expect for c in corpus if isinstance(c.expect, Surfaced)),
        ]
        for exp in surfaced:
            checks[exp.server] = lambda s, exp=exp: surfaced_problem(s, exp)
        checks["ctl-before"] = (
            (lambda s: control_problem(s, "ctl-before", CONTROL_AUDIENCE))
            if use_configmap
            else (lambda s: _running(s, "ctl-before"))
        )
        _, unmet = wait_all(cp, ns, checks, 120)
        assert not unmet, unmet

        # rotation: the new value is read (keys only) and the next render still only refers to it
        status, out = cp.api_request(
            "PATCH", f"/api/v1/namespaces/{ns}/secrets/hyg-client", {"stringData": {"client-secret": rotated}}
        )
        assert status == 200, out
        time.sleep(SECRET_CACHE_TTL)
        op.call(op.operator.resync_all)
        status, out = cp.api_request(
            "PATCH",
            f"{GROUP_PATH}/{ns}/mcpexternalauthconfigs/hyg-auth",
            {"spec": {"tokenExchange": {"audience": "hygiene-rotated"}}},
        )
        assert status == 200, out

        def rerendered(s: Snapshot) -> str | None:
            dep = s.deployments.get("hyg-auth") or {}
            args = " ".join(
                dep.get("spec", {})
                .get("template", {})
                .get("spec", {})
                .get("containers", [{}])[0]
                .get("args", [])
            )
            rc = s.runconfig("hyg-auth") if use_configmap else None
            done = (
                (rc or {}).get("token_exchange_config", {}).get("audience") == "hygiene-rotated"
                if use_configmap
                else "--token-exchange-audience=hygiene-rotated" in args
            )
            return _secret_env_problem(s, "hyg-auth", "hyg-client", "client-secret") or (
                None if done else "not re-rendered yet"
            )

        _, unmet = wait_all(cp, ns, {"rotation": rerendered}, 60)
        assert not unmet, unmet

        # the missing key appears: the server heals
        status, out = cp.api_request(
            "PATCH",
            f"/api/v1/namespaces/{ns}/secrets/hyg-wrong-key",
            {"stringData": {"client-secret": healed}},
        )
        assert status == 200, out
        _, unmet = wait_all(cp, ns, {"healed": lambda s: _running(s, "hyg-missing-key")}, 60)
        assert not unmet, unmet

        # a blocked deletion (DeletionBlocked condition and Event name servers, nothing else)
        status, out = cp.api_request("DELETE", f"{GROUP_PATH}/{ns}/mcpexternalauthconfigs/hyg-special")
        assert status == 200, out
        wait_for(
            lambda: any(
                e["reason"] == "DeletionBlocked"
                for e in cp.api_request("GET", f"/api/v1/namespaces/{ns}/events")[1]["items"]
            ),
            30,
            "DeletionBlocked Event",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            sc.add_haystack("metrics page", r.read().decode())

    coverage = sc.coverage()
    print(f"hygiene scan ({len(sc.secrets)} secrets) looked at:", coverage)
    for source in (
        "ConfigMap",
        "Deployment",
        "Pod",
        "Event",
        "MCPServer",
        "MCPExternalAuthConfig",
        "log",
        "span",
    ):
        assert coverage.get(source), (source, coverage)  # a clean scan must not be an empty one
    sc.assert_clean()


@pytest.mark.keycloak
def test_token_exchange_through_the_proxy_leaves_no_trace(
    control_plane: ControlPlane,
    namespace: str,
    operator_kubeconfig_path: Path,
    keycloak: Any,
    keycloak_roundtrip: Any,
    proxy_server: Any,
    secret_scanner: SecretScanner,
) -> None:
    from proxy_testlib import PROXY_CLIENT_ID, PROXY_CLIENT_SECRET, TARGET_AUDIENCE

    from thv.proxy import config_from_runconfig

    cp, ns, sc = control_plane, namespace, secret_scanner
    sc.watch_namespace(ns)
    sc.add_secret("proxy client secret", PROXY_CLIENT_SECRET)
    wrong = sc.add_secret("wrong client secret", f"wrong-{uuid.uuid4().hex}")
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        status, out = cp.api_request(
            "POST",
            f"/api/v1/namespaces/{ns}/secrets",
            {"metadata": {"name": "kc"}, "stringData": {"secret": PROXY_CLIENT_SECRET}},
        )
        assert status == 201, out
        _create(
            cp,
            ns,
            _extauth(
                "kc",
                "kc",
                "secret",
                tokenUrl=keycloak.token_url,
                clientId=PROXY_CLIENT_ID,
                audience=TARGET_AUDIENCE,
                scopes=None,
                externalTokenHeaderName="X-Upstream-Token",
            ),
        )
        _create(cp, ns, _server("srv", "kc"))
        cm = wait_for(
            lambda: (
                (r := cp.api_request("GET", f"/api/v1/namespaces/{ns}/configmaps/srv-runconfig"))[0] == 200
                and r[1]
            ),
            60,
            "runconfig ConfigMap",
        )
        _, unmet = wait_all(cp, ns, {"srv": lambda s: _running(s, "srv")}, 60)
        assert not unmet, unmet
    config = config_from_runconfig(cm["data"]["runconfig.json"], env={SECRET_ENV: PROXY_CLIENT_SECRET})
    record = keycloak_roundtrip(config)
    subject = record.headers["authorization"].removeprefix("Bearer ")
    exchanged = record.headers["x-upstream-token"].removeprefix("Bearer ")
    sc.add_secret("subject token", subject)
    sc.add_secret("exchanged token", exchanged)

    # the failure path: with a wrong client secret Keycloak refuses the exchange (502: misconfigured)
    bad = config_from_runconfig(cm["data"]["runconfig.json"], env={SECRET_ENV: wrong})
    proxy = proxy_server(msgspec.structs.replace(bad, target_url="http://127.0.0.1:9"))
    token = sc.add_secret("subject token (failed exchange)", keycloak.password_token())
    r = httpx.post(
        f"{proxy.url}/mcp",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        timeout=60,
    )
    assert r.status_code == 502 and "exchange" in r.text.lower(), r.text  # provider refused: misconfigured
    sc.add_haystack("proxy 401 response", r.text + repr(dict(r.headers)))

    coverage = sc.coverage()
    assert coverage.get("log") and coverage.get("span"), coverage
    sc.assert_clean()


def test_the_scanner_finds_planted_secrets(
    control_plane: ControlPlane, namespace: str, secret_scanner: SecretScanner
) -> None:
    """The scanner itself: secrets planted in each source, in several encodings, are all found."""
    import logging
    import urllib.parse

    from opentelemetry import trace

    cp, ns, sc = control_plane, namespace, secret_scanner
    sc.watch_namespace(ns)
    uid = uuid.uuid4().hex
    in_configmap = sc.add_secret("planted in a ConfigMap", f"cm-{uid}")
    in_env = sc.add_secret("planted as a literal env value", f"env-{uid}&<>")
    in_log = sc.add_secret("planted in a log record", f"log-{uid} ü")
    in_span = sc.add_secret("planted in a span", f"span-{uid}")
    in_extra = sc.add_secret("planted in a JWT signature", f"aaaa.bbbb.{uid}sig")
    blob = base64.b64encode(b"prefix:" + in_configmap.encode() + b":suffix").decode()
    status, out = cp.api_request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "planted"}, "data": {"blob": blob}},
    )
    assert status == 201, out
    labels = {"app": "planted"}
    deployment = {
        "metadata": {"name": "planted"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "c", "image": "x", "env": [{"name": "S", "value": in_env}]}]
                },
            },
        },
    }
    status, out = cp.api_request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment)
    assert status == 201, out
    logging.getLogger("thv.planted").warning("url=%s", f"https://x/?t={urllib.parse.quote_plus(in_log)}")
    with trace.get_tracer("planted").start_as_current_span("planted") as span:
        span.set_attribute("token.hex", in_span.encode().hex())
    sc.add_haystack("a response", f"Authorization: Bearer xxxx.yyyy.{in_extra.split('.')[2]}")

    found = {(f.secret, f.encoding, f.where.split(" ", 1)[0]) for f in sc.findings()}
    assert ("planted in a ConfigMap", "base64@1", "ConfigMap") in found, found
    assert ("planted as a literal env value", "plain", "Deployment") in found, found
    assert ("planted in a log record", "url-form", "log") in found, found
    assert ("planted in a span", "hex", "span") in found, found
    assert ("planted in a JWT signature (JWT signature)", "plain", "a") in found, found
