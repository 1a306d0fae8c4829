"""Operator-wide settings that shape every rendered object (upstream reads them from env)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from thv import __version__

#: thv's own image (the chart's operator repository) runs ``thv-runner``, in both modes
DEFAULT_RUNNER_IMAGE: Final = f"ghcr.io/thv-dev/thv:{__version__}"
DEFAULT_PROXY_HOST: Final = "0.0.0.0"  # the proxy must listen on the pod IP
PLATFORM_KUBERNETES: Final = "kubernetes"
PLATFORM_OPENSHIFT: Final = "openshift"

Platform = Literal["kubernetes", "openshift"]

ENV_RUNNER_IMAGE: Final = "TOOLHIVE_RUNNER_IMAGE"
ENV_PROXY_HOST: Final = "TOOLHIVE_PROXY_HOST"
ENV_USE_CONFIGMAP: Final = "TOOLHIVE_USE_CONFIGMAP"
ENV_OPENSHIFT: Final = "OPERATOR_OPENSHIFT"

_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorSettings:
    """What the renderers need to know about the operator process.

    * ``runner_image``: image of the proxy container (``TOOLHIVE_RUNNER_IMAGE``);
    * ``proxy_host``: address the proxy listens on (``TOOLHIVE_PROXY_HOST``), RunConfig ``host``
      and flag ``--host``;
    * ``use_configmap``: RunConfig ConfigMap mode (``TOOLHIVE_USE_CONFIGMAP=true``) instead of
      CLI flags. Upstream hard-codes ConfigMap mode since ``71e293497``; thv honours the switch
      (default: flags, like the chart-less upstream default before that commit);
    * ``platform``: ``kubernetes`` or ``openshift`` (proxy security context). Detecting it needs
      the API (``route.openshift.io``), so the caller decides; :meth:`from_env` only honours
      ``OPERATOR_OPENSHIFT``;
    * ``service_version``: RunConfig ``telemetry_config.serviceVersion``, empty by default. It
      names the version of what the proxy pod runs, so it must not be thv's: upstream v0.3.11
      wrote the operator's own version there, so every operator upgrade changed every telemetry
      server's RunConfig and rolled its pods. Upstream itself stopped persisting it (#3789,
      v0.9.4: "resolved at runtime"): the runner fills in its own version when it is empty.
    """

    runner_image: str = DEFAULT_RUNNER_IMAGE
    proxy_host: str = DEFAULT_PROXY_HOST
    use_configmap: bool = False
    platform: Platform = PLATFORM_KUBERNETES
    service_version: str = ""

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        use_configmap: bool | None = None,
        runner_image: str | None = None,
        platform: Platform | None = None,
    ) -> OperatorSettings:
        """Settings from environment variables (default :data:`os.environ`); keyword
        arguments that are not ``None`` (e.g. from command-line flags) win over the env."""
        env = os.environ if env is None else env
        if platform is None:
            platform = PLATFORM_OPENSHIFT if env.get(ENV_OPENSHIFT) else PLATFORM_KUBERNETES
        if use_configmap is None:
            use_configmap = env.get(ENV_USE_CONFIGMAP, "").strip().lower() in _TRUE
        return cls(
            runner_image=runner_image or env.get(ENV_RUNNER_IMAGE) or DEFAULT_RUNNER_IMAGE,
            proxy_host=env.get(ENV_PROXY_HOST) or DEFAULT_PROXY_HOST,
            use_configmap=use_configmap,
            platform=platform,
        )
