"""Pure: a :class:`RunnerConfig` → the MCP server's StatefulSet and headless Service.

Upstream's Kubernetes runtime (``pkg/container/kubernetes`` at ``5bc66cc9c``), with the same
names, labels and field manager, so thv's runner and upstream's can take over from each other:

* StatefulSet ``<name>``: labels = the container labels (``toolhive``, ``toolhive-name``,
  ``toolhive-basename``, ``toolhive-transport``, ``toolhive-port``, ``toolhive-tool-type``) +
  ``app=<name>``; ``replicas: 1``, selector ``app=<name>``, ``serviceName: <name>``; the pod
  template carries the same labels, ``restartPolicy: Always`` and the platform's pod security
  context; container ``mcp``: image, args, ``stdin`` for stdio (``tty: false``), env sorted by
  name, the container security context (``privileged: true`` only with a privileged permission
  profile), the target port for HTTP transports;
* Service ``mcp-<name>-headless`` (sse/streamable-http only): ``clusterIP: None``, selector
  ``app=<name>``, port ``port-<n>`` → ``<n>``.

thv additions, each a deliberate difference: ``--volume`` entries become hostPath volumes on the
MCP pod (``vol-<i>``); the permission profile name is recorded as the pod annotation
``toolhive.stacklok.dev/permission-profile``; ``--k8s-pod-patch`` is merged into the pod template
as a **strategic merge** (containers/volumes/env/ports/volumeMounts merged by their keys, the patch
winning) and then the runner's own fields are set again (labels, the ``mcp`` container's image,
args, stdin), so a patch can add resources, secret env, volumes, tolerations, a security context,
but cannot change what the runner runs.

Objects are plain JSON (``dict``): a pod patch may carry any PodTemplateSpec field, which a typed
model would drop.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Final, Literal, TypeAlias

from thv.runner.config import HTTP_TRANSPORTS, RunnerConfig

__all__ = [
    "FIELD_MANAGER",
    "MCP_CONTAINER",
    "JSONObject",
    "container_labels",
    "headless_service",
    "headless_service_name",
    "owner_reference",
    "statefulset",
    "strategic_merge",
    "target_url",
    "workload_objects",
]

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
JSONObject: TypeAlias = "dict[str, JSONValue]"

#: upstream's field manager for the StatefulSet and Service
FIELD_MANAGER: Final = "toolhive-container-manager"
MCP_CONTAINER: Final = "mcp"
ANNOTATION_PERMISSION_PROFILE: Final = "toolhive.stacklok.dev/permission-profile"
_UID: Final = 1000
Platform = Literal["kubernetes", "openshift"]

#: strategic-merge keys of the list fields a PodTemplateSpec patch may touch
_MERGE_KEYS: Final[Mapping[str, str]] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}


def _with_owner(metadata: JSONObject, owner: JSONObject | None) -> JSONObject:
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return metadata


def _obj(mapping: Mapping[str, str]) -> JSONObject:
    return {k: v for k, v in mapping.items()}


def headless_service_name(name: str) -> str:
    return f"mcp-{name}-headless"


def container_labels(config: RunnerConfig) -> dict[str, str]:
    """Upstream's container labels + ``app=<name>``, ``toolhive=true``."""
    w = config.workload
    transport = w.transport
    if transport == "stdio" and w.proxy_mode == "streamable-http":
        transport = "streamable-http"
    return {
        "app": w.name,
        "toolhive": "true",
        "toolhive-basename": w.name,
        "toolhive-name": w.name,
        "toolhive-port": str(config.proxy.listen_port),
        "toolhive-tool-type": "mcp",
        "toolhive-transport": transport,
    }


def target_url(config: RunnerConfig, namespace: str) -> str | None:
    """Where the data plane sends requests: the headless Service for sse/streamable-http,
    ``None`` for stdio (the runner's attach bridge)."""
    w = config.workload
    if w.transport not in HTTP_TRANSPORTS:
        return None
    return f"http://{headless_service_name(w.name)}.{namespace}.svc.cluster.local:{w.target_port}"


def _pod_security_context(platform: Platform) -> JSONObject:
    if platform == "openshift":
        return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    return {"runAsNonRoot": True, "runAsUser": _UID, "runAsGroup": _UID, "fsGroup": _UID}


def _container_security_context(platform: Platform, privileged: bool) -> JSONObject:
    if platform == "openshift":
        return {
            "privileged": privileged,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": privileged,
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            "capabilities": {"drop": ["ALL"]},
        }
    return {
        "privileged": privileged,
        "runAsNonRoot": True,
        "runAsUser": _UID,
        "runAsGroup": _UID,
        "allowPrivilegeEscalation": privileged,
        "readOnlyRootFilesystem": True,
    }


