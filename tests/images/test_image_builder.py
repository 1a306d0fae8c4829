"""The image builder's pure parts (keys, layer tars, configs, index, Dockerfile) and one small
image assembled with umoci into a throwaway cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from devcluster.images import IMAGES, ImageBuildError, ImageConfig
from devcluster.images.catalog import CA_BUNDLE, static_base_layer
from devcluster.images.layers import (
    BASE_PACKAGES,
    SITE_PACKAGES,
    WHEEL_INPUTS,
    console_script,
    dockerfile_config,
    install_wheel,
    mmdebstrap_command,
    pinned_requirements,
)
from devcluster.images.oci import (
    CAP_NET_BIND_SERVICE_EP,
    CONTAINERD_NAME,
    DEFAULT_PATH,
    REF_NAME,
    Entry,
    ImagePlan,
    assemble,
    content_key,
    files_layer,
    index_with_ref,
    partial_path,
    prune_archives,
    publish,
    sweep_partials,
    tree_digest,
)

REPO = Path(__file__).resolve().parents[2]


def test_content_key_separates_parts() -> None:
    assert content_key("ab", "c") != content_key("a", "bc")
    assert content_key("a", b"b") == content_key(b"a", "b")
    assert len(content_key()) == 64


def test_tree_digest_follows_content_and_ignores_bytecode(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    first = tree_digest(tmp_path, ["pkg"])
    (tmp_path / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"junk")
    assert tree_digest(tmp_path, ["pkg"]) == first
    (tmp_path / "pkg" / "m.py").write_text("x = 2\n")
    assert tree_digest(tmp_path, ["pkg"]) != first
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    assert tree_digest(tmp_path, ["pkg"]) == first
    (tmp_path / "pkg" / "m.py").chmod(0o755)
    assert tree_digest(tmp_path, ["pkg"]) != first


def test_files_layer_is_reproducible(tmp_path: Path) -> None:
    files = {"/opt/app/run.py": (b"print('hi')\n", 0o755), "/etc/app.conf": (b"a=1\n", 0o644)}
    layer = files_layer("app", files)
    assert layer.key == files_layer("app", dict(reversed(files.items()))).key
    assert layer.key != files_layer("app", {**files, "/etc/app.conf": (b"a=2\n", 0o644)}).key
    assert layer.key != files_layer("app", {**files, "/etc/app.conf": (b"a=1\n", 0o600)}).key
    one, two = tmp_path / "1.tar", tmp_path / "2.tar"
    layer.write(one, True)
    layer.write(two, True)
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["etc", "opt", "opt/app", "etc/app.conf", "opt/app/run.py"]
    assert members["opt/app/run.py"].mode == 0o755 and members["opt/app"].isdir()
    assert {(m.uid, m.gid, m.mtime) for m in members.values()} == {(0, 0, 0)}


def test_image_config_umoci_args_replace_everything() -> None:
    config = ImageConfig(
        entrypoint=("thv",), cmd=("operator", "run"), user="1000:1000", env=("A=1",), workdir="/w"
    )
    assert config.umoci_args() == [
        "--clear=config.entrypoint",
        "--clear=config.cmd",
        "--clear=config.env",
        "--config.entrypoint=thv",
        "--config.cmd=operator",
        "--config.cmd=run",
        "--config.env=A=1",
        "--config.user=1000:1000",
        "--config.workingdir=/w",
    ]


def test_index_names_the_manifest_with_the_ref() -> None:
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:ab", "annotations": {REF_NAME: "img"}}]}
    out = index_with_ref(index, "localhost/thv:0123456789ab")
    manifests = out["manifests"]
    assert isinstance(manifests, list)
    (manifest,) = manifests
    assert manifest["annotations"] == {
        REF_NAME: "localhost/thv:0123456789ab",
        CONTAINERD_NAME: "localhost/thv:0123456789ab",
    }
    assert manifest["platform"] == {"architecture": "amd64", "os": "linux"}
    assert manifest["digest"] == "sha256:ab" and out["schemaVersion"] == 2
    with pytest.raises(ImageBuildError):
        index_with_ref({"manifests": []}, "x")


def test_plan_ref_is_the_content_hash_unless_fixed() -> None:
    layer = files_layer("a", {"/a": (b"a", 0o644)})
    plan = ImagePlan("x", "localhost/x", (layer,), ImageConfig(entrypoint=("/a",)))
    assert plan.ref == f"localhost/x:{plan.key[:12]}"
    other_config = ImagePlan("x", "localhost/x", (layer,), ImageConfig(entrypoint=("/b",)))
    other_layer = ImagePlan("x", "localhost/x", (files_layer("a", {"/a": (b"b", 0o644)}),), plan.config)
    assert len({plan.key, other_config.key, other_layer.key}) == 3
    assert (
        ImagePlan("p", "localhost/pause", (layer,), plan.config, fixed_tag="3.10").ref
        == "localhost/pause:3.10"
    )


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_config_reads_the_final_stage() -> None:
    text = """
    FROM python:3.11 AS build
    USER 0
    ENTRYPOINT ["wrong"]
    FROM python:3.11-slim
    # a comment
    ENV A=1 B="two words" \\
        C=3
    WORKDIR /srv
    USER 1000:1000
    ENTRYPOINT ["thv"]
    CMD ["operator", "run"]
    """
    config = dockerfile_config(text)
    assert config == ImageConfig(
        entrypoint=("thv",),
        cmd=("operator", "run"),
        user="1000:1000",
        env=(DEFAULT_PATH, "A=1", "B=two words", "C=3"),
        workdir="/srv",
    )


@pytest.mark.parametrize(
    "text",
    [
        "FROM x\nENTRYPOINT thv operator\n",
        'FROM x\nCMD run\nENTRYPOINT ["a"]\n',
        'FROM x\nCMD ["a"]\n',
        'FROM x\nENV A 1\nENTRYPOINT ["a"]\n',
    ],
)
def test_dockerfile_config_refuses_what_it_cannot_reproduce(text: str) -> None:
    with pytest.raises(ImageBuildError):
        dockerfile_config(text)


def test_the_repository_dockerfile_and_the_thv_image_agree() -> None:
    """The thv image takes its configuration from the Dockerfile; the Dockerfile installs the
    same inputs the image's wheel is built from, and its entrypoint is a console script of that
    wheel, running as the same non-root user."""
    text = (REPO / "Dockerfile").read_text()
    config = dockerfile_config(text)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert config.entrypoint[0] in scripts
    assert config.cmd == ("operator", "run")
    assert config.user == "1000:1000"
    copied: set[str] = set()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(p.rstrip("/") for p in line.split()[1:-1])
    assert copied == set(WHEEL_INPUTS) - {"src/thv"} | {"src"}, "the Dockerfile and WHEEL_INPUTS disagree"


# --------------------------------------------------------------------------- Python layers


def test_pinned_requirements_follow_extras_and_markers() -> None:
    from importlib import metadata

    pins = pinned_requirements(["pyjwt[crypto]"])
    names = {p.split("==")[0] for p in pins}
    assert {"pyjwt", "cryptography", "cffi"} <= names
    assert f"pyjwt=={metadata.version('pyjwt')}" in pins
    assert pinned_requirements(["pyjwt"]) == [f"pyjwt=={metadata.version('pyjwt')}"]  # no extra: no crypto
    assert pinned_requirements(['cryptography; python_version < "3.8"']) == []
    with pytest.raises(ImageBuildError, match="not installed"):
        pinned_requirements(["surely-not-installed-package-xyz"])


def test_console_script() -> None:
    assert console_script("thv.cli:main") == (
        b"#!/usr/bin/python3\nimport sys\nfrom thv.cli import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
    )
    assert b"from pkg.mod import obj\n" in console_script("pkg.mod:obj.run [extra]")
    assert b"sys.exit(obj.run())" in console_script("pkg.mod:obj.run [extra]")


def test_install_wheel_writes_every_console_script(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/__init__.py", "def main():\n    return 0\n")
        zf.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nVersion: 1.0\n")
        zf.writestr(
            "demo-1.0.dist-info/entry_points.txt",
            "[console_scripts]\ndemo = demo:main\nDemo-Two = demo:main\n",
        )
    root = tmp_path / "root"
    assert install_wheel(wheel, root) == ["Demo-Two", "demo"]
    script = root / "usr/local/bin/demo"
    assert os.access(script, os.X_OK) and script.read_bytes().startswith(b"#!/usr/bin/python3\n")
    assert (root / SITE_PACKAGES / "demo" / "__init__.py").is_file()
    assert list((root / SITE_PACKAGES / "demo" / "__pycache__").glob("__init__.cpython-3*.pyc"))


def test_base_is_debian_bookworm_with_python() -> None:
    cmd = mmdebstrap_command(Path("/out.tar"))
    assert cmd[0] == "mmdebstrap" and "bookworm" in cmd and "/out.tar" in cmd
    assert "python3-minimal" in BASE_PACKAGES and f"--include={','.join(BASE_PACKAGES)}" in cmd


def test_catalog() -> None:
    assert {"pause", "thv", "demo-mcp"} <= set(IMAGES)


# --------------------------------------------------------------------------- assembled with umoci


@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is installed by scripts/bootstrap.sh")
def test_assemble_caches_per_layer_and_names_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THV_CACHE_DIR", str(tmp_path / "cache"))
    bottom = files_layer("bottom", {"/bin/tool": (b"#!/bin/sh\n", 0o755)})
    config = ImageConfig(entrypoint=("/bin/tool",), user="65535:65535", env=(DEFAULT_PATH,))
    first = assemble(
        ImagePlan("t", "localhost/t", (bottom, files_layer("top", {"/v": (b"1", 0o644)})), config)
    )
    assert first.ref.startswith("localhost/t:") and first.archive.is_file()
    with tarfile.open(first.archive) as tar:

        def member(name: str) -> bytes:
            f = tar.extractfile(name)
            assert f is not None, name
            return f.read()

        def blob(digest: str) -> Any:
            return json.loads(member(f"blobs/sha256/{digest.removeprefix('sha256:')}"))

        (desc,) = json.loads(member("index.json"))["manifests"]
        assert desc["annotations"][REF_NAME] == first.ref
        manifest = blob(desc["digest"])
        image_config = blob(manifest["config"]["digest"])
        assert len(manifest["layers"]) == 2
        for layer in manifest["layers"]:  # every blob named by its digest, nothing else in it
            data = member(f"blobs/sha256/{layer['digest'][7:]}")
            assert hashlib.sha256(data).hexdigest() == layer["digest"][7:]
        assert len([n for n in tar.getnames() if n.startswith("blobs/sha256/")]) == 4
    assert image_config["config"] == {
        "User": "65535:65535",
        "Entrypoint": ["/bin/tool"],
        "Env": [DEFAULT_PATH],
    }
    assert image_config["os"] == "linux" and image_config["architecture"] == "amd64"
    capsys.readouterr()

    again = assemble(
        ImagePlan("t", "localhost/t", (bottom, files_layer("top", {"/v": (b"1", 0o644)})), config)
    )
    assert again == first and "cached" in capsys.readouterr().err

    changed = assemble(
        ImagePlan("t", "localhost/t", (bottom, files_layer("top", {"/v": (b"2", 0o644)})), config)
    )
    assert changed.ref != first.ref
    log = capsys.readouterr().err
    assert "layer top" in log and "layer bottom" not in log  # the bottom layer's layout was reused
    assert len(list((tmp_path / "cache" / "images" / "layouts").iterdir())) == 4  # empty, bottom, 2 tops


def test_entries_carry_owners_directories_and_file_capabilities(tmp_path: Path) -> None:
    layer = files_layer(
        "caps",
        {
            "/coredns": Entry(b"ELF", 0o755, xattrs=(("security.capability", CAP_NET_BIND_SERVICE_EP),)),
            "/home/nonroot": Entry(None, 0o700, uid=65532, gid=65532),
            "/tmp": Entry(None, 0o1777),
        },
    )
    assert layer.key != files_layer("caps", {"/coredns": (b"ELF", 0o755)}).key
    out = tmp_path / "l.tar"
    layer.write(out, True)
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["home", "home/nonroot", "tmp", "coredns"]  # directories first
    assert (members["home/nonroot"].uid, members["home/nonroot"].mode) == (65532, 0o700)
    assert members["tmp"].mode == 0o1777 and members["home"].uid == 0
    # the exact bytes of `setcap cap_net_bind_service=+ep` (getfattr -n security.capability)
    raw = out.read_bytes()
    assert b"SCHILY.xattr.security.capability=" + bytes.fromhex("0100000200040000" + "00" * 12) in raw
    assert bytes.fromhex("0100000200040000" + "00" * 12) == CAP_NET_BIND_SERVICE_EP


def test_static_base_has_nonroot_and_the_ca_bundle(tmp_path: Path) -> None:
    if not CA_BUNDLE.is_file():
        pytest.skip("no CA bundle on this machine")
    out = tmp_path / "base.tar"
    static_base_layer().write(out, True)
    with tarfile.open(out) as tar:
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None and b"nonroot:x:65532:65532:" in passwd.read()
        assert "etc/ssl/certs/ca-certificates.crt" in tar.getnames()


def test_prune_keeps_the_newest_archives_of_one_image(tmp_path: Path) -> None:
    names = [f"thv-{i:012x}.tar" for i in range(5)] + [
        "thv-runner-000000000000.tar",
        "demo-mcp-000000000000.tar",
    ]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    removed = prune_archives(tmp_path, "thv", keep=3)
    assert sorted(p.name for p in removed) == ["thv-000000000000.tar", "thv-000000000001.tar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


@pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("umoci", "gcc", "go")), reason="scripts/bootstrap.sh installs them"
)
def test_cli_builds_and_prints_refs(capsys: pytest.CaptureFixture[str]) -> None:
    from devcluster.images.__main__ import main

    assert main(["build", "pause", "--quiet"]) == 0
    assert capsys.readouterr().out == "localhost/pause:3.10\n"
    assert main(["build", "pause", "-q", "--archives"]) == 0
    ref, archive = capsys.readouterr().out.split()
    assert ref == "localhost/pause:3.10" and Path(archive).is_file()
    assert main(["build", "no-such-image", "-q"]) == 1
    assert "unknown image 'no-such-image'" in capsys.readouterr().err


def test_publish_is_atomic_and_tolerates_a_concurrent_winner(tmp_path: Path) -> None:
    final = tmp_path / "layout"
    first, second = partial_path(final), partial_path(final)
    assert first != second and first.parent == tmp_path and ".partial-" in first.name
    for partial, marker in ((first, "1"), (second, "2")):
        partial.mkdir()
        (partial / "index.json").write_text(marker)
    publish(first, final)
    publish(second, final)  # the same content was published first: ours is dropped
    assert (final / "index.json").read_text() == "1" and not second.exists()
    archive = tmp_path / "a.tar"
    for marker in ("x", "y"):
        partial = partial_path(archive)
        partial.write_text(marker)
        publish(partial, archive)
    assert archive.read_text() == "y" and sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "layout"]


def test_stale_partials_are_swept(tmp_path: Path) -> None:
    stale, fresh = partial_path(tmp_path / "old"), partial_path(tmp_path / "new")
    stale.mkdir()
    fresh.write_text("")
    os.utime(stale, (0, 0))
    sweep_partials(tmp_path)
    assert not stale.exists() and fresh.exists()
