"""The public surface: complete, sorted, documented, and free of Kubernetes and thv."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import bus


def test_all_is_sorted_and_complete() -> None:
    assert bus.__all__ == sorted(bus.__all__)
    public = {
        name for name, value in vars(bus).items() if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(bus.__all__) == public


def test_every_export_is_documented() -> None:
    for name in bus.__all__:
        obj = getattr(bus, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name
            assert obj.__module__.startswith("bus."), name  # defined in a private module


def test_bus_imports_neither_kubernetes_nor_thv() -> None:
    package = Path(bus.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"kr8s", "thv", "kubernetes"}, (path.name, name)
