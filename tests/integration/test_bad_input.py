"""Every case of the bad-input corpus (``bad_inputs.py``) against ONE running operator in one
namespace: all manifests are applied at once, then each expected outcome is awaited.

* rejected cases: the API server refuses them with a useful message and stores nothing (a bad
  update of a good object leaves it as it was);
* surfaced cases: condition ``Ready=False`` with the expected reason and message, phase Failed,
  and a Warning Event; nothing is rendered for a server that cannot be resolved;
* rendered cases: the server runs and ``runconfig.json`` carries the awkward value verbatim;
* throughout: the operator task keeps running, ``/healthz`` and ``/readyz`` answer 200, the
  valid control objects applied before, among and after the bad ones all reach their desired
  state, and nothing about the first control changes while the bad inputs are processed.
"""

from __future__ import annotations

import copy
import functools
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import (
    CLIENT_SECRET_KEY,
    CLIENT_SECRET_NAME,
    CONFIGMAP,
    CONTROL_AUDIENCE,
    CONTROL_SETUP,
    CONTROL_TOOLS,
    CONTROLS_AFTER,
    CONTROLS_AMONG,
    CONTROLS_BEFORE,
    FLAGS,
    OTHER_NS,
    PLURALS,
    Patch,
    Rejected,
    Rendered,
    Step,
    Surfaced,
    cases,
)

from devcluster import ControlPlane
from thvtest.harness import run_operator, wait_for

GROUP_PATH = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"
SECRET_ENV = "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"
#: how long every surfaced/rendered outcome and control may take, all together
SETTLE_TIMEOUT = 180.0


# --- API helpers --------------------------------------------------------------------------------


def collection(kind: str, ns: str) -> str:
    plural = PLURALS[kind]
    if kind in ("Secret", "ConfigMap"):
        return f"/api/v1/namespaces/{ns}/{plural}"
    return f"{GROUP_PATH}/{ns}/{plural}"


def _placeholders(value: Any, other: str) -> Any:
    if isinstance(value, str):
        return other if value == OTHER_NS else value
    if isinstance(value, list):
        return [_placeholders(v, other) for v in value]
    if isinstance(value, dict):
        return {k: _placeholders(v, other) for k, v in value.items()}
    return value


def send(cp: ControlPlane, ns: str, other: str, step: Step, query: str = "") -> tuple[int, Any]:
    """POST a manifest (into its ``metadata.namespace`` or ``ns``) or merge-PATCH an object.

    A connection the apiserver closes while a huge body is still being sent is retried."""
    for attempt in range(3):
        try:
            if isinstance(step, Patch):
                return cp.api_request("PATCH", f"{collection(step.kind, ns)}/{step.name}{query}", step.body)
            body = _placeholders(copy.deepcopy(step), other)
            target = body["metadata"].pop("namespace", None) or ns
            return cp.api_request("POST", f"{collection(body['kind'], target)}{query}", body)
        except OSError:
            if attempt == 2:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def get(cp: ControlPlane, path: str) -> dict[str, Any] | None:
    status, body = cp.api_request("GET", path)
    return body if status == 200 else None


