"""Building archives: layer contents, urunc.json, config, manifest, formats, reproducibility."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from urunc.image import (
    BuiltImage,
    ImageBuildError,
    build_image,
    decode_urunc_json,
    encode_urunc_json,
)
from urunc.image.cli import EXIT_BUILD_FAILED, EXIT_OK, main

CONTAINERFILE = """\
FROM scratch
COPY kernel /unikernel/kernel
COPY rootfs /data/
LABEL com.urunc.unikernel.binary=/unikernel/kernel \\
      com.urunc.unikernel.unikernelType=unikraft \\
      com.urunc.unikernel.hypervisor=qemu \\
      com.urunc.unikernel.cmdline="hello wörld" \\
      org.example.note="not urunc"
ENV GREETING=hi
WORKDIR /app
ENTRYPOINT ["/unikernel/kernel"]
CMD -v
"""


def make_context(root: Path, containerfile: str = CONTAINERFILE) -> Path:
    ctx = root / "ctx"
    (ctx / "rootfs" / "etc").mkdir(parents=True)
    (ctx / "kernel").write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    (ctx / "kernel").chmod(0o755)
    (ctx / "rootfs" / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (ctx / "rootfs" / "hosts-link").symlink_to("etc/hosts")
    (ctx / "Containerfile").write_text(containerfile)
    return ctx


def tar_files(tar: tarfile.TarFile) -> dict[str, bytes]:
    """Regular files of a tar, by name."""
    out: dict[str, bytes] = {}
    for member in tar.getmembers():
        f = tar.extractfile(member) if member.isfile() else None
        if f is not None:
            out[member.name] = f.read()
    return out


def build(
    ctx: Path, out: Path, fmt: str = "oci", tag: str = "hello:latest"
) -> BuiltImage:
    return build_image(ctx / "Containerfile", ctx, tag, out, fmt)


class OciArchive:
    """Read back an OCI archive: index, manifest, config and the layer's members."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path) as tar:
            self.members = {m.name: m for m in tar.getmembers()}
            self.files = tar_files(tar)
        self.index = json.loads(self.files["index.json"])
        self.manifest_digest = self.index["manifests"][0]["digest"]
        self.manifest = json.loads(self.blob(self.manifest_digest))
        self.config = json.loads(self.blob(self.manifest["config"]["digest"]))
        self.layer_gz = self.blob(self.manifest["layers"][0]["digest"])
        self.layer = tarfile.open(fileobj=io.BytesIO(gzip.decompress(self.layer_gz)))  # noqa: SIM115 (in memory)

    def blob(self, digest: str) -> bytes:
        return self.files["blobs/sha256/" + digest.split(":", 1)[1]]

    def layer_file(self, name: str) -> bytes:
        return tar_files(self.layer)[name]


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    return make_context(tmp_path)


