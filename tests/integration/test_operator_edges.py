"""Edge paths on the real control plane: upstream runner warning, missing Secret key,
and finalizer edits that meet a concurrent writer (409/422, retried from fresh state)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from test_operator import SECRET, G, create, extauth, get, server

from devcluster import ControlPlane
from thv.kube import KubeClient
from thv.kube.resources import MCPEXTERNALAUTHCONFIGS
from thv.writers.finalizers import add_finalizer, remove_finalizer
from thvtest.harness import run_operator, wait_for


def test_upstream_runner_in_flag_mode_is_loud(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    cp, ns = control_plane, namespace
    upstream = "ghcr.io/stacklok/toolhive/proxyrunner:v0.3.9"
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=False, runner_image=upstream):
        create(cp, f"/api/v1/namespaces/{ns}/secrets", SECRET)
        create(cp, f"{G}/{ns}/mcpexternalauthconfigs", extauth("test-external-auth"))
        create(cp, f"{G}/{ns}/mcpservers", server("loud"))

        def warned() -> Any:
            s = get(cp, f"{G}/{ns}/mcpservers/loud")
            conds = {c["type"]: c for c in ((s or {}).get("status") or {}).get("conditions", [])}
            return conds.get("TokenExchangeEffective", {}).get("status") == "False" and conds

        conds = wait_for(warned, 60, "TokenExchangeEffective=False")
        assert conds["TokenExchangeEffective"]["reason"] == "RunnerIgnoresFlags"
        # the status writer writes the condition, then posts the Event
        wait_for(
            lambda: any(
                e["reason"] == "RunnerIgnoresFlags" and e["type"] == "Warning"
                for e in cp.api_request("GET", f"/api/v1/namespaces/{ns}/events")[1]["items"]
            ),
            30,
            "RunnerIgnoresFlags Warning Event",
        )


def test_missing_secret_key_fails_then_heals(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    cp, ns = control_plane, namespace
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        create(
            cp,
            f"/api/v1/namespaces/{ns}/secrets",
            {"metadata": {"name": "oauth-test-secret"}, "stringData": {"wrong-key": "x"}},
        )
        create(cp, f"{G}/{ns}/mcpexternalauthconfigs", extauth("test-external-auth"))
        create(cp, f"{G}/{ns}/mcpservers", server("needs-key"))
        path = f"{G}/{ns}/mcpservers/needs-key"
        s = wait_for(
            lambda: (x := get(cp, path)) and (x.get("status") or {}).get("phase") == "Failed" and x,
            60,
            "Failed",
        )
        ready = next(c for c in s["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "ClientSecretKeyMissing" and "client-secret" in ready["message"]
        assert "x" not in ready["message"].split()  # no secret value in status
        assert get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/needs-key") is None
        cp.api_request(
            "PATCH",
            f"/api/v1/namespaces/{ns}/secrets/oauth-test-secret",
            {"stringData": {"client-secret": "now-here"}},
        )
        wait_for(
            lambda: (x := get(cp, path)) and (x.get("status") or {}).get("phase") == "Running", 90, "heals"
        )


class RacingClient(KubeClient):
    """A real client whose first JSON patch is preceded by a real concurrent write."""

    def __init__(self, api: Any, race: Any) -> None:
        super().__init__(api)
        self.race = race
        self.raced = 0

    async def patch(self, *args: Any, **kwargs: Any) -> bytes:
        if kwargs.get("patch_type") == "json" and self.raced == 0:
            self.raced += 1
            await self.race()
        return await super().patch(*args, **kwargs)


@pytest.mark.anyio
async def test_finalizer_edit_retries_from_fresh_state_on_conflict(
    admin_client: KubeClient, namespace: str, operator_kubeconfig_path: Path, control_plane: ControlPlane
) -> None:
    ns = namespace
    await admin_client.create(MCPEXTERNALAUTHCONFIGS, json.dumps(extauth("racy")).encode(), ns)

    async def concurrent_writer() -> None:  # someone else adds a label and another finalizer meanwhile
        patch = {"metadata": {"labels": {"touched": "yes"}, "finalizers": ["example.com/other"]}}
        await admin_client.patch(MCPEXTERNALAUTHCONFIGS, "racy", json.dumps(patch).encode(), ns)

    racing = RacingClient(admin_client.api, concurrent_writer)
    fin = "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer"
    assert await add_finalizer(racing, MCPEXTERNALAUTHCONFIGS, "racy", ns, fin)
    assert racing.raced == 1
    obj = json.loads(await admin_client.get(MCPEXTERNALAUTHCONFIGS, "racy", ns))
    assert obj["metadata"]["finalizers"] == ["example.com/other", fin]  # nothing lost
    racing.raced = 0

    async def remove_other() -> None:
        await admin_client.patch(
            MCPEXTERNALAUTHCONFIGS,
            "racy",
            b'[{"op":"remove","path":"/metadata/finalizers/0"}]',
            ns,
            patch_type="json",
        )

    racing.race = remove_other
    racing.raced = 0
    assert await remove_finalizer(racing, MCPEXTERNALAUTHCONFIGS, "racy", ns, fin)
    obj = json.loads(await admin_client.get(MCPEXTERNALAUTHCONFIGS, "racy", ns))
    assert not obj["metadata"].get("finalizers")
    await anyio.lowlevel.checkpoint()
