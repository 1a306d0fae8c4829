"""thv's testing kit, shared by ``tests/`` and ``benchmarks/`` (not part of the product: the
wheel and image carry ``thv`` and ``bus`` only; an import contract keeps ``thv`` from importing it).

* :mod:`thvtest.manifests`: builders for the manifests tests and benchmarks apply;
* :mod:`thvtest.objects`: typed CRD objects (spec as YAML text) for the pure renderers' unit tests;
* :mod:`thvtest.modes`: one MCPServer rendered in flag mode and ConfigMap mode, and what the proxy
  container gets from each (env, runner arguments, ``runconfig.json``);
* :mod:`thvtest.harness`: the real operator in-process against a :class:`devcluster.ControlPlane`,
  as a ServiceAccount bound only to the generated ClusterRole;
* :mod:`thvtest.capture`: progress lines through pytest's output capture;
* :mod:`thvtest.peer`: upstream's ToolHive operator as a peer process (benchmarks, conformance).
"""
