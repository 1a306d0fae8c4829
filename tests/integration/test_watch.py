"""The watch layer on the real control plane: informer → Store → bus, under faults."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import msgspec
import pytest

from bus import Bus
from devcluster import ControlPlane
from thv.api.k8s import ConfigMap
from thv.kube import KubeClient
from thv.kube.resources import CONFIGMAPS
from thv.sources.informer import EventType, Informer, OnEvent
from thv.sources.store import Store

pytestmark = pytest.mark.anyio


class Changed(msgspec.Struct, frozen=True):
    key: str
    value: str


def configmap_informer(
    client: KubeClient, store: Store[ConfigMap], on_event: OnEvent[ConfigMap], namespace: str, **options: Any
) -> Informer[ConfigMap]:
    """An Informer of the test's ConfigMaps (label ``watch-test=1``) in ``namespace``."""
    return Informer(
        client,
        CONFIGMAPS,
        ConfigMap,
        store,
        on_event,
        namespace=namespace,
        label_selector="watch-test=1",
        **options,
    )


def cm(name: str, value: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"watch-test": "1"}},
            "data": {"v": value},
        }
    ).encode()


async def test_create_update_delete_arrive_in_order(admin_client: KubeClient, namespace: str) -> None:
    seen: list[tuple[EventType, str, str | None]] = []

    async def on_event(t: EventType, key: str, obj: ConfigMap, old: ConfigMap | None) -> None:
        seen.append((t, key, (obj.data or {}).get("v")))

    store: Store[ConfigMap] = Store("ConfigMap")
    inf = configmap_informer(admin_client, store, on_event, namespace)
    async with anyio.create_task_group() as tg:
        await tg.start(inf.run)
        await admin_client.create(CONFIGMAPS, cm("a", "1"), namespace)
        for v in ("2", "3"):
            await admin_client.patch(CONFIGMAPS, "a", json.dumps({"data": {"v": v}}).encode(), namespace)
        await admin_client.delete(CONFIGMAPS, "a", namespace)
        with anyio.fail_after(30):
            while len(seen) < 4:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    key = f"{namespace}/a"
    assert seen == [
        ("ADDED", key, "1"),
        ("MODIFIED", key, "2"),
        ("MODIFIED", key, "3"),
        ("DELETED", key, "3"),
    ]
    assert store.get(key) is None


async def test_burst_reaches_slow_subscriber_coalesced(admin_client: KubeClient, namespace: str) -> None:
    delivered: list[str] = []

    async def slow(ev: Changed) -> None:
        delivered.append(ev.value)
        await anyio.sleep(0.5)

    store: Store[ConfigMap] = Store("ConfigMap")
    async with Bus() as bus:
        bus.subscribe(Changed, slow, name="slow")

        async def on_event(t: EventType, key: str, obj: ConfigMap, old: ConfigMap | None) -> None:
            await bus.publish(Changed(key=key, value=(obj.data or {}).get("v", "")))

        inf = configmap_informer(admin_client, store, on_event, namespace)
        async with anyio.create_task_group() as tg:
            await tg.start(inf.run)
            await admin_client.create(CONFIGMAPS, cm("burst", "0"), namespace)
            for i in range(1, 1001):
                await admin_client.patch(
                    CONFIGMAPS, "burst", json.dumps({"data": {"v": str(i)}}).encode(), namespace
                )
            with anyio.fail_after(60):
                while not delivered or delivered[-1] != "1000":
                    await anyio.sleep(0.1)
            await anyio.sleep(1.0)
            tg.cancel_scope.cancel()
    assert delivered[-1] == "1000"
    assert len(delivered) < 50, f"{len(delivered)} deliveries for 1001 events"
    print(f"\n1001 watch events -> {len(delivered)} deliveries to a 0.5 s subscriber")


async def _fresh(admin_client: KubeClient, ns: str) -> dict[str, str]:
    body = json.loads(await admin_client.list(CONFIGMAPS, ns, label_selector="watch-test=1"))
    return {f"{ns}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in body["items"]}


@pytest.fixture
def bare_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace without waiting for its ServiceAccount (ConfigMaps do not need one; after
    repeated apiserver restarts the controller-manager may take a while to create it)."""
    name = f"t-watch-fault-{uuid.uuid4().hex[:8]}"
    status, body = control_plane.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    yield name
    with contextlib.suppress(OSError):
        control_plane.api_request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.mark.parametrize("trial", range(10))
async def test_apiserver_restart_and_compaction_lose_no_final_state(
    admin_client: KubeClient, bare_namespace: str, control_plane: ControlPlane, trial: int
) -> None:
    namespace = bare_namespace
    store: Store[ConfigMap] = Store("ConfigMap")

    async def on_event(t: EventType, key: str, obj: Any, old: Any) -> None:
        return None

    inf = configmap_informer(admin_client, store, on_event, namespace, inactivity_timeout=10)
    async with anyio.create_task_group() as tg:
        await tg.start(inf.run)

        async def churn(prefix: str, n: int) -> None:
            for i in range(n):
                try:
                    await admin_client.create(CONFIGMAPS, cm(f"{prefix}{i}", "x"), namespace)
                    if i % 3 == 0:
                        await admin_client.delete(CONFIGMAPS, f"{prefix}{i}", namespace)
                    elif i % 3 == 1:
                        await admin_client.patch(CONFIGMAPS, f"{prefix}{i}", b'{"data":{"v":"y"}}', namespace)
                except Exception:
                    await anyio.sleep(0.2)  # apiserver down: the churn just goes on

        async with anyio.create_task_group() as faults:
            faults.start_soon(churn, "a", 40)
            await anyio.sleep(0.5)
            # compact etcd and restart the apiserver while objects change: the watch gets 410
            await control_plane.aexpire_resource_versions()
        await churn("b", 10)
        expected = await _fresh(admin_client, namespace)
        with anyio.fail_after(60):
            while {k: o.metadata.resource_version for k in store.keys() if (o := store.get(k))} != expected:
                await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
    assert inf.restarts, "the fault did not restart the watch"
