"""Typed models of the built-in Kubernetes objects thv writes or reads.

They cover what a ToolHive-compatible proxy Deployment, its Service, ConfigMaps, RBAC
objects, Events and Leases contain. ``apiVersion`` and ``kind`` are filled in by default and
always encoded (default factories are never omitted), so ``msgspec.json.encode(obj)`` of a
desired object is a valid server-side apply body holding only the fields that were set.

Unknown fields are dropped on decode: never PUT an object decoded through these types.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from thv.api.meta import EnvVar, ListMeta, LocalObjectReference, ObjectMeta, ResourceInfo

__all__ = [
    "Capabilities",
    "ConfigMap",
    "ConfigMapVolumeSource",
    "Container",
    "ContainerPort",
    "Deployment",
    "DeploymentCondition",
    "DeploymentSpec",
    "DeploymentStatus",
    "EmptyDirVolumeSource",
    "Event",
    "EventSource",
    "ExecAction",
    "HTTPGetAction",
    "HostPathVolumeSource",
    "KeyToPath",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Lease",
    "LeaseSpec",
    "ObjectReference",
    "Pod",
    "PodCondition",
    "PodContainerState",
    "PodContainerStatus",
    "PodSecurityContext",
    "PodSpec",
    "PodStatus",
    "PodTemplateSpec",
    "PolicyRule",
    "Probe",
    "ResourceRequirements",
    "Role",
    "RoleBinding",
    "RoleRef",
    "SeccompProfile",
    "Secret",
    "SecretVolumeSource",
    "SecurityContext",
    "Service",
    "ServiceAccount",
    "ServicePort",
    "ServiceSpec",
    "Subject",
    "TCPSocketAction",
    "Volume",
    "VolumeMount",
]


# --- pods ------------------------------------------------------------------------------------


class ContainerPort(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ContainerPort."""

    container_port: int
    name: str | None = None
    protocol: str | None = None
    host_port: int | None = None


