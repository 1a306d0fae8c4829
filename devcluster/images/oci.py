"""The generic part of the image builder: content keys, reproducible layer tars, OCI layouts
assembled with umoci (cached per layer chain), OCI archives named by their ref, and the import into
containerd. What the images are is in :mod:`devcluster.images.catalog`.

An image is a stack of :class:`Layer` s. A layer is described by its *key* (a hash of everything
that determines its content) and a function that writes it as an uncompressed tar. Layers are
added with ``umoci raw add-layer`` to an OCI layout, and the layout after each layer is kept in
``${THV_CACHE_DIR:-~/.cache/thv}/images/layouts/<chain key>``: images that share a prefix (the
Debian base, the third-party Python packages) share its compressed blobs, and a change in the top
layer rebuilds only that layer. ``umoci config`` sets the runtime configuration; the index names
the manifest with the image's ref (``org.opencontainers.image.ref.name``, which
``ctr images import`` keeps as the image name when it is a full reference); the layout is packed
as one archive, ``images/out/<name>-<key12>.tar``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Bump when the builder changes in a way that changes images (every key hashes it).
BUILD_REV = "1"
# File times inside layers (reproducible layers: equal inputs give equal tars).
LAYER_MTIME = 0
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
PINNED_LABEL = "io.cri-containerd.pinned=pinned"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageBuildError(RuntimeError):
    """An image could not be built or imported; the message names the step."""


# --------------------------------------------------------------------------- progress, cache


def log(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"[images {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """``${THV_CACHE_DIR:-~/.cache/thv}/images`` (as ``tools/lib/cached-build.sh``)."""
    base = os.environ.get("THV_CACHE_DIR") or os.path.expanduser("~/.cache/thv")
    return Path(base) / "images"


def content_key(*parts: str | bytes) -> str:
    """sha256 over length-prefixed parts (so ``("ab", "c")`` and ``("a", "bc")`` differ)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def tree_digest(root: Path, paths: Sequence[str]) -> str:
    """Hash of the files under ``paths`` (relative to ``root``): names, modes and contents;
    bytecode caches ignored."""
    h = hashlib.sha256()
    for rel in paths:
        top = root / rel
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            h.update(f"{f.relative_to(root)}\0{f.stat().st_mode & 0o111:o}\0".encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def locked(root: Path, name: str, quiet: bool) -> Iterator[None]:
    """One builder at a time per image (another process building it waits, then reuses what it
    built); different images build concurrently, sharing layers safely (:func:`publish`)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".build-{name}.lock"
    with path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(quiet, f"{name}: another process is building it; waiting (lock {path})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def partial_path(final: Path) -> Path:
    """A private name beside ``final`` to build it under (unique per process and call)."""
    return final.with_name(f"{final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def publish(partial: Path, final: Path) -> None:
    """Move a finished file or directory into place, atomically. Everything cached is named by
    its content, so when a concurrent builder published the same directory first, ours is dropped."""
    if not partial.is_dir():
        os.replace(partial, final)
        return
    try:
        partial.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(partial, ignore_errors=True)


STALE_PARTIAL_SECONDS = 6 * 3600


def sweep_partials(directory: Path) -> None:
    """Remove what builders killed mid-way left (``*.partial-*`` older than six hours)."""
    if not directory.is_dir():
        return
    now = time.time()
    for path in directory.glob("*.partial-*"):
        with contextlib.suppress(OSError):
            if now - path.lstat().st_mtime > STALE_PARTIAL_SECONDS:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()


def run(cmd: Sequence[str | os.PathLike[str]], what: str, **kwargs: object) -> str:
    """Run a command; on failure raise :class:`ImageBuildError` naming ``what`` with the tail of
    its output."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if proc.returncode != 0:
        tail = "\n".join(str(proc.stdout).strip().splitlines()[-15:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return str(proc.stdout)


# --------------------------------------------------------------------------- image model


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an OCI image config."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    user: str = ""
    env: tuple[str, ...] = ()
    workdir: str = ""

    def canonical(self) -> str:
        return json.dumps(
            {
                "entrypoint": list(self.entrypoint),
                "cmd": list(self.cmd),
                "user": self.user,
                "env": list(self.env),
                "workdir": self.workdir,
            },
            sort_keys=True,
        )

    def umoci_args(self) -> list[str]:
        """``umoci config`` flags that set exactly this configuration."""
        args = ["--clear=config.entrypoint", "--clear=config.cmd", "--clear=config.env"]
        args += [f"--config.entrypoint={e}" for e in self.entrypoint]
        args += [f"--config.cmd={c}" for c in self.cmd]
        args += [f"--config.env={e}" for e in self.env]
        if self.user:
            args.append(f"--config.user={self.user}")
        if self.workdir:
            args.append(f"--config.workingdir={self.workdir}")
        return args


@dataclass(frozen=True)
class Layer:
    """One layer: ``key`` determines its content; ``write(tar_path, quiet)`` produces it as an
    uncompressed tar."""

    name: str
    key: str
    write: Callable[[Path, bool], None] = field(compare=False)


@dataclass(frozen=True)
class ImagePlan:
    """What an image is made of, all inputs resolved (cheap to compute once the Go binaries and
    the base are cached)."""

    name: str
    repository: str
    layers: tuple[Layer, ...]
    config: ImageConfig
    fixed_tag: str | None = None

    @property
    def key(self) -> str:
        return content_key(
            BUILD_REV, self.repository, self.config.canonical(), *(la.key for la in self.layers)
        )

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.fixed_tag or self.key[:12]}"


@dataclass(frozen=True)
class BuiltImage:
    """A built image: ``ref`` (the name containerd gives it on import) and its OCI ``archive``."""

    name: str
    ref: str
    archive: Path


@dataclass(frozen=True)
class ImageSpec:
    """An image the builder knows: ``plan(quiet)`` resolves its inputs (building Go binaries or
    the base rootfs first when they are not cached)."""

    name: str
    description: str
    plan: Callable[[bool], ImagePlan] = field(compare=False)


# --------------------------------------------------------------------------- layers from files


def _tar_filter(uid: int, gid: int) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        info.mtime = LAYER_MTIME
        return info

    return reset


def write_tree_tar(staging: Path, tar_path: Path, *, uid: int = 0, gid: int = 0) -> None:
    """``staging``'s contents as a reproducible tar (sorted, owner ``uid:gid``, fixed mtimes),
    paths relative to ``/`` of the image. Parent directories are included as they are in
    ``staging``."""
    reset = _tar_filter(uid, gid)
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(staging.rglob("*")):
            rel = path.relative_to(staging).as_posix()
            tar.add(path, arcname=rel, recursive=False, filter=reset)


@dataclass(frozen=True)
class Entry:
    """A file (``content``) or, with ``content=None``, a directory, in a :func:`files_layer`."""

    content: bytes | None
    mode: int
    uid: int = 0
    gid: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def key_parts(self) -> list[str]:
        digest = "dir" if self.content is None else hashlib.sha256(self.content).hexdigest()
        parts = [f"{self.mode:o}", digest]
        if (self.uid, self.gid, self.xattrs) != (0, 0, ()):
            parts += [f"{self.uid}:{self.gid}", *(f"{k}={v.hex()}" for k, v in self.xattrs)]
        return parts


def files_layer(name: str, files: Mapping[str, tuple[bytes, int] | Entry], *, extra_key: str = "") -> Layer:
    """A layer of in-memory files: ``{"/path": (content, mode)}`` or ``{"/path": Entry(...)}``
    (owners, directories, extended attributes such as file capabilities); missing parent
    directories are added as root's, mode 0755."""
    entries = {
        path.strip("/"): spec if isinstance(spec, Entry) else Entry(spec[0], spec[1])
        for path, spec in files.items()
    }

    def write(tar_path: Path, _quiet: bool) -> None:
        reset = _tar_filter(0, 0)
        dirs: set[str] = set()
        for path in entries:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            for d in sorted(dirs - set(entries)):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(reset(info))
            for path in sorted(entries, key=lambda p: (entries[p].content is not None, p)):
                entry = entries[path]
                info = reset(tarfile.TarInfo(path))
                info.mode, info.uid, info.gid = entry.mode, entry.uid, entry.gid
                # binary values survive tarfile's PAX encoding as surrogate escapes
                info.pax_headers = {
                    f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in entry.xattrs
                }
                if entry.content is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(entry.content)
                    tar.addfile(info, io.BytesIO(entry.content))

    parts: list[str | bytes] = [name, extra_key]
    for path in sorted(files):
        parts += [
            "/" + path.strip("/") if path.startswith("/") else path,
            *entries[path.strip("/")].key_parts(),
        ]
    return Layer(name, content_key(*parts), write)


# Linux file capability cap_net_bind_service=+ep (struct vfs_cap_data, revision 2, effective):
# lets a non-root process bind ports below 1024, as upstream's CoreDNS image sets with setcap.
CAP_NET_BIND_SERVICE_EP = (
    (0x02000000 | 0x1).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") + bytes(12)
)


def binary_layer(
    name: str, binary: Path, target: str, *, xattrs: tuple[tuple[str, bytes], ...] = ()
) -> Layer:
    """A layer holding one executable file (mode 0755) at ``target``."""
    digest = file_digest(binary)

    def write(tar_path: Path, quiet: bool) -> None:
        files_layer(name, {target: Entry(binary.read_bytes(), 0o755, xattrs=xattrs)}).write(tar_path, quiet)

    extra = [f"{k}={v.hex()}" for k, v in xattrs]
    return Layer(name, content_key("binary", target, digest, *extra), write)


# --------------------------------------------------------------------------- OCI layouts (umoci)


def _copy_layout(src: Path, dst: Path) -> None:
    """Copy an OCI layout: blobs hard-linked (content-addressed, never written in place), the
    small mutable files copied."""
    shutil.copytree(
        src, dst, copy_function=os.link, ignore=shutil.ignore_patterns("index.json", "oci-layout")
    )
    for small in ("index.json", "oci-layout"):
        shutil.copy2(src / small, dst / small)


def _layout_for(layers: Sequence[Layer], quiet: bool) -> Path:
    """The cached OCI layout (tag ``img``) holding ``layers``, built from the longest cached
    prefix."""
    root = cache_root() / "layouts"
    chain = content_key(BUILD_REV, "chain", *(la.key for la in layers))
    final = root / chain[:32]
    if (final / "index.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    sweep_partials(root)
    partial = partial_path(final)
    if not layers:
        run(["umoci", "init", "--layout", partial], "umoci init")
        run(["umoci", "new", "--image", f"{partial}:img"], "umoci new")
    else:
        _copy_layout(_layout_for(layers[:-1], quiet), partial)
        top = layers[-1]
        with tempfile.TemporaryDirectory(prefix="thv-layer-", dir=cache_root()) as tmp:
            tar_path = Path(tmp) / "layer.tar"
            t0 = time.monotonic()
            log(quiet, f"layer {top.name}: writing")
            top.write(tar_path, quiet)
            run(
                [
                    "umoci", "raw", "add-layer", "--image", f"{partial}:img",
                    "--history.created=1970-01-01T00:00:00Z", f"--history.created_by=thv images: {top.name}",
                    tar_path,
                ],
                f"umoci raw add-layer ({top.name})",
            )  # fmt: skip
            size = tar_path.stat().st_size
        log(quiet, f"layer {top.name}: {size / 1e6:.1f} MB in {time.monotonic() - t0:.1f}s")
    publish(partial, final)
    return final


def index_with_ref(index: Mapping[str, object], ref: str) -> dict[str, object]:
    """``index.json`` with its one manifest named ``ref`` (the OCI ref-name annotation, which
    ``ctr images import`` keeps as the image name when it is a full reference, and containerd's
    own name annotation) and marked linux/amd64."""
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or len(manifests) != 1:
        raise ImageBuildError(f"expected one manifest in the layout's index, found {manifests!r}")
    manifest = dict(manifests[0])
    manifest["annotations"] = {REF_NAME: ref, CONTAINERD_NAME: ref}
    manifest["platform"] = {"architecture": "amd64", "os": "linux"}
    return {**index, "manifests": [manifest]}


def write_archive(layout: Path, archive: Path) -> None:
    """Pack an OCI layout as a reproducible tar (``oci-layout``, ``index.json``, blobs)."""
    reset = _tar_filter(0, 0)
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(layout / "oci-layout", arcname="oci-layout", filter=reset)
        tar.add(layout / "index.json", arcname="index.json", filter=reset)
        for d in ("blobs", "blobs/sha256"):
            tar.add(layout / d, arcname=d, recursive=False, filter=reset)
        for blob in sorted((layout / "blobs" / "sha256").iterdir()):
            tar.add(blob, arcname=f"blobs/sha256/{blob.name}", filter=reset)


def assemble(plan: ImagePlan, *, quiet: bool = False) -> BuiltImage:
    """Build (or find in the cache) the OCI archive of ``plan``."""
    out = cache_root() / "out"
    archive = out / f"{plan.name}-{plan.key[:12]}.tar"
    if archive.is_file():
        log(quiet, f"{plan.name}: cached {plan.ref} ({archive})")
        return BuiltImage(plan.name, plan.ref, archive)
    t0 = time.monotonic()
    base = _layout_for(plan.layers, quiet)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"thv-image-{plan.name}-", dir=cache_root()) as tmp:
        layout = Path(tmp) / "layout"
        _copy_layout(base, layout)
        run(
            ["umoci", "config", "--image", f"{layout}:img", "--no-history",
             "--created=1970-01-01T00:00:00Z", "--architecture=amd64", "--os=linux", *plan.config.umoci_args()],
            f"umoci config ({plan.name})",
        )  # fmt: skip
        run(["umoci", "gc", "--layout", layout], f"umoci gc ({plan.name})")
        index_path = layout / "index.json"
        index_path.write_text(json.dumps(index_with_ref(json.loads(index_path.read_text()), plan.ref)))
        sweep_partials(out)
        partial = partial_path(archive)
        write_archive(layout, partial)
        publish(partial, archive)
    size = archive.stat().st_size
    log(quiet, f"{plan.name}: built {plan.ref} ({size / 1e6:.1f} MB) in {time.monotonic() - t0:.1f}s")
    prune_archives(out, plan.name)
    return BuiltImage(plan.name, plan.ref, archive)


KEEP_ARCHIVES = 3  # per image: every source change of thv makes a new ~70 MB archive


def prune_archives(out: Path, name: str, keep: int = KEEP_ARCHIVES) -> list[Path]:
    """Remove all but the ``keep`` newest archives of image ``name``; returns what was removed
    (the layouts they came from stay: they are small and shared)."""
    pattern = re.compile(rf"{re.escape(name)}-[0-9a-f]{{12}}\.tar")
    archives = sorted(
        (p for p in out.iterdir() if pattern.fullmatch(p.name)), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in archives[keep:]:
        old.unlink(missing_ok=True)
    return archives[keep:]


# --------------------------------------------------------------------------- containerd


def import_image(image: BuiltImage, *, containerd_address: str) -> None:
    """Import ``image`` into containerd's ``k8s.io`` namespace (the kubelet's) as ``image.ref``
    and pin it, so that image garbage collection never removes it."""
    base = ["ctr", "--address", containerd_address, "-n", "k8s.io"]
    run([*base, "images", "import", image.archive], f"ctr images import {image.ref}")
    listed = run([*base, "images", "ls", "-q"], "ctr images ls").split()
    if image.ref not in listed:
        raise ImageBuildError(
            f"ctr images import {image.archive} did not create {image.ref} (have: {listed})"
        )
    run([*base, "images", "label", image.ref, PINNED_LABEL], f"ctr images label {image.ref}")
