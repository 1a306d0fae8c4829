"""What the operator renders for the runner (issue 14 item 3)."""

from __future__ import annotations

from typing import Any

import pytest

from thv.render.desired import render
from thv.render.flags import is_thv_runner_image, runner_needs_runconfig
from thv.render.settings import DEFAULT_RUNNER_IMAGE, OperatorSettings
from thvtest.objects import server


def container(d: Any) -> Any:
    return d.deployment.spec.template.spec.containers[0]


@pytest.mark.parametrize("use_configmap", [False, True])
def test_default_runner_is_thvs_image_running_thv_runner(use_configmap: bool) -> None:
    d = render(server("image: img\nargs: [a, b]"), OperatorSettings(use_configmap=use_configmap))
    c = container(d)
    assert c.image == DEFAULT_RUNNER_IMAGE and DEFAULT_RUNNER_IMAGE.startswith("ghcr.io/thv-dev/thv:")
    assert c.command == ["thv-runner"]
    assert c.args[:1] == ["run"] and c.args[-3:] == ["--", "a", "b"]  # ConfigMap mode passes -- spec.args too
    assert not d.warnings


def test_upstream_runner_keeps_its_entrypoint_and_gets_warned() -> None:
    upstream = OperatorSettings(runner_image="ghcr.io/stacklok/toolhive/proxyrunner:v0.6.1")
    d = render(server("image: img"), upstream)
    assert container(d).command is None
    assert any("refuses to start without a runconfig.json" in w for w in d.warnings)
    assert not render(
        server("image: img"), OperatorSettings(runner_image=upstream.runner_image, use_configmap=True)
    ).warnings


@pytest.mark.parametrize(
    ("image", "refuses"),
    [
        ("ghcr.io/stacklok/toolhive/proxyrunner:v0.6.0", False),
        ("ghcr.io/stacklok/toolhive/proxyrunner:v0.6.1", True),
        ("ghcr.io/stacklok/toolhive/proxyrunner:0.7.0", True),
        ("ghcr.io/stacklok/toolhive/proxyrunner:v0.3.9", False),
        ("ghcr.io/stacklok/toolhive/proxyrunner:latest", True),
        ("ghcr.io/stacklok/toolhive/proxyrunner", True),
        ("ghcr.io/stacklok/toolhive/proxyrunner@sha256:" + "a" * 64, True),
        ("ghcr.io/thv-dev/thv:0.1.0", False),
    ],
)
def test_which_runner_needs_a_runconfig(image: str, refuses: bool) -> None:
    assert runner_needs_runconfig(image) is refuses


def test_duplicate_proxy_env_is_merged_last_wins_with_a_warning() -> None:
    d = render(
        server(
            "image: img\nresourceOverrides: {proxyDeployment: {env: [{name: A, value: '1'}, {name: B, value: x},"
            " {name: A, value: '2'}, {name: HOME, value: /home}]}}"
        ),
        OperatorSettings(),
    )
    env = [(e.name, e.value) for e in container(d).env]
    assert env == [
        ("A", "2"),
        ("B", "x"),
        ("HOME", "/home"),
        ("XDG_CONFIG_HOME", "/tmp"),
        ("TOOLHIVE_RUNTIME", "kubernetes"),
        ("UNSTRUCTURED_LOGS", "false"),
    ]
    assert [w for w in d.warnings if "proxy env" in w] == [
        "proxy env A is set more than once (resourceOverrides.proxyDeployment.env, or over thv's own); "
        "the last value is used"
    ]


@pytest.mark.parametrize(
    ("image", "thv"),
    [
        ("ghcr.io/thv-dev/thv:0.1.0", True),
        ("localhost/thv:b5d6d3114223", True),
        ("thv", True),
        ("registry.example:5000/team/thv@sha256:" + "a" * 64, True),
        ("localhost/toolhive-proxyrunner:v0.3.11", False),  # upstream's, built locally: its entrypoint
        ("ghcr.io/stacklok/toolhive/proxyrunner:latest", False),
        ("ghcr.io/thv-dev/thv-runner:test", False),
        ("ghcr.io/example/thv-fork:1", False),
    ],
)
def test_only_thvs_image_gets_the_thv_runner_command(image: str, thv: bool) -> None:
    assert is_thv_runner_image(image) is thv
    d = render(server("image: img"), OperatorSettings(runner_image=image))
    assert container(d).command == (["thv-runner"] if thv else None)
