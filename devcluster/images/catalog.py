"""The images: what each is made of (:data:`IMAGES`), and :func:`build_image`/:func:`build_all`.

* ``pause`` -- ``build/pause/linux/pause.c`` of the pinned ``k8s.io/kubernetes`` module, static,
  ``localhost/pause:3.10`` (a fixed name: containerd's ``sandbox_image``);
* ``thv`` -- the operator, ``thv proxy`` and every console script of the project's wheel on the
  Debian base; user, env, entrypoint and cmd from the repository's ``Dockerfile``;
* ``demo-mcp`` -- ``tools/images/demo-mcp/server.py``, an MCP server on the official Python SDK;
* ``coredns`` -- CoreDNS built from its Go module by ``tools/coredns/build.sh``;
* ``proxyrunner`` -- upstream ToolHive's ``thv-proxyrunner`` (``tools/toolhive/build.sh thv-proxyrunner``).

Refs are ``localhost/<repository>:<tag>``; the tag is the first 12 hex digits of the image's content
key (a change rolls the pods that use it) unless the image has a fixed tag.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from devcluster.gobuild import run_build_script
from devcluster.images.layers import (
    base_layer,
    dockerfile_config,
    pinned_requirements_of_project,
    project_wheel_layer,
    python_deps_layer,
)
from devcluster.images.oci import (
    CAP_NET_BIND_SERVICE_EP,
    DEFAULT_PATH,
    BuiltImage,
    Entry,
    ImageBuildError,
    ImageConfig,
    ImagePlan,
    ImageSpec,
    Layer,
    assemble,
    binary_layer,
    cache_root,
    content_key,
    file_digest,
    files_layer,
    locked,
    log,
    partial_path,
    publish,
    run,
)
from devcluster.paths import checkout, tool_script

# --------------------------------------------------------------------------- thv


def _plan_thv(quiet: bool) -> ImagePlan:
    project = checkout()
    roots = pinned_requirements_of_project(project)
    return ImagePlan(
        name="thv",
        repository="localhost/thv",
        layers=(base_layer(), python_deps_layer("thv-deps", roots), project_wheel_layer(project)),
        config=dockerfile_config((project / "Dockerfile").read_text()),
    )


# --------------------------------------------------------------------------- demo-mcp

DEMO_MCP_REQUIREMENTS = ("mcp", "pyjwt[crypto]")


def _plan_demo_mcp(quiet: bool) -> ImagePlan:
    server = checkout() / "tools" / "images" / "demo-mcp" / "server.py"
    return ImagePlan(
        name="demo-mcp",
        repository="localhost/demo-mcp",
        layers=(
            base_layer(),
            python_deps_layer("demo-mcp-deps", DEMO_MCP_REQUIREMENTS),
            files_layer("demo-mcp-server", {"/opt/demo-mcp/server.py": (server.read_bytes(), 0o755)}),
        ),
        config=ImageConfig(
            entrypoint=("/usr/bin/python3", "/opt/demo-mcp/server.py"),
            user="1000:1000",
            env=(DEFAULT_PATH, "PYTHONUNBUFFERED=1"),
        ),
    )


# --------------------------------------------------------------------------- pause


def kubernetes_module_dir(quiet: bool = True) -> Path:
    """The ``k8s.io/kubernetes`` module source the control plane pins (Go module cache; downloaded
    when the control plane's build has not fetched it yet)."""
    module = checkout() / "tools" / "controlplane" / "k8s"
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"}

    def source_dir() -> Path | None:
        out = run(
            ["go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"],
            "go list -m k8s.io/kubernetes",
            cwd=module,
            env=env,
        )
        lines = out.strip().splitlines()
        path = Path(lines[-1]) if lines and lines[-1].startswith("/") else None
        return (
            path if path is not None and (path / "build" / "pause" / "linux" / "pause.c").is_file() else None
        )

    path = source_dir()
    if path is None:
        log(quiet, "pause: go mod download k8s.io/kubernetes (the control plane's pin)")
        run(
            ["go", "mod", "download", "k8s.io/kubernetes"],
            "go mod download k8s.io/kubernetes",
            cwd=module,
            env=env,
        )
        path = source_dir()
    if path is None:
        raise ImageBuildError(f"no build/pause/linux/pause.c in k8s.io/kubernetes (module {module})")
    return path


PAUSE_VERSION = "3.10.2"  # the TAG of build/pause/Makefile in k8s.io/kubernetes v1.36.3
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}-thv")


def _plan_pause(quiet: bool) -> ImagePlan:
    source = kubernetes_module_dir(quiet) / "build" / "pause" / "linux" / "pause.c"
    gcc = run(["gcc", "--version"], "gcc --version (install gcc and libc6-dev)").splitlines()[0]
    key = content_key("pause", gcc, *PAUSE_CFLAGS, file_digest(source))
    binary = cache_root() / "bin" / f"pause-{key[:16]}"
    if not binary.is_file():
        binary.parent.mkdir(parents=True, exist_ok=True)
        log(quiet, f"pause: gcc {' '.join(PAUSE_CFLAGS)} {source}")
        partial = partial_path(binary)
        run(["gcc", *PAUSE_CFLAGS, "-o", partial, source], "gcc pause.c (install gcc and libc6-dev)")
        publish(partial, binary)
    return ImagePlan(
        name="pause",
        repository="localhost/pause",
        fixed_tag="3.10",  # containerd's sandbox_image names it; kept stable
        layers=(binary_layer("pause", binary, "/pause"),),
        config=ImageConfig(entrypoint=("/pause",), user="65535:65535"),
    )


