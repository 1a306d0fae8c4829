"""Audit events (upstream's ``audit`` middleware): one JSON line per MCP operation.

The line is upstream's ``audit_event`` record: ``audit_id``, ``type`` (``mcp_tool_call``,
``mcp_tools_list``, … ``mcp_request``), ``logged_at``, ``outcome`` (``success``, ``denied``,
``failure``, ``error``, ``application_error``), ``component``, ``source`` (client address, user
agent), ``subjects`` (``user_id`` = ``sub``, ``user`` = ``name``/``preferred_username``/``email`` or
``anonymous``), ``target`` (endpoint, MCP method, name, type), ``metadata.extra`` (``duration_ms``,
``transport``) and — only when ``include_request_data``/``include_response_data`` and only if it
fits in ``max_data_size`` bytes — ``data.request``/``data.response``. Headers are never read, so
no token or secret can reach an event. Written to ``log_file`` (append, 0600) or stdout.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Final

import msgspec

from thv.api import runconfig as rc
from thv.proxy.config import ConfigError

__all__ = [
    "DEFAULT_COMPONENT",
    "AuditConfigError",
    "AuditRecord",
    "Auditor",
    "event_type",
    "load_audit_config",
]

DEFAULT_COMPONENT: Final = "toolhive-api"
DEFAULT_MAX_DATA_SIZE: Final = 1024

_EVENT_TYPES: Final = {
    "initialize": "mcp_initialize",
    "tools/call": "mcp_tool_call",
    "tools/list": "mcp_tools_list",
    "resources/read": "mcp_resource_read",
    "resources/list": "mcp_resources_list",
    "prompts/get": "mcp_prompt_get",
    "prompts/list": "mcp_prompts_list",
    "notifications/message": "mcp_notification",
    "ping": "mcp_ping",
    "logging/setLevel": "mcp_logging",
    "completion/complete": "mcp_completion",
    "notifications/roots/list_changed": "mcp_roots_list_changed",
}
_TARGET_TYPES: Final = {"mcp_tool_call": "tool", "mcp_resource_read": "resource", "mcp_prompt_get": "prompt"}
_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder()


class AuditConfigError(ConfigError):
    """The audit config file cannot be used (the message names it)."""


def load_audit_config(path: str) -> rc.AuditConfig:
    """``--audit-config FILE`` (JSON, upstream's snake_case keys)."""
    try:
        with open(path, "rb") as fh:
            return msgspec.json.decode(fh.read(), type=rc.AuditConfig)
    except OSError as exc:
        raise AuditConfigError(f"audit config {path}: cannot read it: {exc.strerror}") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise AuditConfigError(f"audit config {path}: {exc}") from None


def event_type(method: str) -> str:
    return _EVENT_TYPES.get(method, "mcp_request")


def outcome_for_status(status: int) -> str:
    if status in (401, 403):
        return "denied"
    if 400 <= status < 500:
        return "failure"
    if status >= 500:
        return "error"
    return "success"


@dataclass(slots=True)
class AuditRecord:
    """What the chain knows about one MCP operation when its answer is complete."""

    method: str
    resource_id: str
    endpoint: str
    outcome: str
    duration_ms: int
    client_ip: str = ""
    user_agent: str = ""
    claims: Mapping[str, object] | None = None
    request_data: bytes | None = None
    response_data: bytes | None = None
    extra: dict[str, object] = field(default_factory=dict)
    #: for requests that are not MCP messages: ``sse_connection`` or ``http_request`` (upstream)
    event_type: str = ""


class Auditor:
    def __init__(
        self, config: rc.AuditConfig, *, component: str = "", transport: str = "", out: IO[str] | None = None
    ) -> None:
        self.config = config
        self.component = config.component or component or DEFAULT_COMPONENT
        self.transport = "sse" if transport == "sse" else "http"
        self.max_data_size = config.max_data_size if config.max_data_size > 0 else DEFAULT_MAX_DATA_SIZE
        self._lock = threading.Lock()
        self._owned: IO[str] | None = None
        if out is not None:
            self.out = out
        elif config.log_file:
            fd = os.open(config.log_file, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            self.out = self._owned = os.fdopen(fd, "a", encoding="utf-8")
        else:
            self.out = sys.stdout

    @property
    def wants_request_data(self) -> bool:
        return self.config.include_request_data

    @property
    def wants_response_data(self) -> bool:
        return self.config.include_response_data

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def should_audit(self, etype: str) -> bool:
        if etype in self.config.exclude_event_types:
            return False
        return not self.config.event_types or etype in self.config.event_types

    def _data(self, raw: bytes | None) -> object | None:
        if raw is None or len(raw) > self.max_data_size:
            return None
        try:
            value: object = _decoder.decode(raw)
            return value
        except msgspec.DecodeError:
            return raw.decode("utf-8", "replace")

    def event(self, record: AuditRecord) -> dict[str, object] | None:
        """The event for ``record`` (``None`` when its type is not audited)."""
        etype = record.event_type or event_type(record.method)
        if not self.should_audit(etype):
            return None
        claims = record.claims or {}
        subjects: dict[str, str] = {}
        sub = claims.get("sub")
        if isinstance(sub, str) and sub:
            subjects["user_id"] = sub
        for key in ("name", "preferred_username", "email"):
            value = claims.get(key)
            if isinstance(value, str) and value:
                subjects["user"] = value
                break
        subjects.setdefault("user", "anonymous")
        target: dict[str, str] = {"endpoint": record.endpoint, "method": record.method}
        if record.resource_id:
            target["name"] = record.resource_id
        target["type"] = _TARGET_TYPES.get(etype, "endpoint")
        source_extra: dict[str, str] = {}
        if record.user_agent:
            source_extra["user_agent"] = record.user_agent
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        event: dict[str, object] = {
            "time": now,
            "level": "AUDIT",
            "msg": "audit_event",
            "audit_id": str(uuid.uuid4()),
            "type": etype,
            "logged_at": now,
            "outcome": record.outcome,
            "component": self.component,
            "source": {"type": "network", "value": record.client_ip, "extra": source_extra},
            "subjects": subjects,
            "target": target,
            "metadata": {
                "extra": {"duration_ms": record.duration_ms, "transport": self.transport, **record.extra}
            },
        }
        data: dict[str, object] = {}
        if self.config.include_request_data and (request := self._data(record.request_data)) is not None:
            data["request"] = request
        if self.config.include_response_data and (response := self._data(record.response_data)) is not None:
            data["response"] = response
        if data:
            event["data"] = data
        return event

    def log(self, record: AuditRecord) -> None:
        event = self.event(record)
        if event is None:
            return
        line = _encoder.encode(event).decode() + "\n"
        with self._lock:
            self.out.write(line)
            self.out.flush()