def test_oci_layout_files_and_blob_digests(ctx: Path, tmp_path: Path) -> None:
    image = build(ctx, tmp_path / "out.tar")
    archive = OciArchive(image.output)
    assert json.loads(archive.files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert image.manifest_digest == archive.manifest_digest
    assert image.config_digest == archive.manifest["config"]["digest"]
    assert (
        archive.manifest["config"]["mediaType"]
        == "application/vnd.oci.image.config.v1+json"
    )
    assert (
        archive.manifest["layers"][0]["mediaType"]
        == "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    for name, data in archive.files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    assert archive.config["rootfs"]["diff_ids"] == [image.diff_id]
    assert (
        "sha256:" + hashlib.sha256(gzip.decompress(archive.layer_gz)).hexdigest()
        == image.diff_id
    )


def test_index_names_the_image_for_containerd(ctx: Path, tmp_path: Path) -> None:
    image = build(ctx, tmp_path / "out.tar")
    annotations = OciArchive(image.output).index["manifests"][0]["annotations"]
    assert image.name == "docker.io/library/hello:latest"
    assert annotations == {
        "io.containerd.image.name": "docker.io/library/hello:latest",
        "org.opencontainers.image.ref.name": "latest",
    }


def test_urunc_json_holds_base64_of_every_urunc_label(
    ctx: Path, tmp_path: Path
) -> None:
    archive = OciArchive(build(ctx, tmp_path / "out.tar").output)
    raw = json.loads(archive.layer_file("urunc.json"))
    assert raw == {
        "com.urunc.unikernel.binary": base64.b64encode(b"/unikernel/kernel").decode(),
        "com.urunc.unikernel.unikernelType": "dW5pa3JhZnQ=",
        "com.urunc.unikernel.hypervisor": "cWVtdQ==",
        "com.urunc.unikernel.cmdline": base64.b64encode(
            "hello wörld".encode()
        ).decode(),
    }
    assert (
        decode_urunc_json(archive.layer_file("urunc.json"))[
            "com.urunc.unikernel.cmdline"
        ]
        == "hello wörld"
    )


@pytest.mark.parametrize("value", ["", "qemu", "a b=c", "ünïcødé ✓", "x" * 1000])
def test_urunc_json_round_trip(value: str) -> None:
    annotations = {"com.urunc.unikernel.cmdline": value}
    assert decode_urunc_json(encode_urunc_json(annotations)) == annotations


def test_no_urunc_labels_means_no_urunc_json(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "FROM scratch\nCOPY kernel /kernel\nLABEL a=b\n")
    archive = OciArchive(build(ctx, tmp_path / "out.tar").output)
    assert "urunc.json" not in archive.layer.getnames()
    assert "annotations" not in archive.manifest


def test_copying_a_urunc_json_alongside_urunc_labels_is_refused(tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path,
        "FROM scratch\nCOPY kernel /urunc.json\nLABEL com.urunc.unikernel.hypervisor=qemu\n",
    )
    with pytest.raises(ImageBuildError, match="urunc.json is generated"):
        build(ctx, tmp_path / "out.tar")


def test_labels_in_config_and_urunc_labels_in_manifest_annotations(
    ctx: Path, tmp_path: Path
) -> None:
    archive = OciArchive(build(ctx, tmp_path / "out.tar").output)
    labels = archive.config["config"]["Labels"]
    assert labels["org.example.note"] == "not urunc"
    assert labels["com.urunc.unikernel.cmdline"] == "hello wörld"
    assert archive.manifest["annotations"] == {
        k: v for k, v in labels.items() if k.startswith("com.urunc.unikernel.")
    }


def test_config_process_fields(ctx: Path, tmp_path: Path) -> None:
    config = OciArchive(build(ctx, tmp_path / "out.tar").output).config
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Env"] == ["GREETING=hi"]
    assert config["config"]["Entrypoint"] == ["/unikernel/kernel"]
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "-v"]
    assert config["config"]["WorkingDir"] == "/app"


def test_layer_members_modes_owners_and_symlinks(ctx: Path, tmp_path: Path) -> None:
    layer = OciArchive(build(ctx, tmp_path / "out.tar").output).layer
    members = {m.name: m for m in layer.getmembers()}
    assert list(members) == sorted(members)
    assert set(members) == {
        "app",
        "data",
        "data/etc",
        "data/etc/hosts",
        "data/hosts-link",
        "unikernel",
        "unikernel/kernel",
        "urunc.json",
    }
    assert (
        members["data/hosts-link"].issym()
        and members["data/hosts-link"].linkname == "etc/hosts"
    )
    assert members["unikernel/kernel"].mode == 0o755 and members["app"].isdir()
    for m in members.values():
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0)


def test_chmod_applies_to_copied_files(tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path, "FROM scratch\nCOPY --chmod=0600 rootfs/etc/hosts kernel /x/\n"
    )
    members = {
        m.name: m
        for m in OciArchive(build(ctx, tmp_path / "out.tar").output).layer.getmembers()
    }
    assert members["x/hosts"].mode == 0o600 and members["x/kernel"].mode == 0o600
    assert members["x"].mode == 0o755


def test_copy_glob_and_file_into_existing_directory(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "FROM scratch\nCOPY rootfs /r/\nCOPY kern* /r\n")
    names = OciArchive(build(ctx, tmp_path / "out.tar").output).layer.getnames()
    assert "r/kernel" in names


@pytest.mark.parametrize("src", ["../outside", "rootfs/../../outside", "/../outside"])
def test_copy_source_outside_context_is_refused(tmp_path: Path, src: str) -> None:
    (tmp_path / "outside").write_text("secret")
    ctx = make_context(tmp_path, f"FROM scratch\nCOPY {src} /x\n")
    with pytest.raises(
        ImageBuildError, match=r"Containerfile:2: COPY source escapes the build context"
    ):
        build(ctx, tmp_path / "out.tar")


def test_copy_through_a_symlinked_directory_pointing_outside_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("secret")
    ctx = make_context(tmp_path, "FROM scratch\nCOPY escape/secret /x\n")
    (ctx / "escape").symlink_to(tmp_path / "outside")
    with pytest.raises(
        ImageBuildError, match="escapes the build context: 'escape/secret'"
    ):
        build(ctx, tmp_path / "out.tar")


