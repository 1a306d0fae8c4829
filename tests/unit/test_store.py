"""The local cache: packed and decoded stores behave alike; the resolver's memory is bounded;
unwatched reads are single-flight."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from thv.api.k8s import Deployment, Pod
from thv.api.meta import ObjectMeta, OwnerReference
from thv.render.resolve import Unresolved
from thv.render.settings import OperatorSettings
from thv.sources.store import Store
from thv.sources.stores import BY_OWNER, BY_SERVER, Stores, owner
from thv.subscribers import gather
from thv.subscribers.context import Context, Recent


def _deployment(name: str, rv: str, server: str, image: str = "img:1") -> Deployment:
    return msgspec.convert(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "resourceVersion": rv,
                "labels": {"app": name},
                "ownerReferences": [
                    msgspec.to_builtins(
                        OwnerReference(
                            api_version="toolhive.stacklok.dev/v1alpha1",
                            kind="MCPServer",
                            name=server,
                            uid="u",
                            controller=True,
                        )
                    )
                ],
            },
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"availableReplicas": 1},
        },
        Deployment,
    )


@pytest.mark.parametrize("packed", [False, True])
def test_packed_and_decoded_stores_agree(packed: bool) -> None:
    store: Store[Deployment] = Store("Deployment", packed=Deployment if packed else None)
    store.add_index(BY_OWNER, owner)
    a = _deployment("a", "1", "s1")
    assert store.upsert(a) is None
    assert store.get("ns/a") == a and "ns/a" in store and len(store) == 1
    assert store.resource_version("ns/a") == "1"
    assert store.keys_by_index(BY_OWNER, "ns/s1") == ["ns/a"]
    # the owner changes: the old index value is dropped without reading the old object back
    a2 = _deployment("a", "2", "s2", image="img:2")
    assert store.put(a2) is True
    assert store.keys_by_index(BY_OWNER, "ns/s1") == [] and store.by_index(BY_OWNER, "ns/s2") == [a2]
    assert store.resource_version("ns/a") == "2" and list(store.values()) == [a2]
    assert store.upsert(_deployment("b", "3", "s2")) is None
    assert store.keys(namespace="ns") == ["ns/a", "ns/b"] and store.keys(namespace="other") == []
    assert store.delete("ns/a") == a2 and store.delete("ns/a") is None
    assert store.keys_by_index(BY_OWNER, "ns/s2") == ["ns/b"] and store.resource_version("ns/a") is None


def test_a_packed_store_indexes_objects_added_before_the_index() -> None:
    store: Store[Deployment] = Store("Deployment", packed=Deployment)
    store.put(_deployment("a", "1", "s1"))
    store.add_index(BY_OWNER, owner)
    assert store.keys_by_index(BY_OWNER, "ns/s1") == ["ns/a"]
    store.delete("ns/a")
    assert store.keys_by_index(BY_OWNER, "ns/s1") == []


def test_owned_kinds_and_pods_are_packed_and_servers_are_not() -> None:
    stores = Stores()
    assert all(s.packed for s in stores.owned()) and stores.pods.packed
    assert not (stores.servers.packed or stores.extauths.packed or stores.toolconfigs.packed)
    pod = Pod(metadata=ObjectMeta(name="p", namespace="ns", labels={"toolhive-name": "s1"}))
    stores.pods.put(pod)
    assert stores.server_pods("ns", "s1") == [pod] and stores.pods.keys_by_index(BY_SERVER, "ns/s1") == [
        "ns/p"
    ]


def test_a_packed_object_is_smaller_than_a_decoded_one() -> None:
    store: Store[Deployment] = Store("Deployment", packed=Deployment)
    d = _deployment("a", "1", "s1")
    store.put(d)
    (_rv, body) = store._packed["ns/a"]
    assert len(body) < len(msgspec.json.encode(d))


def test_the_resolvers_memory_keeps_the_most_recently_used() -> None:
    recent = Recent(capacity=2)
    item = ((), Unresolved("r", "m"))
    recent["a"] = item
    recent["b"] = item
    assert recent.get("a") is item  # now b is the least recently used
    recent["c"] = item
    assert len(recent) == 2 and recent.get("b") is None and recent.get("a") is item
    assert recent.pop("a") is item and recent.pop("a") is None


class _Client:
    """Counts GETs of a Secret; each answers after the test lets it."""

    def __init__(self) -> None:
        self.gets = 0
        self.release = anyio.Event()

    async def get(self, res: object, name: str, ns: str | None = None) -> bytes:
        self.gets += 1
        await self.release.wait()
        return b'{"data": {"k": "dg=="}}'


@pytest.mark.anyio
async def test_concurrent_reads_of_one_secret_send_one_get() -> None:
    client = _Client()

    async def publish(_: object) -> None:
        return None

    ctx = Context(client, OperatorSettings(), publish)  # type: ignore[arg-type]
    results: list[frozenset[str] | None] = []

    async def read() -> None:
        results.append(await gather._secret_keys(ctx, "ns", "s"))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(read)
        await anyio.sleep(0.05)
        client.release.set()
    assert client.gets == 1 and results == [frozenset({"k"})] * 20
    assert ctx.inventory.inflight == {}
