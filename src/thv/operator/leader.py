"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go semantics).

Only the leader runs writers. The lease is renewed every ``retry_period``; a holder
that cannot renew within ``renew_deadline`` gives up leadership (the caller stops all
writers — the simplest correct reaction is to exit). A candidate takes the lease when
``renewTime + leaseDurationSeconds`` has passed by its own clock. Updates are guarded
by the Lease's resourceVersion, so two candidates cannot both win one round.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

import anyio
import msgspec

from thv.kube.client import KubeClient
from thv.kube.errors import ApiError, Conflict, NotFound
from thv.kube.resources import LEASES
from thv.observability import metrics
from thv.rbac import Need, declare

log = logging.getLogger("thv.leader")
NEEDS = declare(
    "leader-election",
    Need("coordination.k8s.io", ("leases",), ("create", "get", "list", "patch", "update", "watch")),
)
LEASE_NAME = "toolhive-operator-leader-election"


class _LeaseSpec(msgspec.Struct, rename="camel", omit_defaults=True):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int | None = None


class _LeaseMeta(msgspec.Struct, rename="camel", omit_defaults=True):
    name: str = ""
    namespace: str | None = None
    resource_version: str | None = None


class _Lease(msgspec.Struct, rename="camel", omit_defaults=True):
    api_version: str = "coordination.k8s.io/v1"
    kind: str = "Lease"
    metadata: _LeaseMeta = msgspec.field(default_factory=_LeaseMeta)
    spec: _LeaseSpec = msgspec.field(default_factory=_LeaseSpec)


_dec = msgspec.json.Decoder(_Lease)
_enc = msgspec.json.Encoder()


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(s: str | None) -> datetime | None:
    if not s:
        return None
    return datetime.strptime(
        s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z" if "." in s else "%Y-%m-%dT%H:%M:%S%z"
    )


class LeaderElector:
    """Acquire and hold one Lease; ``is_leader`` tells whether writers may run."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        *,
        name: str = LEASE_NAME,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period * 1.2:
            raise ValueError("need lease_duration > renew_deadline > 1.2 * retry_period")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.is_leader = False
        self.elected = anyio.Event()
        self.lost = anyio.Event()

    async def _try(self) -> bool:
        now = _now()
        try:
            lease = _dec.decode(await self.client.get(LEASES, self.name, self.namespace))
        except NotFound:
            body = _Lease(
                metadata=_LeaseMeta(name=self.name, namespace=self.namespace),
                spec=_LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=int(self.lease_duration),
                    acquire_time=_fmt(now),
                    renew_time=_fmt(now),
                    lease_transitions=0,
                ),
            )
            try:
                await self.client.create(LEASES, _enc.encode(body), self.namespace)
            except Conflict:
                return False
            return True
        spec = lease.spec
        renewed = _parse(spec.renew_time)
        duration = timedelta(seconds=spec.lease_duration_seconds or self.lease_duration)
        mine = spec.holder_identity == self.identity
        if not mine and spec.holder_identity and renewed is not None and renewed + duration > now:
            return False
        if not mine:
            spec.acquire_time = _fmt(now)
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(self.lease_duration)
        spec.renew_time = _fmt(now)
        try:
            await self.client.request(
                "PUT",
                LEASES.path(self.namespace, self.name),
                content=_enc.encode(lease),
                verb="update",
                resource=str(LEASES),
            )
        except Conflict:
            return False
        return True

    async def release(self) -> None:
        """Give the Lease up on a clean shutdown (as controller-runtime's ReleaseOnCancel does):
        clear the holder and shorten the duration, so a standby takes over at its next retry
        instead of waiting for the lease to expire. Best effort: failures are logged."""
        try:
            lease = _dec.decode(await self.client.get(LEASES, self.name, self.namespace))
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = ""
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = _fmt(_now())
            await self.client.request(
                "PUT",
                LEASES.path(self.namespace, self.name),
                content=_enc.encode(lease),
                verb="update",
                resource=str(LEASES),
            )
            self.is_leader = False
            metrics.LEADER.set(0)
            log.info("released the leader lease (%s)", self.identity)
        except (ApiError, NotFound, Conflict) as exc:
            log.warning("leader lease release failed: %s", exc)

    async def run(self) -> None:
        """Campaign until elected, then renew; returns when leadership is lost."""
        while not self.is_leader:
            try:
                if await self._try():
                    self.is_leader = True
                    metrics.LEADER.set(1)
                    self.elected.set()
                    log.info("became leader as %s", self.identity)
                    break
            except ApiError as exc:
                log.warning("leader election: %s", exc)
            await anyio.sleep(self.retry_period)
        last_renew = anyio.current_time()
        while True:
            await anyio.sleep(self.retry_period)
            try:
                with anyio.fail_after(self.renew_deadline):
                    ok = await self._try()
            except (ApiError, TimeoutError) as exc:
                log.warning("leader election renew: %s", exc)
                ok = False
            if ok:
                last_renew = anyio.current_time()
            elif anyio.current_time() - last_renew > self.renew_deadline:
                self.is_leader = False
                metrics.LEADER.set(0)
                self.lost.set()
                log.error("lost leadership (%s)", self.identity)
                return