def test_symlink_pointing_outside_is_copied_as_a_link_not_followed(
    tmp_path: Path,
) -> None:
    ctx = make_context(tmp_path, "FROM scratch\nCOPY link /link\n")
    (ctx / "link").symlink_to("/etc/shadow")
    member = OciArchive(build(ctx, tmp_path / "out.tar").output).layer.getmember("link")
    assert member.issym() and member.linkname == "/etc/shadow"


def test_missing_copy_source_names_it(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "FROM scratch\nCOPY nope /x\n")
    with pytest.raises(
        ImageBuildError,
        match=r"^.*Containerfile:2: COPY source not found in the build context: 'nope'$",
    ):
        build(ctx, tmp_path / "out.tar")


def test_same_inputs_give_identical_bytes_and_digest(ctx: Path, tmp_path: Path) -> None:
    first = build(ctx, tmp_path / "a.tar")
    second = build(ctx, tmp_path / "b.tar")
    assert first.manifest_digest == second.manifest_digest
    assert first.output.read_bytes() == second.output.read_bytes()


def test_touching_files_does_not_change_the_digest(ctx: Path, tmp_path: Path) -> None:
    first = build(ctx, tmp_path / "a.tar")
    for path in (ctx / "kernel", ctx / "rootfs" / "etc" / "hosts", ctx / "rootfs"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    assert build(ctx, tmp_path / "b.tar").manifest_digest == first.manifest_digest


def test_changing_content_changes_the_digest(ctx: Path, tmp_path: Path) -> None:
    first = build(ctx, tmp_path / "a.tar")
    (ctx / "kernel").write_bytes(b"other")
    assert build(ctx, tmp_path / "b.tar").manifest_digest != first.manifest_digest


def test_source_date_epoch_sets_times(
    ctx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    archive = OciArchive(build(ctx, tmp_path / "a.tar").output)
    assert archive.config["created"] == "2023-11-14T22:13:20Z"
    assert {m.mtime for m in archive.layer.getmembers()} == {1_700_000_000}
    assert {m.mtime for m in archive.members.values()} == {1_700_000_000}


def test_invalid_source_date_epoch_is_refused(
    ctx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ImageBuildError, match="invalid SOURCE_DATE_EPOCH 'yesterday'"):
        build(ctx, tmp_path / "a.tar")


def test_gzip_header_has_no_name_and_zero_mtime(ctx: Path, tmp_path: Path) -> None:
    layer_gz = OciArchive(build(ctx, tmp_path / "a.tar").output).layer_gz
    flags, mtime = layer_gz[3], int.from_bytes(layer_gz[4:8], "little")
    assert flags & 0x08 == 0 and mtime == 0


def test_docker_archive_structure(ctx: Path, tmp_path: Path) -> None:
    image = build(ctx, tmp_path / "d.tar", fmt="docker")
    with tarfile.open(image.output) as tar:
        files = tar_files(tar)
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["hello:latest"]
    config = json.loads(files[entry["Config"]])
    assert entry["Config"] == image.config_digest.split(":")[1] + ".json"
    (layer_name,) = entry["Layers"]
    with tarfile.open(fileobj=io.BytesIO(files[layer_name])) as layer:
        assert "urunc.json" in layer.getnames()
    assert config["rootfs"]["diff_ids"] == [image.diff_id]
    assert image.manifest_digest is None


def test_docker_and_oci_share_the_config(ctx: Path, tmp_path: Path) -> None:
    assert (
        build(ctx, tmp_path / "o.tar").config_digest
        == build(ctx, tmp_path / "d.tar", fmt="docker").config_digest
    )


def test_unknown_format_is_refused(ctx: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="unknown archive format 'zip'"):
        build(ctx, tmp_path / "o.tar", fmt="zip")


def test_cli_default_output_name_and_exit_codes(
    ctx: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["-t", "ghcr.io/me/hello:v1", str(ctx)]) == EXIT_OK
    assert (tmp_path / "hello_v1.tar").is_file()
    assert capsys.readouterr().out.startswith("ghcr.io/me/hello:v1 sha256:")
    (ctx / "Bad").write_text("FROM scratch\nRUN true\n")
    assert (
        main(
            ["-f", str(ctx / "Bad"), "-t", "x", "-o", str(tmp_path / "x.tar"), str(ctx)]
        )
        == EXIT_BUILD_FAILED
    )
    err = capsys.readouterr().err
    assert err == f"urunc-build: {ctx / 'Bad'}:2: unsupported instruction 'RUN'\n"
    assert not (tmp_path / "x.tar").exists()
