"""Kubernetes common types shared by the CRD and built-in object models.

Every Struct here follows the wire conventions of :mod:`thv.api`: camelCase keys,
defaults omitted on encode, keyword-only construction, unknown fields ignored on decode.
Absent optional fields are ``None``; absent lists and maps are ``None`` too (never ``[]``),
so an encoded object carries exactly the fields that were set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

__all__ = [
    "CONDITION_FALSE",
    "CONDITION_TRUE",
    "CONDITION_UNKNOWN",
    "Condition",
    "ConfigMapKeySelector",
    "EnvVar",
    "EnvVarSource",
    "Int32",
    "Int64",
    "ListMeta",
    "LocalObjectReference",
    "ObjectFieldSelector",
    "ObjectMeta",
    "OwnerReference",
    "ResourceFieldSelector",
    "ResourceInfo",
    "SecretKeySelector",
    "describe",
]

#: an integer that controller-gen would publish as ``format: int32``
Int32 = Annotated[int, msgspec.Meta(extra_json_schema={"format": "int32"})]
#: an integer that controller-gen would publish as ``format: int64``
Int64 = Annotated[int, msgspec.Meta(extra_json_schema={"format": "int64"})]


def describe(text: str) -> msgspec.Meta:
    """A field description for the generated CRD schema (``Annotated[T, describe("…")]``)."""
    return msgspec.Meta(description=text)


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """Where a kind lives on the API server: enough to build a REST path or a CRD."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, else ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``, the name of the CustomResourceDefinition."""
        return f"{self.plural}.{self.group}"


class OwnerReference(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """metav1.OwnerReference."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """metav1.ObjectMeta (the fields thv reads or writes; ``managedFields`` is dropped)."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None


class ListMeta(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """metav1.ListMeta."""

    resource_version: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")
    remaining_item_count: int | None = None


CONDITION_TRUE = "True"
CONDITION_FALSE = "False"
CONDITION_UNKNOWN = "Unknown"


class Condition(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """metav1.Condition. ``reason``, ``message`` and ``lastTransitionTime`` are required on the wire."""

    type: Annotated[
        str,
        msgspec.Meta(
            max_length=316,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            description="type of condition in CamelCase or in foo.example.com/CamelCase.",
        ),
    ]
    status: Annotated[
        str,
        msgspec.Meta(
            description="status of the condition, one of True, False, Unknown.",
            extra_json_schema={"enum": [CONDITION_TRUE, CONDITION_FALSE, CONDITION_UNKNOWN]},
        ),
    ]
    last_transition_time: Annotated[
        str,
        msgspec.Meta(
            description="lastTransitionTime is the last time the condition transitioned from one status to another.",
            extra_json_schema={"format": "date-time"},
        ),
    ]
    reason: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=1024,
            pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
            description="reason contains a programmatic identifier indicating the reason for the condition's last transition.",
        ),
    ]
    message: Annotated[
        str,
        msgspec.Meta(
            max_length=32768,
            description="message is a human readable message indicating details about the transition.",
        ),
    ]
    observed_generation: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                description="observedGeneration represents the .metadata.generation that the condition was set based upon.",
                extra_json_schema={"format": "int64"},
            ),
        ]
        | None
    ) = None


class LocalObjectReference(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.LocalObjectReference."""

    name: str | None = None


class SecretKeySelector(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.SecretKeySelector."""

    key: str
    name: str | None = None
    optional: bool | None = None


class ConfigMapKeySelector(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ConfigMapKeySelector."""

    key: str
    name: str | None = None
    optional: bool | None = None


class ObjectFieldSelector(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ObjectFieldSelector."""

    field_path: str
    api_version: str | None = None


class ResourceFieldSelector(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.ResourceFieldSelector."""

    resource: str
    container_name: str | None = None
    divisor: str | None = None


class EnvVarSource(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.EnvVarSource."""

    secret_key_ref: SecretKeySelector | None = None
    config_map_key_ref: ConfigMapKeySelector | None = None
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None


class EnvVar(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """corev1.EnvVar."""

    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None