def items(cp: ControlPlane, path: str) -> dict[str, dict[str, Any]]:
    status, body = cp.api_request("GET", path)
    assert status == 200, body
    return {i["metadata"]["name"]: i for i in body.get("items") or []}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def dig(doc: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return doc


# --- the observed state, read once per poll ---------------------------------------------------


class Snapshot:
    """Servers, configs, ConfigMaps, Deployments, Services and Warning Events of the namespace."""

    def __init__(self, cp: ControlPlane, ns: str) -> None:
        self.servers = items(cp, f"{GROUP_PATH}/{ns}/mcpservers")
        self.extauths = items(cp, f"{GROUP_PATH}/{ns}/mcpexternalauthconfigs")
        self.toolconfigs = items(cp, f"{GROUP_PATH}/{ns}/mcptoolconfigs")
        self.configmaps = items(cp, f"/api/v1/namespaces/{ns}/configmaps")
        self.deployments = items(cp, f"/apis/apps/v1/namespaces/{ns}/deployments")
        self.services = items(cp, f"/api/v1/namespaces/{ns}/services")
        self.warnings = Counter(
            (e["involvedObject"]["name"], e["reason"])
            for e in items(cp, f"/api/v1/namespaces/{ns}/events").values()
            if e.get("type") == "Warning" and e["involvedObject"].get("kind") == "MCPServer"
        )

    def runconfig(self, server: str) -> dict[str, Any] | None:
        cm = self.configmaps.get(f"{server}-runconfig")
        if cm is None:
            return None
        parsed: dict[str, Any] = json.loads(cm["data"]["runconfig.json"])
        return parsed


def surfaced_problem(snap: Snapshot, exp: Surfaced) -> str | None:
    """What is still missing for a surfaced case (``None``: all there)."""
    srv = snap.servers.get(exp.server)
    if srv is None:
        return "server does not exist"
    ready = condition(srv)
    if ready.get("status") != "False" or ready.get("reason") != exp.reason:
        return f"Ready is {ready.get('status')}/{ready.get('reason')}: {ready.get('message')!r}"
    if exp.contains not in ready.get("message", ""):
        return f"Ready message {ready.get('message')!r} lacks {exp.contains!r}"
    if len(ready["message"]) > 1024:
        return f"Ready message is {len(ready['message'])} characters long"
    status = srv.get("status") or {}
    if status.get("phase") != "Failed" or status.get("message") != ready["message"]:
        return f"phase {status.get('phase')!r}, message {status.get('message')!r}"
    if snap.warnings[(exp.server, exp.reason)] != 1:
        return f"{snap.warnings[(exp.server, exp.reason)]} Warning Events {exp.reason} (want exactly one)"
    if exp.reason != "ApplyRejected" and exp.server in snap.deployments:
        return "a Deployment was rendered for an unresolvable server"
    return None


def rendered_problem(snap: Snapshot, exp: Rendered) -> str | None:
    srv = snap.servers.get(exp.server)
    if (((srv or {}).get("status") or {}).get("phase")) != "Running":
        return f"not Running: {condition(srv)}"
    rc = snap.runconfig(exp.server)
    if rc is None:
        return "no runconfig ConfigMap"
    got = dig(rc, exp.path)
    return None if got == exp.value else f"runconfig {exp.path} is {str(got)[:200]!r}, want {exp.value!r}"


def control_problem(snap: Snapshot, name: str, audience: str, use_configmap: bool = True) -> str | None:
    """The desired state of a control server: running, rendered from the current configs
    (``runconfig.json`` in ConfigMap mode, the proxy's flags in flag mode)."""
    srv = snap.servers.get(name)
    if srv is None:
        return "missing"
    spec, status = srv["spec"], srv.get("status") or {}
    ready = condition(srv)
    if status.get("phase") != "Running" or ready.get("status") != "True":
        return f"phase {status.get('phase')}, Ready {ready}"
    if status.get("observedGeneration") != srv["metadata"]["generation"]:
        return "observedGeneration behind"
    if f"mcp-{name}-proxy" not in snap.services:
        return "no Service"
    dep = snap.deployments.get(name)
    if dep is None:
        return "no Deployment"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container.get("env", [])}
    args = container.get("args", [])
    if use_configmap:
        rc = snap.runconfig(name)
        if rc is None:
            return "no runconfig"
    else:
        if snap.runconfig(name) is not None:
            return "a runconfig ConfigMap in flag mode"
        te_flags = [a for a in args if a.startswith("--token-exchange-")]
        tools_flags = [a for a in args if a.startswith("--tools=")]
        rc = {
            "token_exchange_config": {"audience": audience}
            if f"--token-exchange-audience={audience}" in te_flags
            else {"flags": te_flags},
            "tools_filter": tools_flags[0].removeprefix("--tools=").split(",") if tools_flags else None,
        }
    if "externalAuthConfigRef" in spec:
        te = rc.get("token_exchange_config") or {}
        if te.get("audience") != audience or te.get("client_secret"):
            return f"token exchange settings {te}"
        ref = (env.get(SECRET_ENV) or {}).get("valueFrom", {}).get("secretKeyRef")
        if ref != {"name": CLIENT_SECRET_NAME, "key": CLIENT_SECRET_KEY}:
            return f"client secret env {env.get(SECRET_ENV)}"
        cfg_hash = ((snap.extauths.get("ctl-auth") or {}).get("status") or {}).get("configHash")
        if not cfg_hash or status.get("externalAuthConfigHash") != cfg_hash:
            return f"externalAuthConfigHash {status.get('externalAuthConfigHash')} != {cfg_hash}"
    if "toolConfigRef" in spec:
        if rc.get("tools_filter") != CONTROL_TOOLS:
            return f"tools_filter {rc.get('tools_filter')}"
        tc_hash = ((snap.toolconfigs.get("ctl-tools") or {}).get("status") or {}).get("configHash")
        if not tc_hash or status.get("toolConfigHash") != tc_hash:
            return f"toolConfigHash {status.get('toolConfigHash')} != {tc_hash}"
    return None


