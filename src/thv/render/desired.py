"""``render``: one MCPServer (+ what it references, operator settings) → every object thv owns.

Pure and deterministic: equal inputs give byte-identical objects. Each object is a
server-side-apply body: ``apiVersion``, ``kind``, ``metadata`` (name, namespace, labels,
annotations, the controller ownerReference to the MCPServer) and the fields thv owns; never
``status``, ``resourceVersion``, ``uid`` or ``managedFields``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.api.k8s import ConfigMap, Deployment, Role, RoleBinding, Service, ServiceAccount
from thv.api.runconfig import RunConfig
from thv.render import names
from thv.render.authz import authz_inline_configmap
from thv.render.common import server_name
from thv.render.deployment import deployment, proxy_env, proxy_env_warnings
from thv.render.errors import REASON_INVALID_NAME, RenderError
from thv.render.flags import configmap_mode_args, flag_mode_args, flag_mode_warnings
from thv.render.podpatch import pod_template_patch_json
from thv.render.rbac import (
    mcp_service_account,
    proxy_runner_role,
    proxy_runner_role_binding,
    proxy_runner_service_account,
)
from thv.render.refs import References
from thv.render.restart import rolling_restarted_at
from thv.render.runconfig import build_run_config, runconfig_configmap, runconfig_json
from thv.render.service import service
from thv.render.settings import OperatorSettings

__all__ = ["Desired", "DesiredObject", "render"]

DesiredObject = Deployment | Service | ServiceAccount | Role | RoleBinding | ConfigMap


@dataclass(frozen=True, slots=True, kw_only=True)
class Desired:
    """Everything thv wants to exist for one MCPServer.

    ``mcp_service_account`` is ``None`` when ``spec.serviceAccount`` is set; ``authz_configmap``
    only exists for inline authorization; ``runconfig_configmap`` only in ConfigMap mode.
    ``run_config`` is built (and validated) in both modes. ``unwanted`` names thv-owned objects
    that must not exist in this rendering (``(kind, name)``: the RunConfig ConfigMap in flag mode,
    the inline authz ConfigMap without inline authz); the caller deletes them only if it owns them.
    ``warnings`` are for events/logs (e.g. the runner ignores token-exchange flags).
    """

    use_configmap: bool
    deployment: Deployment
    service: Service
    proxy_runner_service_account: ServiceAccount
    proxy_runner_role: Role
    proxy_runner_role_binding: RoleBinding
    mcp_service_account: ServiceAccount | None
    authz_configmap: ConfigMap | None
    runconfig_configmap: ConfigMap | None
    run_config: RunConfig
    args: tuple[str, ...]
    runconfig_checksum: str | None
    warnings: tuple[str, ...]
    unwanted: tuple[tuple[str, str], ...]

    def objects(self) -> list[DesiredObject]:
        """The objects in apply order (upstream's: RBAC, ConfigMaps, Deployment, Service)."""
        ordered: list[DesiredObject | None] = [
            self.proxy_runner_service_account,
            self.proxy_runner_role,
            self.proxy_runner_role_binding,
            self.mcp_service_account,
            self.authz_configmap,
            self.runconfig_configmap,
            self.deployment,
            self.service,
        ]
        return [obj for obj in ordered if obj is not None]

    def run_config_json(self) -> str:
        """``runconfig.json`` for this rendering (also in flag mode, e.g. for ``thv render``)."""
        return runconfig_json(self.run_config)

    def bodies(self) -> list[dict[str, Any]]:
        """:meth:`objects` as JSON-ready builtins (unset fields omitted)."""
        return [msgspec.to_builtins(obj) for obj in self.objects()]


def check_statefulset_name(name: str) -> None:
    """Every transport runs the MCP server in the StatefulSet ``<name>`` the proxy runner creates;
    its pods cannot be created when ``<name>-<revision hash>`` exceeds a 63-character label value,
    so a longer name is refused up front (the Service names alone allow 53)."""
    if len(name) > names.MAX_STATEFULSET_NAME:
        raise RenderError(
            REASON_INVALID_NAME,
            f"MCPServer name {name!r} cannot be used: it is {len(name)} characters long, and the "
            f"proxy runner's StatefulSet {name!r} cannot create pods for names over "
            f"{names.MAX_STATEFULSET_NAME} characters (the pods' controller-revision-hash label "
            f"'<name>-<10-character hash>' must fit in 63)",
        )


def render(
    server: MCPServer,
    settings: OperatorSettings,
    *,
    tool_config: MCPToolConfig | None = None,
    external_auth: MCPExternalAuthConfig | None = None,
    oidc_configmap_data: Mapping[str, str] | None = None,
    authz_configmap_data: Mapping[str, str] | None = None,
    permission_profile_data: Mapping[str, str] | None = None,
    toolconfig_hash: str | None = None,
    extauth_hash: str | None = None,
) -> Desired:
    """Render every object for ``server``. Raises :class:`~thv.render.errors.RenderError`.

    Pass the referenced objects/data (same namespace) the spec names: ``tool_config`` for
    ``toolConfigRef``, ``external_auth`` for ``externalAuthConfigRef``, the ``data`` of the
    ConfigMaps named by ``oidcConfig.configMap``, ``authzConfig.configMap`` and a
    ``configmap``-type ``permissionProfile``. ``toolconfig_hash``/``extauth_hash`` default to the
    configs' ``status.configHash``. A rolling restart request on the server (its
    ``restarted-at`` annotation, see :mod:`thv.render.restart`) is kept on the pod template, so
    it survives later applies (upstream dropped it on the next spec update).
    Secrets are never read: the client secret is referenced.
    """
    refs = References(
        tool_config=tool_config,
        external_auth=external_auth,
        oidc_configmap_data=oidc_configmap_data,
        authz_configmap_data=authz_configmap_data,
        permission_profile_data=permission_profile_data,
        toolconfig_hash=toolconfig_hash,
        extauth_hash=extauth_hash,
    )
    name = server_name(server)
    if server.spec.transport == "stdio":  # sse/streamable-http: the headless Service name is shorter
        check_statefulset_name(name)
    run_config = build_run_config(server, settings, refs)
    pod_patch = pod_template_patch_json(server)
    pod_annotations: dict[str, str] = {}
    unwanted: list[tuple[str, str]] = []
    runconfig_cm: ConfigMap | None = None
    checksum: str | None = None
    if settings.use_configmap:
        runconfig_cm = runconfig_configmap(server, run_config)
        checksum = (runconfig_cm.metadata.annotations or {})[names.ANNOTATION_CONTENT_CHECKSUM]
        pod_annotations[names.ANNOTATION_RUNCONFIG_CHECKSUM] = checksum
        args = configmap_mode_args(server, pod_patch)
        warnings: list[str] = []
    else:
        unwanted.append(("ConfigMap", names.runconfig_configmap_name(name)))
        args = flag_mode_args(server, settings, refs, pod_patch)
        warnings = flag_mode_warnings(server, settings, refs)
    hashes = {
        names.ANNOTATION_TOOLCONFIG_HASH: refs.toolconfig_hash_for(server),
        names.ANNOTATION_EXTAUTH_HASH: refs.extauth_hash_for(server),
    }
    pod_annotations.update({key: value for key, value in hashes.items() if value})
    if (restarted_at := rolling_restarted_at(server)) is not None:
        pod_annotations[names.ANNOTATION_RESTARTED_AT] = restarted_at
    authz_cm = authz_inline_configmap(server)
    if authz_cm is None:
        unwanted.append(("ConfigMap", names.authz_inline_configmap_name(name)))
    env = proxy_env(server, refs.external_auth_for(server))
    warnings.extend(proxy_env_warnings(server, refs.external_auth_for(server)))
    return Desired(
        use_configmap=settings.use_configmap,
        deployment=deployment(server, settings, args=args, env=env, pod_annotations=pod_annotations),
        service=service(server),
        proxy_runner_service_account=proxy_runner_service_account(server),
        proxy_runner_role=proxy_runner_role(server),
        proxy_runner_role_binding=proxy_runner_role_binding(server),
        mcp_service_account=mcp_service_account(server),
        authz_configmap=authz_cm,
        runconfig_configmap=runconfig_cm,
        run_config=run_config,
        args=tuple(args),
        runconfig_checksum=checksum,
        warnings=tuple(warnings),
        unwanted=tuple(unwanted),
    )