# --------------------------------------------------------------------------- Go programs

NONROOT = 65532  # as the distroless/chainguard static bases (and so upstream's images) name it
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's ca-certificates on the host


def static_base_layer() -> Layer:
    """What a static Go program expects of its image (as distroless/static gives it): root and
    ``nonroot`` (65532) in passwd/group, ``nsswitch.conf``, the CA bundle, ``/tmp`` and a home."""
    if not CA_BUNDLE.is_file():
        raise ImageBuildError(f"no CA bundle at {CA_BUNDLE}: apt-get install ca-certificates")
    passwd = f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
    group = f"root:x:0:\nnonroot:x:{NONROOT}:\n"
    return files_layer(
        "static-base",
        {
            "/etc/passwd": (passwd.encode(), 0o644),
            "/etc/group": (group.encode(), 0o644),
            "/etc/nsswitch.conf": (b"hosts: files dns\n", 0o644),
            "/etc/ssl/certs/ca-certificates.crt": (CA_BUNDLE.read_bytes(), 0o644),
            "/tmp": Entry(None, 0o1777),
            "/root": Entry(None, 0o700),
            "/home/nonroot": Entry(None, 0o700, uid=NONROOT, gid=NONROOT),
        },
    )


def _go_binary(tool: str, quiet: bool, *args: str) -> tuple[Path, str]:
    """Build (cached) ``tools/<tool>/build.sh [args]``'s program; its path and the version its
    script pins."""
    script = tool_script(tool)
    pin = re.search(r"^[A-Z_]+_VERSION=(v[0-9][^ ]*)", script.read_text(), re.MULTILINE)
    if pin is None:
        raise ImageBuildError(f"{script}: no *_VERSION=v... pin")
    log(quiet, f"{tool}: {script} (cached after the first build)")
    return run_build_script(script, ImageBuildError, quiet=quiet, args=args), pin.group(1)


def _plan_coredns(quiet: bool) -> ImagePlan:
    binary, version = _go_binary("coredns", quiet)
    return ImagePlan(
        name="coredns",
        repository="localhost/coredns",
        fixed_tag=version,
        layers=(
            static_base_layer(),
            # upstream's image: nonroot, `setcap cap_net_bind_service=+ep /coredns`
            binary_layer(
                "coredns", binary, "/coredns", xattrs=(("security.capability", CAP_NET_BIND_SERVICE_EP),)
            ),
        ),
        config=ImageConfig(entrypoint=("/coredns",), user=f"{NONROOT}:{NONROOT}", env=(DEFAULT_PATH,)),
    )


def _plan_proxyrunner(quiet: bool) -> ImagePlan:
    binary, version = _go_binary("toolhive", quiet, "thv-proxyrunner")
    return ImagePlan(
        name="proxyrunner",
        repository="localhost/toolhive-proxyrunner",
        fixed_tag=version,
        # as `ko build ./cmd/thv-proxyrunner` lays it out (upstream's image)
        layers=(static_base_layer(), binary_layer("thv-proxyrunner", binary, "/ko-app/thv-proxyrunner")),
        config=ImageConfig(
            entrypoint=("/ko-app/thv-proxyrunner",),
            user=f"{NONROOT}:{NONROOT}",
            env=(
                f"{DEFAULT_PATH}:/ko-app",
                "KO_DATA_PATH=/var/run/ko",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            ),
        ),
    )


# --------------------------------------------------------------------------- registry, API

IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("pause", "the pod sandbox (pause.c of k8s.io/kubernetes, static)", _plan_pause),
        ImageSpec("thv", "the operator, thv proxy and the project's console scripts", _plan_thv),
        ImageSpec(
            "demo-mcp", "a demo MCP server (official Python SDK) that verifies bearer tokens", _plan_demo_mcp
        ),
        ImageSpec("coredns", "CoreDNS from its Go module (tools/coredns)", _plan_coredns),
        ImageSpec("proxyrunner", "upstream ToolHive's thv-proxyrunner (tools/toolhive)", _plan_proxyrunner),
    )
}


def build_image(name: str, *, quiet: bool = False) -> BuiltImage:
    """Build (or reuse from the cache) the image ``name`` (a key of :data:`IMAGES`); progress on
    stderr unless ``quiet``."""
    spec = IMAGES.get(name)
    if spec is None:
        raise ImageBuildError(f"unknown image {name!r}; known: {', '.join(IMAGES)}")
    root = cache_root()
    with locked(root, name, quiet):
        plan = spec.plan(quiet)
        return assemble(plan, quiet=quiet)


def build_all(names: Sequence[str] | None = None, *, quiet: bool = False) -> list[BuiltImage]:
    """Build every image (or ``names``), in :data:`IMAGES` order unless given."""
    t0 = time.monotonic()
    built = [build_image(name, quiet=quiet) for name in names or list(IMAGES)]
    log(quiet, f"{len(built)} image(s) ready in {time.monotonic() - t0:.1f}s")
    return built