def good_fingerprint(snap: Snapshot) -> dict[str, Any]:
    """What no bad input may change: the first control and the configs it uses."""
    dep = snap.deployments["ctl-before"]
    runconfig = snap.configmaps.get("ctl-before-runconfig")
    return {
        "ctl-auth": (snap.extauths["ctl-auth"]["spec"], snap.extauths["ctl-auth"]["metadata"]["generation"]),
        "ctl-auth hash": snap.extauths["ctl-auth"]["status"]["configHash"],
        "ctl-tools": (
            snap.toolconfigs["ctl-tools"]["spec"],
            snap.toolconfigs["ctl-tools"]["metadata"]["generation"],
        ),
        "ctl-before": (
            snap.servers["ctl-before"]["spec"],
            snap.servers["ctl-before"]["metadata"]["generation"],
        ),
        "ctl-before Deployment": (dep["metadata"]["generation"], dep["spec"]["template"]),
        "ctl-before runconfig": runconfig["data"] if runconfig else None,
        "ctl-before Service": snap.services["mcp-ctl-before-proxy"]["spec"]["ports"],
    }


def wait_all(
    cp: ControlPlane, ns: str, checks: dict[str, Callable[[Snapshot], str | None]], timeout: float
) -> tuple[Snapshot, dict[str, str]]:
    """Poll until every check passes; return the last snapshot and what still fails."""
    deadline = time.monotonic() + timeout
    while True:
        snap = Snapshot(cp, ns)
        unmet = {label: problem for label, check in checks.items() if (problem := check(snap))}
        if not unmet or time.monotonic() > deadline:
            return snap, unmet
        time.sleep(1.0)


# --- the test -------------------------------------------------------------------------------------


@pytest.fixture
def other_namespace(control_plane: ControlPlane, namespace: str) -> Any:
    name = f"{namespace[:50]}-other"
    status, body = control_plane.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    yield name
    control_plane.api_request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.mark.parametrize("mode", [CONFIGMAP, FLAGS])
