"""Image archives: OCI image layout (``oci``) and ``docker save`` (``docker``).

Both are plain tars of blobs and JSON, written with fixed owners and times and
entries sorted by name, so the same blobs give byte-identical archives.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ._layer import DIR, FILE, tar_info
from ._reference import ImageReference
from ._urunc_json import canonical_json

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True, slots=True)
class Blob:
    """Content-addressed bytes: in memory (JSON) or in a file (layers)."""

    digest: str
    size: int
    data: bytes | None = None
    path: Path | None = None

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    @staticmethod
    def of(data: bytes) -> Blob:
        return Blob(
            digest="sha256:" + hashlib.sha256(data).hexdigest(),
            size=len(data),
            data=data,
        )


def descriptor(
    media_type: str, blob: Blob, annotations: dict[str, str] | None = None
) -> dict[str, object]:
    desc: dict[str, object] = {
        "mediaType": media_type,
        "digest": blob.digest,
        "size": blob.size,
    }
    if annotations:
        desc["annotations"] = annotations
    return desc


def oci_manifest(config: Blob, layer: Blob, annotations: dict[str, str]) -> Blob:
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": descriptor(MEDIA_OCI_CONFIG, config),
        "layers": [descriptor(MEDIA_OCI_LAYER_GZIP, layer)],
    }
    if annotations:
        manifest["annotations"] = annotations
    return Blob.of(canonical_json(manifest))


def oci_index(manifest: Blob, ref: ImageReference) -> bytes:
    # containerd takes io.containerd.image.name verbatim as the image name;
    # ref.name carries the tag alone, as the image-layout spec and buildkit have it.
    names = {ANNOTATION_CONTAINERD_NAME: ref.name, ANNOTATION_REF_NAME: ref.tag}
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [descriptor(MEDIA_OCI_MANIFEST, manifest, names)],
    }
    return canonical_json(index)


def write_oci_archive(
    out: Path,
    ref: ImageReference,
    manifest: Blob,
    config: Blob,
    layer: Blob,
    mtime: int,
) -> None:
    files: dict[str, Blob | bytes] = {
        "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
        "index.json": oci_index(manifest, ref),
    }
    for blob in (manifest, config, layer):
        files[f"blobs/sha256/{blob.hex}"] = blob
    _write_tar(out, ["blobs", "blobs/sha256"], files, mtime)


def write_docker_archive(
    out: Path, ref: ImageReference, config: Blob, layer_tar: Blob, mtime: int
) -> None:
    manifest = [
        {
            "Config": f"{config.hex}.json",
            "RepoTags": [ref.familiar],
            "Layers": [f"{layer_tar.hex}/layer.tar"],
        }
    ]
    files: dict[str, Blob | bytes] = {
        "manifest.json": canonical_json(manifest),
        f"{config.hex}.json": config,
        f"{layer_tar.hex}/layer.tar": layer_tar,
    }
    _write_tar(out, [layer_tar.hex], files, mtime)


def _write_tar(
    out: Path, dirs: list[str], files: dict[str, Blob | bytes], mtime: int
) -> None:
    entries: list[tuple[str, Blob | bytes | None]] = [(d, None) for d in dirs]
    entries.extend(files.items())
    names = sorted(entries, key=lambda kv: kv[0])
    with open(out, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_all(tar, names, mtime)
        raw.flush()
        os.fsync(raw.fileno())


def _add_all(
    tar: tarfile.TarFile, names: list[tuple[str, Blob | bytes | None]], mtime: int
) -> None:
    for name, content in names:
        if content is None:
            tar.addfile(tar_info(name, DIR, 0o755, 0, mtime))
        elif isinstance(content, bytes):
            tar.addfile(
                tar_info(name, FILE, 0o644, len(content), mtime), io.BytesIO(content)
            )
        elif content.data is not None:
            tar.addfile(
                tar_info(name, FILE, 0o644, content.size, mtime),
                io.BytesIO(content.data),
            )
        else:
            assert content.path is not None
            with open(content.path, "rb") as f:
                tar.addfile(tar_info(name, FILE, 0o644, content.size, mtime), f)
