"""The one error the renderers raise: a reason and a message for an MCPServer condition."""

from __future__ import annotations

from typing import Final

#: the spec lacks something every RunConfig needs (image, name)
REASON_INVALID_SPEC: Final = "InvalidSpec"
#: the MCPServer's name cannot name the objects derived from it (``mcp-<name>-proxy`` Service)
REASON_INVALID_NAME: Final = "InvalidName"
#: ``spec.transport`` is not stdio, sse or streamable-http
REASON_INVALID_TRANSPORT: Final = "InvalidTransport"
#: sse/streamable-http without ``mcpPort``/``targetPort`` (upstream RunConfig validation)
REASON_MISSING_TARGET_PORT: Final = "MissingTargetPort"
#: an ``spec.env`` key is empty or holds ``=``/CR/LF/NUL, or a value holds CR/LF/NUL
REASON_INVALID_ENV: Final = "InvalidEnvVar"
#: a ``spec.volumes`` entry does not make a ``host:mount[:ro]`` mount
REASON_INVALID_VOLUME: Final = "InvalidVolume"
#: a tool name is empty or holds a comma or a newline; a tool override sets neither field
REASON_INVALID_TOOLS: Final = "InvalidToolsFilter"
#: a ``spec.resources`` value is not a Kubernetes quantity
REASON_INVALID_RESOURCES: Final = "InvalidResources"
#: ``spec.podTemplateSpec`` is not a PodTemplateSpec (upstream ``InvalidPodTemplateSpec``)
REASON_INVALID_POD_TEMPLATE: Final = "InvalidPodTemplateSpec"
#: unknown builtin profile, or an unreadable profile ConfigMap
REASON_INVALID_PERMISSION_PROFILE: Final = "InvalidPermissionProfile"
#: ``oidcConfig`` cannot be resolved
REASON_INVALID_OIDC: Final = "InvalidOIDCConfig"
#: ``authzConfig`` cannot be resolved or fails upstream's authz validation
REASON_INVALID_AUTHZ: Final = "InvalidAuthzConfig"
#: the MCPExternalAuthConfig cannot be turned into a token-exchange configuration
REASON_INVALID_EXTERNAL_AUTH: Final = "InvalidExternalAuthConfig"
#: the caller passed no data for a reference the spec makes (a caller bug, not a user error)
REASON_MISSING_INPUT: Final = "MissingReferencedConfig"


class RenderError(Exception):
    """The MCPServer cannot be rendered. ``reason`` is a CamelCase condition reason, ``message``
    a human-readable sentence (never a secret value)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"RenderError({self.reason!r}, {self.message!r})"