def test_bad_inputs_are_rejected_or_surfaced_and_nothing_else_breaks(
    control_plane: ControlPlane,
    namespace: str,
    other_namespace: str,
    operator_kubeconfig_path: Path,
    mode: str,
) -> None:
    cp, ns, other = control_plane, namespace, other_namespace
    use_configmap = mode == CONFIGMAP
    corpus = cases(mode)
    port = _free_port()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with run_operator(
        operator_kubeconfig_path,
        namespaces=[ns],
        use_configmap=use_configmap,
        health_address=("127.0.0.1", port),
    ) as op:
        for step in (*CONTROL_SETUP, *CONTROLS_BEFORE):
            status, body = send(cp, ns, other, step)
            assert status == 201, body
        snap, unmet = wait_all(
            cp,
            ns,
            {"ctl-before": lambda s: control_problem(s, "ctl-before", CONTROL_AUDIENCE, use_configmap)},
            90,
        )
        assert not unmet, unmet
        before = good_fingerprint(snap)
        timings["first control running"] = time.monotonic() - t0

        # every case at once, the other controls among and after them
        answers: dict[str, tuple[int, Any]] = {}
        among = list(CONTROLS_AMONG)
        stride = len(corpus) // (len(among) + 1)
        t1 = time.monotonic()
        for i, case in enumerate(corpus):
            if among and i and i % stride == 0:
                status, body = send(cp, ns, other, among.pop(0))
                assert status == 201, body
            *setup, last = case.steps
            for setup_step in setup:
                status, body = send(cp, ns, other, setup_step)
                assert status == 201, (case.id, body)
            answers[case.id] = send(cp, ns, other, last, case.query)
        for step in (*among, *CONTROLS_AFTER):
            status, body = send(cp, ns, other, step)
            assert status == 201, body
        timings["apply all cases"] = time.monotonic() - t1

        # rejected: at once, with a useful message, nothing stored
        problems: dict[str, str] = {}
        for case in corpus:
            status, body = answers[case.id]
            if isinstance(case.expect, Rejected):
                message = body.get("message", "") if isinstance(body, dict) else str(body)
                if status != case.expect.status or case.expect.contains not in message:
                    problems[case.id] = f"HTTP {status}: {message[:500]!r}"
                elif not isinstance(case.steps[-1], Patch):
                    name = case.steps[-1]["metadata"]["name"]
                    path = f"{collection(case.steps[-1]['kind'], ns)}/{urllib.parse.quote(name, safe='')}"
                    if len(name) <= 253 and get(cp, path) is not None:
                        problems[case.id] = "rejected, yet the object exists"
            elif status != 201:
                problems[case.id] = f"not admitted: HTTP {status}: {str(body)[:500]}"
        assert not problems, json.dumps(problems, indent=1)

        # surfaced, rendered and every control
        checks: dict[str, Callable[[Snapshot], str | None]] = {}
        for case in corpus:
            exp = case.expect
            if isinstance(exp, Surfaced):
                checks[case.id] = functools.partial(surfaced_problem, exp=exp)
            elif isinstance(exp, Rendered):
                checks[case.id] = functools.partial(rendered_problem, exp=exp)
        for name in ("ctl-before", *(c["metadata"]["name"] for c in (*CONTROLS_AMONG, *CONTROLS_AFTER))):
            checks[f"control {name}"] = functools.partial(
                control_problem, name=name, audience=CONTROL_AUDIENCE, use_configmap=use_configmap
            )
        t2 = time.monotonic()
        snap, unmet = wait_all(cp, ns, checks, SETTLE_TIMEOUT)
        timings["all outcomes settled"] = time.monotonic() - t2
        assert not unmet, json.dumps(unmet, indent=1)

        # the operator is alive and healthy, no handler is stuck in a retry loop, and the first
        # control was never touched
        assert not op.future.done(), op.future.exception() if op.future.done() else None
        stats = op.call(op.operator.bus.stats)
        failures = {name: st.failures for name, st in stats.items() if st.failures}
        timings["handler failures"] = sum(failures.values())
        assert sum(failures.values()) <= 5, failures  # a stray 409 is fine; a loop is not
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        assert http_status(f"http://127.0.0.1:{port}/readyz") == 200
        after = good_fingerprint(snap)
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        assert not changed, changed

        # and it still reconciles: a valid change reaches every control that uses the config
        t3 = time.monotonic()
        status, body = cp.api_request(
            "PATCH",
            f"{GROUP_PATH}/{ns}/mcpexternalauthconfigs/ctl-auth",
            {"spec": {"tokenExchange": {"audience": "ctl-audience-2"}}},
        )
        assert status == 200, body
        controls = ("ctl-before", *(c["metadata"]["name"] for c in (*CONTROLS_AMONG, *CONTROLS_AFTER)))
        snap, unmet = wait_all(
            cp,
            ns,
            {
                n: functools.partial(
                    control_problem, name=n, audience="ctl-audience-2", use_configmap=use_configmap
                )
                for n in controls
            },
            90,
        )
        assert not unmet, unmet
        timings["valid change propagated after the flood"] = time.monotonic() - t3
        assert not op.future.done()
        wait_for(lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200, 10, "/healthz")
    timings["total"] = time.monotonic() - t0
    print(f"bad-input timings ({mode}, {len(corpus)} cases):", {k: round(v, 1) for k, v in timings.items()})
