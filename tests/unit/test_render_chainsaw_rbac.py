"""Upstream's transport scenarios (stdio, sse, streamable-http; single- and multi-tenancy) assert
the proxy runner's Role, RoleBinding and ServiceAccount. Their assertions, as upstream updated
them when it dropped the invalid ``apply`` verb (#4001), are carried in
``tests/fixtures/chainsaw-transport-rbac.yaml`` with their origin, and checked here against what
thv renders for each scenario's MCPServer, in flag mode and in ConfigMap mode, the way chainsaw
checks them on a cluster (a partial match: maps by their keys, lists element by element)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from thv.api.crds import MCPServer
from thv.render.desired import render
from thv.render.rbac import PROXY_RUNNER_RULES
from thv.render.settings import OperatorSettings

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chainsaw-transport-rbac.yaml"
_DATA: dict[str, Any] = yaml.safe_load(FIXTURE.read_text())
SCENARIOS: dict[str, dict[str, Any]] = _DATA["scenarios"]
ASSERTIONS: dict[str, list[dict[str, Any]]] = _DATA["assertions"]
_JOIN = re.compile(r"^\(join\('-', \[\$testPrefix, '([^']*)'\]\)\)$")


def bind(value: Any, test_prefix: str) -> Any:
    """Evaluate the one chainsaw expression the assertions use, ``(join('-', [$testPrefix, 'x']))``."""
    if isinstance(value, dict):
        return {k: bind(v, test_prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [bind(v, test_prefix) for v in value]
    if isinstance(value, str) and (m := _JOIN.match(value)):
        return f"{test_prefix}-{m.group(1)}"
    return value


def matches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Chainsaw's assertion: every key of ``expected`` matches in ``actual``; lists have the same
    length and match element by element; scalars are equal. Returns the mismatches."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a map, got {actual!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out.extend(matches(value, actual[key], f"{path}.{key}"))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {expected!r}, got {actual!r}"]
        return [
            m
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for m in matches(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


@pytest.mark.parametrize("use_configmap", [False, True], ids=["flags", "configmap"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_upstream_transport_scenario_rbac_assertions_pass(scenario: str, use_configmap: bool) -> None:
    doc = SCENARIOS[scenario]
    server = msgspec.convert({**doc, "metadata": {**doc["metadata"], "uid": "uid-1"}}, MCPServer)
    bodies = render(server, OperatorSettings(use_configmap=use_configmap)).bodies()
    tenancy = scenario.split("/")[0]
    for assertion in ASSERTIONS[tenancy]:
        expected = bind(assertion, doc["metadata"]["name"])
        found = [
            b
            for b in bodies
            if b["kind"] == expected["kind"]
            and b["metadata"]["name"] == expected["metadata"]["name"]
            and b["metadata"]["namespace"] == expected["metadata"]["namespace"]
        ]
        assert len(found) == 1, f"{scenario}: {expected['kind']} {expected['metadata']['name']} not rendered"
        assert matches(expected, found[0]) == [], scenario


def test_the_fixture_is_v0_3_11_minus_the_apply_verb() -> None:
    """Upstream v0.3.11 asserted ``apply`` on statefulsets and services (8 verbs); thv's Role is
    upstream's later list, which the fixture carries: 7 verbs there, no ``apply`` anywhere."""
    for tenancy, docs in ASSERTIONS.items():
        role = next(d for d in docs if d["kind"] == "Role")
        rules = [(r["apiGroups"][0], r["resources"][0], tuple(r["verbs"])) for r in role["rules"]]
        assert rules == list(PROXY_RUNNER_RULES), tenancy
        assert not any("apply" in verbs for _, _, verbs in rules)
