"""Read the API server's audit log (JSON lines) to count API writes, independent of thv."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class AuditUser(msgspec.Struct):
    username: str = ""


class AuditObjectRef(msgspec.Struct, rename="camel"):
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    api_group: str = ""


class AuditStatus(msgspec.Struct):
    code: int = 0


class AuditEvent(msgspec.Struct, rename="camel"):
    """One ``audit.k8s.io/v1`` Event (only the fields thv's tests use)."""

    stage: str = ""
    verb: str = ""
    user: AuditUser = msgspec.field(default_factory=AuditUser)
    object_ref: AuditObjectRef = msgspec.field(default_factory=AuditObjectRef)
    response_status: AuditStatus = msgspec.field(default_factory=AuditStatus)
    user_agent: str = ""

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS


_dec = msgspec.json.Decoder(AuditEvent)


class AuditLog:
    """Incremental reader: ``mark()`` a point, then ask what happened since."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log (a byte offset to pass as ``since``)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def events(self, since: int = 0) -> Iterator[AuditEvent]:
        """Completed requests (stage ResponseComplete) logged after ``since``."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(since)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                ev = _dec.decode(line)
                if ev.stage == "ResponseComplete":
                    yield ev

    def writes(
        self,
        since: int = 0,
        *,
        user: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        successful: bool = True,
    ) -> list[AuditEvent]:
        """Write requests after ``since``, filtered by user, resource, subresource, namespace."""
        out = []
        for ev in self.events(since):
            if not ev.is_write:
                continue
            if user is not None and ev.user.username != user:
                continue
            if resource is not None and ev.object_ref.resource != resource:
                continue
            if subresource is not None and ev.object_ref.subresource != subresource:
                continue
            if namespace is not None and ev.object_ref.namespace != namespace:
                continue
            if successful and not (200 <= ev.response_status.code < 300):
                continue
            out.append(ev)
        return out
