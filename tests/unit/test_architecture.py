"""Rules of the tree the import contracts cannot express (see ``[tool.importlinter]`` for the rest):
subscribers write only through ``thv.writers``, keep no per-operator state in module globals, and
the one table of kinds covers every store and every object the renderers produce."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from thv.render.desired import render
from thv.render.settings import OperatorSettings
from thv.sources.kinds import KINDS, OWNED
from thv.sources.stores import Stores

SUBSCRIBERS = sorted((Path(__file__).resolve().parents[2] / "src" / "thv" / "subscribers").glob("*.py"))
WRITE_METHODS = {"apply", "patch", "delete", "create", "update", "request"}
STATEFUL_CALLS = {"SimpleMemoryCache", "WeakKeyDictionary", "WeakValueDictionary", "dict", "set", "list"}


@pytest.mark.parametrize("path", SUBSCRIBERS, ids=lambda p: p.name)
def test_subscribers_write_only_through_writers(path: Path) -> None:
    """No ``<anything>.client.<write>(...)`` call in a subscriber: writes go through thv.writers."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if (
                node.func.attr in WRITE_METHODS
                and isinstance(target, ast.Attribute)
                and target.attr == "client"
            ):
                pytest.fail(f"{path.name}:{node.lineno} writes through the client directly")


@pytest.mark.parametrize("path", SUBSCRIBERS, ids=lambda p: p.name)
def test_no_per_operator_state_in_module_globals(path: Path) -> None:
    """Module-level names hold constants only; what an operator remembers lives in its
    :class:`~thv.subscribers.context.Inventory`."""
    for node in ast.parse(path.read_text()).body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Call):
            func = value.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            assert name not in STATEFUL_CALLS, f"{path.name}:{node.lineno}: module-level {name}()"
        assert not isinstance(value, ast.Dict | ast.Set | ast.List) or (
            isinstance(node, ast.Assign)
            and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
        ), f"{path.name}:{node.lineno}: a mutable module global"


def test_one_table_of_kinds() -> None:
    stores = Stores()
    assert [stores.of(kind.name).kind for kind in KINDS] == [kind.name for kind in KINDS]
    assert len({kind.store for kind in KINDS}) == len(KINDS)


def test_every_rendered_kind_is_owned_and_watched() -> None:
    import msgspec

    from thv.api.crds import MCPServer

    server = msgspec.convert(
        {
            "apiVersion": "toolhive.stacklok.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "s", "namespace": "ns", "uid": "u"},
            "spec": {
                "image": "img",
                "authzConfig": {
                    "type": "inline",
                    "inline": {"policies": ["permit(principal, action, resource);"]},
                },
            },
        },
        MCPServer,
    )
    for settings in (OperatorSettings(), OperatorSettings(use_configmap=True)):
        desired = render(server, settings)
        assert {obj.kind for obj in desired.objects()} <= set(OWNED)
        assert {kind for kind, _ in desired.unwanted} <= set(OWNED)


@pytest.mark.parametrize("path", SUBSCRIBERS, ids=lambda p: p.name)
def test_only_the_gatherer_reads_through_the_client(path: Path) -> None:
    """Subscribers read current state from the Store; the few inputs thv does not watch (a Secret's
    keys, user ConfigMaps) are read in ``gather.py`` only, behind its cache."""
    calls = [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "client"
    ]
    assert not calls or path.name == "gather.py", f"{path.name}: client calls at lines {calls}"
