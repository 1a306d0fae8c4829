"""The proxy Deployment ``<name>`` (upstream ``deploymentForMCPServer``, reference §4.1).

One replica of the runner image in container ``toolhive`` (index 0), with the mode's args, the
proxy env in upstream order, the RunConfig volume in ConfigMap mode only, hostPath/profile/authz
volumes, resources, port ``http``, ``/health`` probes and the platform's security context.

Metadata (upstream's fixed behaviour, ``61c3411a8``):

* Deployment labels: common labels over ``proxyDeployment.labels`` (operator wins);
  annotations: ``proxyDeployment.annotations``;
* pod template labels: common labels over ``podTemplateMetadataOverrides.labels``;
* pod template annotations: when ``podTemplateMetadataOverrides.annotations`` is set, those
  overridden by the Deployment annotations; then thv's own annotations, which always win
  (upstream lost its ``runconfig-checksum`` when template annotations were overridden):
  ``toolhive.stacklok.dev/runconfig-checksum`` (ConfigMap mode) and the referenced configs'
  ``toolhive.stacklok.dev/{toolconfig,externalauthconfig}-hash`` (both modes), so a changed
  RunConfig or config rolls the pods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from thv.api.crds import (
    AUTHZ_CONFIGMAP,
    AUTHZ_INLINE,
    EXTERNAL_AUTH_TOKEN_EXCHANGE,
    PERMISSION_PROFILE_CONFIGMAP,
    MCPExternalAuthConfig,
    MCPServer,
)
from thv.api.crds import ResourceRequirements as ResourceRequirementsSpec
from thv.api.k8s import (
    Capabilities,
    ConfigMapVolumeSource,
    Container,
    ContainerPort,
    Deployment,
    DeploymentSpec,
    HostPathVolumeSource,
    HTTPGetAction,
    KeyToPath,
    LabelSelector,
    PodSecurityContext,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SeccompProfile,
    SecurityContext,
    Volume,
    VolumeMount,
)
from thv.api.meta import EnvVar, EnvVarSource, ObjectMeta, SecretKeySelector
from thv.render import names
from thv.render.common import merge_operator_wins, object_meta, server_name, server_namespace
from thv.render.errors import REASON_INVALID_RESOURCES, RenderError
from thv.render.flags import is_thv_runner_image
from thv.render.settings import PLATFORM_OPENSHIFT, OperatorSettings

__all__ = [
    "container_security_context",
    "deployment",
    "pod_security_context",
    "proxy_env",
    "proxy_env_warnings",
    "proxy_resources",
    "proxy_volumes",
]

_UID = 1000
#: the console script thv's runner image runs (``thv-runner run [flags] IMAGE [-- ARGS...]``)
RUNNER_COMMAND: Final = "thv-runner"


def proxy_env(server: MCPServer, external_auth: MCPExternalAuthConfig | None) -> list[EnvVar]:
    """The proxy container env: :func:`_proxy_env_entries` with duplicate names merged (each at its
    first position, with its last value; see :func:`proxy_env_warnings`)."""
    return _merge_duplicates(_proxy_env_entries(server, external_auth))[0]


def _proxy_env_entries(server: MCPServer, external_auth: MCPExternalAuthConfig | None) -> list[EnvVar]:
    """The proxy container env, in upstream order (its update check compared the whole list):

    1. ``OTEL_RESOURCE_ATTRIBUTES`` when ``telemetry.openTelemetry`` is set (even if disabled);
    2. ``TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET`` from the config's ``clientSecretRef``;
    3. ``TOOLHIVE_OIDC_CLIENT_SECRET`` from inline OIDC ``clientSecretRef`` (later upstream);
    4. ``resourceOverrides.proxyDeployment.env``;
    5. ``XDG_CONFIG_HOME``, ``HOME``, ``TOOLHIVE_RUNTIME``, ``UNSTRUCTURED_LOGS`` unless present.

    Secrets appear only as ``secretKeyRef`` references, never as values.
    """
    spec = server.spec
    env: list[EnvVar] = []
    otel = spec.telemetry.open_telemetry if spec.telemetry is not None else None
    if otel is not None:
        service = otel.service_name or server_name(server)
        env.append(
            EnvVar(
                name=names.ENV_OTEL_RESOURCE_ATTRIBUTES,
                value=f"service.name={service},service.namespace={server_namespace(server)}",
            )
        )
    if (
        spec.external_auth_config_ref is not None
        and external_auth is not None
        and external_auth.spec.type == EXTERNAL_AUTH_TOKEN_EXCHANGE
        and external_auth.spec.token_exchange is not None
        and external_auth.spec.token_exchange.client_secret_ref is not None
    ):
        ref = external_auth.spec.token_exchange.client_secret_ref
        env.append(_secret_env(names.ENV_TOKEN_EXCHANGE_CLIENT_SECRET, ref.name, ref.key))
    inline_oidc = spec.oidc_config.inline if spec.oidc_config is not None else None
    if inline_oidc is not None and inline_oidc.client_secret_ref is not None:
        ref = inline_oidc.client_secret_ref
        env.append(_secret_env(names.ENV_OIDC_CLIENT_SECRET, ref.name, ref.key))
    overrides = spec.resource_overrides
    proxy = overrides.proxy_deployment if overrides is not None else None
    env.extend(EnvVar(name=e.name, value=e.value) for e in (proxy.env if proxy is not None else None) or [])
    present = {e.name for e in env}
    env.extend(EnvVar(name=k, value=v) for k, v in names.REQUIRED_PROXY_ENV if k not in present)
    return env


def _merge_duplicates(env: list[EnvVar]) -> tuple[list[EnvVar], list[str]]:
    """One entry per name, at its first position, with the last value (the API server refuses a
    container with a duplicate env name, so the apply would fail forever); and the names merged."""
    last = {e.name: e for e in env}
    seen: set[str] = set()
    merged: list[EnvVar] = []
    duplicates: list[str] = []
    for e in env:
        if e.name in seen:
            if e.name not in duplicates:
                duplicates.append(e.name)
            continue
        seen.add(e.name)
        merged.append(last[e.name])
    return merged, duplicates


def proxy_env_warnings(server: MCPServer, external_auth: MCPExternalAuthConfig | None) -> list[str]:
    """One warning per proxy env name given more than once (merged: the last value is used)."""
    _merged, duplicates = _merge_duplicates(_proxy_env_entries(server, external_auth))
    return [
        f"proxy env {name} is set more than once (resourceOverrides.proxyDeployment.env, or over thv's "
        "own); the last value is used"
        for name in duplicates
    ]


def _secret_env(name: str, secret: str, key: str) -> EnvVar:
    return EnvVar(name=name, value_from=EnvVarSource(secret_key_ref=SecretKeySelector(name=secret, key=key)))


def proxy_volumes(server: MCPServer, use_configmap: bool) -> tuple[list[Volume], list[VolumeMount]]:
    """Volumes and mounts, in upstream order: ``runconfig`` (ConfigMap mode only), each
    ``spec.volumes`` hostPath, ``permission-profile`` (configmap profiles), ``authz-config``."""
    name = server_name(server)
    volumes: list[Volume] = []
    mounts: list[VolumeMount] = []
    if use_configmap:
        volumes.append(
            Volume(
                name=names.RUNCONFIG_VOLUME,
                config_map=ConfigMapVolumeSource(name=names.runconfig_configmap_name(name)),
            )
        )
        mounts.append(
            VolumeMount(name=names.RUNCONFIG_VOLUME, mount_path=names.RUNCONFIG_MOUNT_PATH, read_only=True)
        )
    for v in server.spec.volumes or []:
        volumes.append(Volume(name=v.name, host_path=HostPathVolumeSource(path=v.host_path)))
        mounts.append(VolumeMount(name=v.name, mount_path=v.mount_path, read_only=v.read_only or None))
    profile = server.spec.permission_profile
    if profile is not None and profile.type == PERMISSION_PROFILE_CONFIGMAP:
        volumes.append(
            Volume(name=names.PERMISSION_PROFILE_VOLUME, config_map=ConfigMapVolumeSource(name=profile.name))
        )
        mounts.append(
            VolumeMount(
                name=names.PERMISSION_PROFILE_VOLUME,
                mount_path=names.PERMISSION_PROFILE_MOUNT_PATH,
                read_only=True,
            )
        )
    authz = server.spec.authz_config
    source: ConfigMapVolumeSource | None = None
    if authz is not None and authz.type == AUTHZ_CONFIGMAP and authz.config_map is not None:
        source = ConfigMapVolumeSource(
            name=authz.config_map.name,
            items=[KeyToPath(key=authz.config_map.key or names.AUTHZ_KEY, path=names.AUTHZ_KEY)],
        )
    elif authz is not None and authz.type == AUTHZ_INLINE and authz.inline is not None:
        source = ConfigMapVolumeSource(
            name=names.authz_inline_configmap_name(name),
            items=[KeyToPath(key=names.AUTHZ_KEY, path=names.AUTHZ_KEY)],
        )
    if source is not None:
        volumes.append(Volume(name=names.AUTHZ_VOLUME, config_map=source))
        mounts.append(VolumeMount(name=names.AUTHZ_VOLUME, mount_path=names.AUTHZ_MOUNT_PATH, read_only=True))
    return volumes, mounts


#: ``resource.Quantity`` syntax: signed decimal number, then a binary-SI, decimal-SI or exponent suffix
_QUANTITY: Final = re.compile(
    r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


def _check_quantities(resources: ResourceRequirementsSpec) -> None:
    """The API server refuses a Deployment with an unparsable quantity (as a 500 of its
    conversion step); say which field is wrong instead of retrying that apply forever."""
    for group, rl in (("limits", resources.limits), ("requests", resources.requests)):
        for field, value in (("cpu", rl and rl.cpu), ("memory", rl and rl.memory)):
            if value and _QUANTITY.fullmatch(value) is None:
                raise RenderError(
                    REASON_INVALID_RESOURCES,
                    f"resources.{group}.{field} {value!r} is not a Kubernetes quantity (e.g. 500m, 1, 64Mi)",
                )


def proxy_resources(server: MCPServer) -> ResourceRequirements | None:
    """``spec.resources`` on the proxy container; only the quantities that are set."""
    resources = server.spec.resources
    if resources is None:
        return None
    _check_quantities(resources)
    limits = {
        k: v
        for k, v in (
            ("cpu", resources.limits and resources.limits.cpu),
            ("memory", resources.limits and resources.limits.memory),
        )
        if v
    }
    requests = {
        k: v
        for k, v in (
            ("cpu", resources.requests and resources.requests.cpu),
            ("memory", resources.requests and resources.requests.memory),
        )
        if v
    }
    if not limits and not requests:
        return None
    return ResourceRequirements(limits=limits or None, requests=requests or None)


def pod_security_context(settings: OperatorSettings) -> PodSecurityContext:
    """runAsNonRoot + uid/gid/fsGroup 1000 (Kubernetes) or seccomp RuntimeDefault (OpenShift)."""
    if settings.platform == PLATFORM_OPENSHIFT:
        return PodSecurityContext(run_as_non_root=True, seccomp_profile=SeccompProfile(type="RuntimeDefault"))
    return PodSecurityContext(run_as_non_root=True, run_as_user=_UID, run_as_group=_UID, fs_group=_UID)


def container_security_context(settings: OperatorSettings) -> SecurityContext:
    """Unprivileged, no escalation, read-only root; uid/gid 1000 on Kubernetes, seccomp
    RuntimeDefault and ``drop: [ALL]`` on OpenShift."""
    if settings.platform == PLATFORM_OPENSHIFT:
        return SecurityContext(
            privileged=False,
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=Capabilities(drop=["ALL"]),
            seccomp_profile=SeccompProfile(type="RuntimeDefault"),
        )
    return SecurityContext(
        privileged=False,
        run_as_non_root=True,
        run_as_user=_UID,
        run_as_group=_UID,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
    )


def _probe(initial: int, period: int, timeout: int) -> Probe:
    return Probe(
        http_get=HTTPGetAction(path="/health", port=names.PROXY_PORT_NAME),
        initial_delay_seconds=initial,
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=3,
    )


def deployment(
    server: MCPServer,
    settings: OperatorSettings,
    *,
    args: list[str],
    env: list[EnvVar],
    pod_annotations: Mapping[str, str] | None = None,
) -> Deployment:
    """The proxy Deployment. ``pod_annotations`` are thv's own pod-template annotations
    (checksum, config hashes); they win over any override."""
    name = server_name(server)
    common = names.labels_for_server(name)
    overrides = server.spec.resource_overrides
    proxy = overrides.proxy_deployment if overrides is not None else None
    template_overrides = proxy.pod_template_metadata_overrides if proxy is not None else None
    dep_annotations = dict(proxy.annotations or {}) if proxy is not None else {}
    template_labels = merge_operator_wins(
        common, template_overrides.labels if template_overrides is not None else None
    )
    template_annotations: dict[str, str] = {}
    if template_overrides is not None and template_overrides.annotations is not None:
        template_annotations = merge_operator_wins(dep_annotations, template_overrides.annotations)
    template_annotations.update(pod_annotations or {})
    volumes, mounts = proxy_volumes(server, settings.use_configmap)
    container = Container(
        name=names.PROXY_CONTAINER,
        image=settings.runner_image,
        # thv's image has ENTRYPOINT ["thv"]: start its runner; any other image keeps its entrypoint
        command=[RUNNER_COMMAND] if is_thv_runner_image(settings.runner_image) else None,
        args=list(args),
        env=list(env),
        ports=[
            ContainerPort(
                name=names.PROXY_PORT_NAME, container_port=server.spec.effective_proxy_port(), protocol="TCP"
            )
        ],
        resources=proxy_resources(server),
        volume_mounts=mounts or None,
        liveness_probe=_probe(30, 10, 5),
        readiness_probe=_probe(5, 5, 3),
        security_context=container_security_context(settings),
    )
    return Deployment(
        metadata=object_meta(
            server,
            names.deployment_name(name),
            labels=merge_operator_wins(common, proxy.labels if proxy is not None else None),
            annotations=dep_annotations,
        ),
        spec=DeploymentSpec(
            replicas=1,
            selector=LabelSelector(match_labels=dict(common)),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=template_labels, annotations=template_annotations or None),
                spec=PodSpec(
                    service_account_name=names.proxy_runner_name(name),
                    containers=[container],
                    volumes=volumes or None,
                    security_context=pod_security_context(settings),
                ),
            ),
        ),
    )