class VolumeMount(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.VolumeMount."""

    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None


class ResourceRequirements(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ResourceRequirements (quantities as strings)."""

    limits: dict[str, str] | None = None
    requests: dict[str, str] | None = None


class HTTPGetAction(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.HTTPGetAction (``port`` is a number or a port name)."""

    port: int | str
    path: str | None = None
    host: str | None = None
    scheme: str | None = None


class TCPSocketAction(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.TCPSocketAction."""

    port: int | str
    host: str | None = None


class ExecAction(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ExecAction."""

    command: list[str] | None = None


class Probe(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.Probe."""

    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None


class Capabilities(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.Capabilities."""

    add: list[str] | None = None
    drop: list[str] | None = None


class SeccompProfile(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.SeccompProfile."""

    type: str
    localhost_profile: str | None = None


class SecurityContext(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.SecurityContext (container level)."""

    privileged: bool | None = None
    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool | None = None
    capabilities: Capabilities | None = None
    seccomp_profile: SeccompProfile | None = None


class PodSecurityContext(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.PodSecurityContext."""

    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    fs_group: int | None = None
    seccomp_profile: SeccompProfile | None = None


class Container(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.Container."""

    name: str
    image: str | None = None
    image_pull_policy: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[EnvVar] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    volume_mounts: list[VolumeMount] | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    security_context: SecurityContext | None = None


class KeyToPath(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.KeyToPath."""

    key: str
    path: str
    mode: int | None = None


class ConfigMapVolumeSource(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ConfigMapVolumeSource."""

    name: str | None = None
    items: list[KeyToPath] | None = None
    default_mode: int | None = None
    optional: bool | None = None


class SecretVolumeSource(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.SecretVolumeSource."""

    secret_name: str | None = None
    items: list[KeyToPath] | None = None
    default_mode: int | None = None
    optional: bool | None = None


class HostPathVolumeSource(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.HostPathVolumeSource."""

    path: str
    type: str | None = None


class EmptyDirVolumeSource(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.EmptyDirVolumeSource."""

    medium: str | None = None
    size_limit: str | None = None


class Volume(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.Volume (the sources thv uses)."""

    name: str
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    empty_dir: EmptyDirVolumeSource | None = None


class PodSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.PodSpec (the fields of a proxy pod; tolerations/affinity kept raw)."""

    containers: list[Container] | None = None
    init_containers: list[Container] | None = None
    volumes: list[Volume] | None = None
    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    security_context: PodSecurityContext | None = None
    image_pull_secrets: list[LocalObjectReference] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    restart_policy: str | None = None
    termination_grace_period_seconds: int | None = None


class PodTemplateSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.PodTemplateSpec."""

    metadata: ObjectMeta | None = None
    spec: PodSpec | None = None


class LabelSelectorRequirement(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """metav1.LabelSelectorRequirement."""

    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """metav1.LabelSelector."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


# --- apps/v1 Deployment ------------------------------------------------------------------------


class DeploymentSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """appsv1.DeploymentSpec."""

    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
    strategy: dict[str, Any] | None = None
    revision_history_limit: int | None = None
    progress_deadline_seconds: int | None = None


class DeploymentCondition(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """appsv1.DeploymentCondition."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_update_time: str | None = None
    last_transition_time: str | None = None


class DeploymentStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """appsv1.DeploymentStatus."""

    observed_generation: int | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    unavailable_replicas: int | None = None
    conditions: list[DeploymentCondition] | None = None


class Deployment(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """apps/v1 Deployment."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo("apps", "v1", "Deployment", "deployments", "deployment")

    api_version: str = msgspec.field(default_factory=lambda: "apps/v1")
    kind: str = msgspec.field(default_factory=lambda: "Deployment")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: DeploymentSpec | None = None
    status: DeploymentStatus | None = None


# --- pods as thv reads them (status only: what the MCPServer status is computed from) ---------


class ContainerStateWaiting(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ContainerStateWaiting."""

    reason: str | None = None
    message: str | None = None


class ContainerStateTerminated(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ContainerStateTerminated (the fields thv reads)."""

    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None


class ContainerStateRunning(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ContainerStateRunning."""

    started_at: str | None = None


class PodContainerState(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ContainerState (the fields thv reads)."""

    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class PodContainerStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ContainerStatus (the fields thv reads)."""

    name: str
    ready: bool = False
    restart_count: int = 0
    state: PodContainerState | None = None
    last_state: PodContainerState | None = None


class PodCondition(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.PodCondition (the fields thv reads)."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class PodStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.PodStatus (the fields thv reads)."""

    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    conditions: list[PodCondition] | None = None
    init_container_statuses: list[PodContainerStatus] | None = None
    container_statuses: list[PodContainerStatus] | None = None


class Pod(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.Pod as thv watches it: metadata and status only (the spec is dropped on decode,
    which keeps the cache of every MCP pod small). Never written."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo("", "v1", "Pod", "pods", "pod")

    api_version: str = msgspec.field(default_factory=lambda: "v1")
    kind: str = msgspec.field(default_factory=lambda: "Pod")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: PodStatus | None = None


# --- core/v1 ----------------------------------------------------------------------------------


class ServicePort(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ServicePort."""

    port: int
    name: str | None = None
    protocol: str | None = None
    target_port: int | str | None = None
    node_port: int | None = None
    app_protocol: str | None = None


class ServiceSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ServiceSpec."""

    type: str | None = None
    selector: dict[str, str] | None = None
    ports: list[ServicePort] | None = None
    cluster_ip: str | None = msgspec.field(default=None, name="clusterIP")
    cluster_ips: list[str] | None = msgspec.field(default=None, name="clusterIPs")
    session_affinity: str | None = None


class Service(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """core/v1 Service."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo("", "v1", "Service", "services", "service")

    api_version: str = msgspec.field(default_factory=lambda: "v1")
    kind: str = msgspec.field(default_factory=lambda: "Service")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: ServiceSpec | None = None


class ConfigMap(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """core/v1 ConfigMap."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo("", "v1", "ConfigMap", "configmaps", "configmap")

    api_version: str = msgspec.field(default_factory=lambda: "v1")
    kind: str = msgspec.field(default_factory=lambda: "ConfigMap")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    data: dict[str, str] | None = None
    binary_data: dict[str, str] | None = None
    immutable: bool | None = None


class Secret(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """core/v1 Secret: metadata, type and the base64 ``data`` map (``stringData`` is write-only)."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo("", "v1", "Secret", "secrets", "secret")

    api_version: str = msgspec.field(default_factory=lambda: "v1")
    kind: str = msgspec.field(default_factory=lambda: "Secret")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    type: str | None = None
    data: dict[str, str] | None = None


class ServiceAccount(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """core/v1 ServiceAccount."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        "", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount"
    )

    api_version: str = msgspec.field(default_factory=lambda: "v1")
    kind: str = msgspec.field(default_factory=lambda: "ServiceAccount")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    automount_service_account_token: bool | None = None
    image_pull_secrets: list[LocalObjectReference] | None = None


class ObjectReference(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ObjectReference."""

    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class EventSource(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.EventSource."""

    component: str | None = None
    host: str | None = None


class Event(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """core/v1 Event (timestamps as RFC 3339 strings; ``eventTime`` has microseconds)."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo("", "v1", "Event", "events", "event")

    api_version: str = msgspec.field(default_factory=lambda: "v1")
    kind: str = msgspec.field(default_factory=lambda: "Event")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    involved_object: ObjectReference = msgspec.field(default_factory=ObjectReference)
    reason: str | None = None
    message: str | None = None
    type: str | None = None
    count: int | None = None
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    event_time: str | None = None
    source: EventSource | None = None
    action: str | None = None
    reporting_component: str | None = None
    reporting_instance: str | None = None


# --- rbac.authorization.k8s.io/v1 ---------------------------------------------------------------


class PolicyRule(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """rbacv1.PolicyRule."""

    verbs: list[str]
    api_groups: list[str] | None = None
    resources: list[str] | None = None
    resource_names: list[str] | None = None
    non_resource_urls: list[str] | None = msgspec.field(default=None, name="nonResourceURLs")


class Role(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """rbac.authorization.k8s.io/v1 Role."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        "rbac.authorization.k8s.io", "v1", "Role", "roles", "role"
    )

    api_version: str = msgspec.field(default_factory=lambda: "rbac.authorization.k8s.io/v1")
    kind: str = msgspec.field(default_factory=lambda: "Role")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    rules: list[PolicyRule] | None = None


class RoleRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """rbacv1.RoleRef."""

    api_group: str
    kind: str
    name: str


class Subject(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """rbacv1.Subject."""

    kind: str
    name: str
    namespace: str | None = None
    api_group: str | None = None


class RoleBinding(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """rbac.authorization.k8s.io/v1 RoleBinding."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding"
    )

    api_version: str = msgspec.field(default_factory=lambda: "rbac.authorization.k8s.io/v1")
    kind: str = msgspec.field(default_factory=lambda: "RoleBinding")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    role_ref: RoleRef | None = None
    subjects: list[Subject] | None = None


# --- coordination.k8s.io/v1 Lease ------------------------------------------------------------------


class LeaseSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """coordinationv1.LeaseSpec (times are RFC 3339 with microseconds)."""

    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int | None = None


class Lease(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """coordination.k8s.io/v1 Lease."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", "lease")

    api_version: str = msgspec.field(default_factory=lambda: "coordination.k8s.io/v1")
    kind: str = msgspec.field(default_factory=lambda: "Lease")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: LeaseSpec | None = None


class DeploymentList(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A list of Deployments."""

    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[Deployment] | None = None
