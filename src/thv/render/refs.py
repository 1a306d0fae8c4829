"""What the caller resolved for an MCPServer's references (the renderers never fetch anything)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.render.errors import REASON_MISSING_INPUT, RenderError


@dataclass(frozen=True, slots=True, kw_only=True)
class References:
    """Objects and data an MCPServer refers to, looked up by the caller in its namespace.

    * ``tool_config`` / ``external_auth``: the referenced configs; ``None`` only when the spec has
      no ref (a missing config is the caller's business: it must not call the renderer);
    * ``oidc_configmap_data``: ``data`` of the ConfigMap named by ``oidcConfig.configMap``;
    * ``authz_configmap_data``: ``data`` of the ConfigMap named by ``authzConfig.configMap``;
    * ``permission_profile_data``: ``data`` of the ConfigMap named by a ``configmap``-type
      ``permissionProfile`` (upstream reads the profile from the operator's own filesystem and
      fails; thv embeds it when given);
    * ``toolconfig_hash`` / ``extauth_hash``: the configs' ``status.configHash``; when ``None`` the
      value is taken from the config object's status. They become pod-template annotations.
    """

    tool_config: MCPToolConfig | None = None
    external_auth: MCPExternalAuthConfig | None = None
    oidc_configmap_data: Mapping[str, str] | None = None
    authz_configmap_data: Mapping[str, str] | None = None
    permission_profile_data: Mapping[str, str] | None = None
    toolconfig_hash: str | None = None
    extauth_hash: str | None = None

    def tool_config_for(self, server: MCPServer) -> MCPToolConfig | None:
        """The MCPToolConfig, if the spec references one (error if the caller passed none)."""
        ref = server.spec.tool_config_ref
        if ref is None:
            return None
        if self.tool_config is None:
            raise RenderError(
                REASON_MISSING_INPUT,
                f"MCPToolConfig {ref.name} not found in namespace {server.metadata.namespace}",
            )
        return self.tool_config

    def external_auth_for(self, server: MCPServer) -> MCPExternalAuthConfig | None:
        """The MCPExternalAuthConfig, if the spec references one (error if the caller passed none)."""
        ref = server.spec.external_auth_config_ref
        if ref is None:
            return None
        if self.external_auth is None:
            raise RenderError(
                REASON_MISSING_INPUT,
                f"MCPExternalAuthConfig {ref.name} not found in namespace {server.metadata.namespace}",
            )
        return self.external_auth

    def toolconfig_hash_for(self, server: MCPServer) -> str | None:
        """The hash annotation value for the referenced MCPToolConfig (``None``: no annotation)."""
        if server.spec.tool_config_ref is None:
            return None
        if self.toolconfig_hash:
            return self.toolconfig_hash
        status = self.tool_config.status if self.tool_config is not None else None
        return (status.config_hash or None) if status is not None else None

    def extauth_hash_for(self, server: MCPServer) -> str | None:
        """The hash annotation value for the referenced MCPExternalAuthConfig (``None``: none)."""
        if server.spec.external_auth_config_ref is None:
            return None
        if self.extauth_hash:
            return self.extauth_hash
        status = self.external_auth.status if self.external_auth is not None else None
        return (status.config_hash or None) if status is not None else None
