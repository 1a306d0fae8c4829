"""Layers of the Python images: the Debian bookworm base (mmdebstrap, Python 3.11), third-party
packages as wheels for that Python, the project's wheel with its console scripts, and the runtime
configuration read from the repository's ``Dockerfile``."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from devcluster.images.oci import (
    DEFAULT_PATH,
    ImageBuildError,
    ImageConfig,
    Layer,
    cache_root,
    content_key,
    locked,
    log,
    partial_path,
    publish,
    run,
    tree_digest,
    write_tree_tar,
)

# The Debian base: what the image's Python is.
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "ca-certificates", "netbase")
IMAGE_PYTHON = "3.11"
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"  # on Debian python3's sys.path
PIP_PLATFORMS = (
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_36_x86_64",
)
HATCHLING = "hatchling==1.27.0"  # builds the project's wheel (the pyproject's build backend)


# --------------------------------------------------------------------------- Debian base


DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)


def mmdebstrap_command(output: Path) -> list[str]:
    """The base rootfs: Debian bookworm, essential packages and Python 3.11, no docs."""
    return [
        "mmdebstrap",
        "--variant=essential",
        f"--include={','.join(BASE_PACKAGES)}",
        *(f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES),
        "--format=tar",
        DEBIAN_SUITE,
        str(output),
        *DEBIAN_MIRRORS,
    ]


def base_layer() -> Layer:
    """The Debian base rootfs (``mmdebstrap``, ~60 s once; the tar is kept in
    ``images/base/<key>.tar``)."""
    key = content_key("base", *mmdebstrap_command(Path("OUT")))

    def write(tar_path: Path, quiet: bool) -> None:
        cached = cache_root() / "base" / f"{key[:16]}.tar"
        with locked(cache_root(), "debian-base", quiet):  # images sharing the base wait for one mmdebstrap
            if not cached.is_file():
                cached.parent.mkdir(parents=True, exist_ok=True)
                partial = partial_path(cached)
                log(quiet, f"base: mmdebstrap {DEBIAN_SUITE} with {', '.join(BASE_PACKAGES)} (~60 s, once)")
                t0 = time.monotonic()
                run(mmdebstrap_command(partial), "mmdebstrap (the Debian base rootfs)")
                publish(partial, cached)
                log(
                    quiet,
                    f"base: {cached.stat().st_size / 1e6:.0f} MB rootfs in {time.monotonic() - t0:.0f}s",
                )
        os.link(cached, tar_path)

    return Layer("debian-base", key, write)


# --------------------------------------------------------------------------- Python layers


def _marker_env(extra: str) -> dict[str, str]:
    """PEP 508 marker values of the image's Python (Debian bookworm's CPython 3.11 on x86_64)."""
    return {
        "python_version": IMAGE_PYTHON,
        "python_full_version": f"{IMAGE_PYTHON}.2",
        "implementation_name": "cpython",
        "implementation_version": f"{IMAGE_PYTHON}.2",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "extra": extra,
    }


def pinned_requirements(roots: Sequence[str]) -> list[str]:
    """``name==version`` for ``roots`` (requirement strings) and everything they require, at the
    versions installed in this environment, with markers evaluated for the image's Python."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in roots]
    while todo:
        req, parent_extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate(_marker_env(parent_extra)):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ImageBuildError(
                f"{req.name} (required for an image) is not installed in {sys.prefix}: pip install -e '.[dev]'"
            ) from None
        pins[name] = dist.version
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            todo.extend((Requirement(r), extra) for r in dist.requires or ())
    return sorted(f"{n}=={v}" for n, v in pins.items())


def _compile(site: Path, prefix: str) -> None:
    """Byte-compile a site directory for the image (hash-based, never rechecked: the image is
    read-only and its files all carry one fixed mtime)."""
    run(
        [sys.executable, "-m", "compileall", "-q", "-j", "2", "--invalidation-mode", "unchecked-hash",
         "-s", site, "-p", prefix, site],
        "python -m compileall",
    )  # fmt: skip


def python_deps_layer(name: str, roots: Sequence[str]) -> Layer:
    """Third-party packages (wheels for the image's CPython) in the image's site directory."""
    pins = pinned_requirements(roots)
    platform_args = [f"--platform={p}" for p in PIP_PLATFORMS]
    pip_args = [
        "--only-binary=:all:",
        f"--python-version={IMAGE_PYTHON}",
        "--implementation=cp",
        *platform_args,
    ]
    key = content_key("pydeps", SITE_PACKAGES, *pip_args, *pins)

    def write(tar_path: Path, quiet: bool) -> None:
        log(quiet, f"layer {name}: pip install {len(pins)} packages for CPython {IMAGE_PYTHON}")
        with tempfile.TemporaryDirectory(prefix="thv-pydeps-", dir=cache_root()) as tmp:
            root = Path(tmp) / "root"
            site = root / SITE_PACKAGES
            run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                 "--no-warn-script-location", "--target", site, *pip_args, *pins],
                f"pip install ({name})",
            )  # fmt: skip
            shutil.rmtree(site / "bin", ignore_errors=True)  # scripts with the host's shebang
            _compile(site, "/" + SITE_PACKAGES)
            write_tree_tar(root, tar_path)

    return Layer(name, key, write)


