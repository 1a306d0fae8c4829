"""Read the API server's audit log (JSON lines) to count API requests, independent of thv.

The control plane's policy logs every request except get/list/watch at level Metadata, stage
``ResponseComplete`` only (``RequestReceived`` omitted). Typical use::

    audit = control_plane.audit
    mark = audit.mark()
    ...  # let the operator reconcile
    writes = audit.writes(mark, user="system:serviceaccount:ns:thv", resource="configmaps")
    assert len(writes) == 1, [w.describe() for w in writes]

``mark()`` is a byte offset at a line boundary; ``events``/``writes`` read from there. The log
backend is blocking (an event is on disk before the response is sent), but poll briefly
anyway when asserting on another process's requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class AuditUser(msgspec.Struct, kw_only=True):
    username: str = ""
    groups: list[str] = msgspec.field(default_factory=list)


class AuditObjectRef(msgspec.Struct, rename="camel", kw_only=True):
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    api_group: str = ""
    api_version: str = ""


class AuditStatus(msgspec.Struct, kw_only=True):
    code: int = 0
    reason: str = ""
    message: str = ""


class AuditEvent(msgspec.Struct, rename="camel", kw_only=True):
    """One ``audit.k8s.io/v1`` Event (the fields tests use; unknown fields are dropped)."""

    stage: str = ""
    verb: str = ""
    audit_id: str = msgspec.field(default="", name="auditID")
    request_uri: str = msgspec.field(default="", name="requestURI")
    user: AuditUser = msgspec.field(default_factory=AuditUser)
    user_agent: str = ""
    source_ips: list[str] = msgspec.field(default_factory=list, name="sourceIPs")
    object_ref: AuditObjectRef = msgspec.field(default_factory=AuditObjectRef)
    response_status: AuditStatus = msgspec.field(default_factory=AuditStatus)
    stage_timestamp: str = ""

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @property
    def succeeded(self) -> bool:
        return 200 <= self.response_status.code < 300

    def describe(self) -> str:
        """A one-line summary for assertion messages."""
        ref = self.object_ref
        what = "/".join(x for x in (ref.resource, ref.subresource) if x)
        where = "/".join(x for x in (ref.namespace, ref.name) if x)
        return f"{self.user.username} {self.verb} {what} {where} -> {self.response_status.code}"


_decoder = msgspec.json.Decoder(AuditEvent)


class AuditLog:
    """Incremental, stateless reader of one audit log file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log (at a line boundary), to pass as ``since``."""
        try:
            with self.path.open("rb") as f:
                end = f.seek(0, 2)
                # step back over a line that is still being written
                pos = end
                while pos > 0:
                    step = min(4096, pos)
                    f.seek(pos - step)
                    chunk = f.read(step)
                    nl = chunk.rfind(b"\n")
                    if nl >= 0:
                        return pos - step + nl + 1
                    pos -= step
                return 0
        except FileNotFoundError:
            return 0

    def _read(self, since: int) -> Iterator[AuditEvent]:
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(since)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # still being written
                try:
                    yield _decoder.decode(line)
                except msgspec.DecodeError:
                    continue

    def events(
        self,
        since: int = 0,
        *,
        user: str | None = None,
        verb: str | Iterable[str] | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        api_group: str | None = None,
        stage: str | None = "ResponseComplete",
    ) -> list[AuditEvent]:
        """Events logged after ``since`` that match every given filter (``None`` = any).

        ``subresource=""`` selects requests on the object itself (not ``status`` etc.).
        ``stage=None`` includes ``ResponseStarted`` (watches) and ``Panic`` events too."""
        verbs = {verb} if isinstance(verb, str) else set(verb) if verb is not None else None
        out = []
        for ev in self._read(since):
            ref = ev.object_ref
            if (
                (stage is None or ev.stage == stage)
                and (user is None or ev.user.username == user)
                and (verbs is None or ev.verb in verbs)
                and (resource is None or ref.resource == resource)
                and (subresource is None or ref.subresource == subresource)
                and (namespace is None or ref.namespace == namespace)
                and (name is None or ref.name == name)
                and (api_group is None or ref.api_group == api_group)
            ):
                out.append(ev)
        return out

    def writes(
        self,
        since: int = 0,
        *,
        user: str | None = None,
        verb: str | Iterable[str] | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        api_group: str | None = None,
        successful: bool | None = True,
    ) -> list[AuditEvent]:
        """Completed write requests (create/update/patch/delete/deletecollection) after
        ``since``; ``successful=True`` keeps 2xx only, ``False`` failures only (e.g. 409
        conflicts), ``None`` both."""
        matching = self.events(
            since,
            user=user,
            verb=WRITE_VERBS if verb is None else verb,
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
            api_group=api_group,
        )
        return [ev for ev in matching if ev.is_write and (successful is None or ev.succeeded == successful)]


__all__ = ["WRITE_VERBS", "AuditEvent", "AuditLog", "AuditObjectRef", "AuditStatus", "AuditUser"]