def strategic_merge(base: JSONValue, patch: JSONValue, field: str = "") -> JSONValue:
    """A strategic merge patch (the subset PodTemplateSpecs need): objects merge recursively,
    ``null`` deletes a key, lists with a known merge key merge item by item (patch wins, new items
    appended in patch order), other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    merge_key = _MERGE_KEYS.get(field)
    if merge_key is not None and isinstance(base, list) and isinstance(patch, list):
        merged = [copy.deepcopy(item) for item in base]

        def key_of(item: JSONValue) -> str | None:
            if isinstance(item, dict) and merge_key in item:
                return json.dumps(item[merge_key], sort_keys=True)
            return None

        index = {k: i for i, item in enumerate(merged) if (k := key_of(item)) is not None}
        for item in patch:
            mk = key_of(item)
            if mk is not None and mk in index:
                merged[index[mk]] = strategic_merge(merged[index[mk]], item, field)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _mcp_container(config: RunnerConfig, platform: Platform) -> JSONObject:
    w = config.workload
    profile = w.permission_profile
    container: JSONObject = {
        "name": MCP_CONTAINER,
        "image": w.image,
        "args": list(w.cmd_args),
        "stdin": w.transport == "stdio",
        "tty": False,
        "env": [{"name": k, "value": v} for k, v in sorted(w.env.items())],
        "securityContext": _container_security_context(platform, bool(profile and profile.privileged)),
    }
    if w.transport in HTTP_TRANSPORTS and w.target_port > 0:
        container["ports"] = [{"containerPort": w.target_port, "protocol": "TCP"}]
    mounts: list[JSONValue] = []
    for i, volume in enumerate(w.volumes):
        parts = volume.split(":")
        mount: JSONObject = {"name": f"vol-{i}", "mountPath": parts[1]}
        if len(parts) == 3:
            mount["readOnly"] = True
        mounts.append(mount)
    if mounts:
        container["volumeMounts"] = mounts
    return container


def owner_reference(kind: str, name: str, uid: str) -> JSONObject:
    """An owner reference (not a controller, not blocking: that would need ``update`` on the
    owner's ``finalizers``)."""
    return {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid}


def statefulset(
    config: RunnerConfig,
    namespace: str,
    platform: Platform = "kubernetes",
    owner: JSONObject | None = None,
) -> JSONObject:
    """The MCP server's StatefulSet (a server-side-apply body); ``owner``: see :func:`workload_objects`."""
    w = config.workload
    labels = container_labels(config)
    volumes: list[JSONValue] = [
        {"name": f"vol-{i}", "hostPath": {"path": volume.split(":")[0]}} for i, volume in enumerate(w.volumes)
    ]
    pod_spec: JSONObject = {
        "restartPolicy": "Always",
        "securityContext": _pod_security_context(platform),
        "containers": [_mcp_container(config, platform)],
    }
    if volumes:
        pod_spec["volumes"] = volumes
    template: JSONObject = {"metadata": {"labels": dict(labels)}, "spec": pod_spec}
    if w.permission_profile_source or w.permission_profile is not None:
        name = w.permission_profile_source or "network"
        template["metadata"] = {"labels": dict(labels), "annotations": {ANNOTATION_PERMISSION_PROFILE: name}}
    if w.pod_template_patch:
        patch = json.loads(w.pod_template_patch)
        merged = strategic_merge(template, patch)
        assert isinstance(merged, dict)
        template = _reassert(merged, config, labels)
    metadata = _with_owner({"name": w.name, "namespace": namespace, "labels": _obj(labels)}, owner)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": w.name}},
            "serviceName": w.name,
            "template": template,
        },
    }


def _reassert(template: JSONObject, config: RunnerConfig, labels: Mapping[str, str]) -> JSONObject:
    """After the patch: the runner's labels win, and the ``mcp`` container runs what it must."""
    meta = template.get("metadata")
    meta = dict(meta) if isinstance(meta, dict) else {}
    pod_labels = meta.get("labels")
    meta["labels"] = {**(pod_labels if isinstance(pod_labels, dict) else {}), **labels}
    template["metadata"] = meta
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return template
    w = config.workload
    containers = spec.get("containers")
    for container in containers if isinstance(containers, list) else []:
        if isinstance(container, dict) and container.get("name") == MCP_CONTAINER:
            container["image"] = w.image
            container["args"] = list(w.cmd_args)
            container["stdin"] = w.transport == "stdio"
            container["tty"] = False
    return template


def headless_service(
    config: RunnerConfig, namespace: str, owner: JSONObject | None = None
) -> JSONObject | None:
    """``mcp-<name>-headless`` for sse/streamable-http, else ``None``."""
    w = config.workload
    if w.transport not in HTTP_TRANSPORTS or w.target_port <= 0:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _with_owner(
            {
                "name": headless_service_name(w.name),
                "namespace": namespace,
                "labels": _obj(container_labels(config)),
            },
            owner,
        ),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "selector": {"app": w.name},
            "ports": [
                {
                    "name": f"port-{w.target_port}",
                    "port": w.target_port,
                    "targetPort": w.target_port,
                    "protocol": "TCP",
                }
            ],
        },
    }


def workload_objects(
    config: RunnerConfig, namespace: str, platform: Platform = "kubernetes", owner: JSONObject | None = None
) -> list[JSONObject]:
    """Every object the runner applies, in apply order.

    ``owner`` (thv addition): in the pod, the runner's own ServiceAccount (``<name>-proxy-runner``,
    owned by the MCPServer). Upstream's objects have no owner and rely on the operator's finalizer
    only; a runner that repairs drift could re-create them between the finalizer's delete and its
    own pod going away, so the garbage collector gets the last word."""
    out = [statefulset(config, namespace, platform, owner)]
    service = headless_service(config, namespace, owner)
    if service is not None:
        out.append(service)
    return out
