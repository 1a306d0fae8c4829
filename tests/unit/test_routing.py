"""Which bus events a server's watch event stands for: a config hears about a server only when
the server can change what the config's subscribers do (so a cold start of N servers is not
N passes over N servers)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from thv.api.crds import MCPServer
from thv.render.names import ANNOTATION_EXTAUTH_HASH
from thv.sources.events import EXTAUTH, TOOLCONFIG, ConfigEvent, ServerEvent
from thv.sources.informer import EventType
from thv.sources.kinds import BY_NAME
from thv.sources.routing import route
from thv.sources.stores import Stores
from thvtest import manifests

SERVERS = BY_NAME["MCPServer"]


def _server(
    *, auth: str | None = "a", tools: str | None = None, hash_: str | None = "h1", **status: Any
) -> MCPServer:
    doc = manifests.mcpserver(
        "s",
        namespace="ns",
        external_auth=auth,
        tool_config=tools,
        annotations={ANNOTATION_EXTAUTH_HASH: hash_} if hash_ else None,
    )
    if status:
        doc["status"] = status
    return msgspec.convert(doc, MCPServer)


def _configs(type_: EventType, new: MCPServer, old: MCPServer | None) -> list[tuple[str, str]]:
    events = route(SERVERS, type_, "ns/s", new, old, Stores())
    assert isinstance(events[0], ServerEvent) and events[0].key == "ns/s"
    return [(e.kind, e.key) for e in events[1:] if isinstance(e, ConfigEvent)]


@pytest.mark.parametrize("type_", ["ADDED", "DELETED"])
def test_a_server_appearing_or_going_reaches_its_config(type_: EventType) -> None:
    server = _server()
    assert _configs(type_, server, None if type_ == "ADDED" else server) == [(EXTAUTH, "ns/a")]


def test_a_resynced_server_does_not_reach_its_config_which_is_resynced_itself() -> None:
    server = _server(hash_=None)
    assert _configs("RESYNC", server, server) == []


def test_a_status_or_finalizer_change_does_not_reach_the_config() -> None:
    old = _server()
    new = _server(phase="Running")
    new.metadata.finalizers = ["toolhive.stacklok.dev/finalizer"]
    assert _configs("MODIFIED", new, old) == []


def test_a_changed_reference_reaches_the_old_and_the_new_config() -> None:
    assert _configs("MODIFIED", _server(auth="b"), _server(auth="a")) == [
        (EXTAUTH, "ns/a"),
        (EXTAUTH, "ns/b"),
    ]
    assert _configs("MODIFIED", _server(tools="t"), _server()) == [(TOOLCONFIG, "ns/t")]


def test_the_hash_annotation_changing_or_missing_reaches_the_config() -> None:
    assert _configs("MODIFIED", _server(hash_=None), _server()) == [(EXTAUTH, "ns/a")]  # removed
    assert _configs("MODIFIED", _server(hash_="h2"), _server()) == [(EXTAUTH, "ns/a")]  # edited or written
    assert _configs("MODIFIED", _server(hash_=None), _server(hash_=None)) == [
        (EXTAUTH, "ns/a")
    ]  # still missing


def test_a_relisted_server_without_its_previous_object_reaches_the_config() -> None:
    assert _configs("MODIFIED", _server(), None) == [(EXTAUTH, "ns/a")]
