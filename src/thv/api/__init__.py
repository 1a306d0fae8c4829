"""Typed models of everything thv reads or writes.

* :mod:`thv.api.meta`: Kubernetes common types (ObjectMeta, Condition, EnvVar, …) and ResourceInfo;
* :mod:`thv.api.crds`: MCPServer, MCPToolConfig, MCPExternalAuthConfig (``toolhive.stacklok.dev/v1alpha1``);
* :mod:`thv.api.k8s`: built-in objects (Deployment, Service, ConfigMap, RBAC, Event, Lease …);
* :mod:`thv.api.runconfig`: upstream ``runconfig.json`` and middleware parameters (snake_case).
"""