def _hatchling() -> Path:
    """A private copy of the project's build backend (pinned), for building its wheel offline
    after the first time."""
    target = cache_root() / "tools" / HATCHLING.replace("==", "-")
    if not (target / "hatchling").is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(target)
        run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", partial,
             HATCHLING],
            f"pip install {HATCHLING}",
        )  # fmt: skip
        publish(partial, target)
    return target


WHEEL_INPUTS = ("pyproject.toml", "README.md", "src/thv", "bus")


def console_script(entry: str) -> bytes:
    """A console script for ``module:attr`` run by the image's ``/usr/bin/python3``."""
    module, _, attr = entry.partition(":")
    attr = attr.split("[")[0].strip()
    top = attr.split(".")[0]
    return (
        f"#!/usr/bin/python3\nimport sys\nfrom {module.strip()} import {top}\n"
        f"if __name__ == '__main__':\n    sys.exit({attr}())\n"
    ).encode()


def install_wheel(wheel: Path, root: Path) -> list[str]:
    """Install ``wheel`` under ``root`` as the image sees it: packages in the site directory,
    every console script in ``/usr/local/bin``; returns the scripts' names."""
    import configparser

    site = root / SITE_PACKAGES
    site.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    scripts: list[str] = []
    for entry_points in site.glob("*.dist-info/entry_points.txt"):
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(entry_points)
        if parser.has_section("console_scripts"):
            for script, entry in parser.items("console_scripts"):
                path = root / "usr" / "local" / "bin" / script
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(console_script(entry))
                path.chmod(0o755)
                scripts.append(script)
    _compile(site, "/" + SITE_PACKAGES)
    return sorted(scripts)


def project_wheel_layer(project: Path) -> Layer:
    """The project's wheel (hatchling) installed with its console scripts: the thin top layer."""
    key = content_key("wheel", HATCHLING, tree_digest(project, WHEEL_INPUTS))

    def write(tar_path: Path, quiet: bool) -> None:
        with tempfile.TemporaryDirectory(prefix="thv-wheel-", dir=cache_root()) as tmp:
            dist = Path(tmp) / "dist"
            dist.mkdir()
            run(
                [sys.executable, "-c", "import sys; from hatchling.build import build_wheel; build_wheel(sys.argv[1])",
                 dist],
                "hatchling build_wheel (the project's wheel)",
                cwd=project,
                env={**os.environ, "PYTHONPATH": str(_hatchling())},
            )  # fmt: skip
            (wheel,) = dist.glob("*.whl")
            root = Path(tmp) / "root"
            scripts = install_wheel(wheel, root)
            log(quiet, f"layer thv-wheel: {wheel.name}, console scripts {', '.join(scripts)}")
            write_tree_tar(root, tar_path)

    return Layer("thv-wheel", key, write)


# --------------------------------------------------------------------------- thv (Dockerfile)


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerfile_config(text: str) -> ImageConfig:
    """The runtime configuration of a Dockerfile's final stage: ``USER``, ``ENV``, ``WORKDIR``,
    and ``ENTRYPOINT``/``CMD`` in exec (JSON) form. The thv image takes these from the
    repository's ``Dockerfile``, so the two cannot drift apart."""
    final: list[tuple[str, str]] = []
    for instruction in _dockerfile_instructions(text):
        final = [] if instruction[0] == "FROM" else [*final, instruction]
    env: dict[str, str] = {}
    user = workdir = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    for word, args in final:
        if word == "USER":
            user = args
        elif word == "WORKDIR":
            workdir = args
        elif word == "ENV":
            pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)', args)
            if not pairs:
                raise ImageBuildError(f"Dockerfile: ENV {args!r}: use the KEY=VALUE form")
            env.update((k, json.loads(v) if v.startswith('"') else v) for k, v in pairs)
        elif word in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(args)
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ImageBuildError(f"Dockerfile: {word} {args}: use the exec (JSON array) form")
            if word == "ENTRYPOINT":
                entrypoint = tuple(value)
            else:
                cmd = tuple(value)
    if not entrypoint:
        raise ImageBuildError("Dockerfile: the final stage has no ENTRYPOINT")
    env_list = [f"{k}={v}" for k, v in env.items()]
    if "PATH" not in env:
        env_list.insert(0, DEFAULT_PATH)
    return ImageConfig(entrypoint=entrypoint, cmd=cmd, user=user, env=tuple(env_list), workdir=workdir)


def pinned_requirements_of_project(project: Path) -> list[str]:
    """The ``[project].dependencies`` of the checkout's ``pyproject.toml``."""
    import tomllib

    data = tomllib.loads((project / "pyproject.toml").read_text())
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list):
        raise ImageBuildError("pyproject.toml: [project].dependencies is not a list")
    return [str(d) for d in deps]
