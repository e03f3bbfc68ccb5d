"""Containerfile + context → image archive: the library entry point."""

from __future__ import annotations

import datetime
import gzip
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import _workdir
from ._archive import Blob, oci_manifest, write_docker_archive, write_oci_archive
from ._containerfile import Recipe, parse_containerfile
from ._errors import ImageBuildError
from ._layer import FILE, HashingWriter, LayerEntry, open_regular, resolve_copies, write_layer
from ._reference import ImageReference, parse_reference
from ._urunc_json import URUNC_JSON, URUNC_PREFIX, canonical_json, encode_urunc_json, urunc_labels

FORMATS = ("oci", "docker")
# zlib level 6: a fraction of level 9's time for unikernel binaries, nearly the same size.
_GZIP_LEVEL = 6
_COPY_CHUNK = 1 << 20
MAX_CONTAINERFILE = 1 << 20
# Labels naming a file the runtime opens in the rootfs: each must be one in the image.
FILE_LABELS = ("binary", "initrd", "block")


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """What a build produced.

    ``name`` is the fully qualified name containerd lists after ``ctr image
    import`` (``hello:latest`` → ``docker.io/library/hello:latest``).
    ``manifest_digest`` is that of the OCI manifest inside an ``oci`` archive;
    a ``docker`` archive holds no manifest (containerd makes its own on
    import), so it is None there.
    """

    name: str
    reference: ImageReference
    manifest_digest: str | None
    config_digest: str
    diff_id: str
    output: Path
    format: str


def read_containerfile(path: Path) -> str:
    """The Containerfile's text; a FIFO, a device, a huge or a non-UTF-8 file is a one-line error.

    Opened without blocking (a FIFO with no writer would wait forever), checked
    with fstat, then read with a bound that holds whatever the file does.
    """
    with open_regular(path, "containerfile", follow=True) as f:
        if os.fstat(f.fileno()).st_size > MAX_CONTAINERFILE:
            raise ImageBuildError(f"containerfile {str(path)!r} is larger than {MAX_CONTAINERFILE} bytes")
        data = f.read(MAX_CONTAINERFILE + 1)
    if len(data) > MAX_CONTAINERFILE:
        raise ImageBuildError(f"containerfile {str(path)!r} is larger than {MAX_CONTAINERFILE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImageBuildError(
            f"containerfile {str(path)!r} is not utf-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})"
        ) from None


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int:
    """The timestamp for every file and the config: SOURCE_DATE_EPOCH, else 0."""
    env = os.environ if environ is None else environ
    value = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise ImageBuildError(
            f"invalid SOURCE_DATE_EPOCH {value!r} (seconds since 1970, a non-negative integer)"
        )
    return int(value)


def default_output(tag: str, cwd: Path | None = None) -> Path:
    """``NAME_TAG.tar`` in ``cwd`` (NAME is the last path component of the name)."""
    return (cwd or Path.cwd()) / f"{parse_reference(tag).archive_stem}.tar"


def image_config(recipe: Recipe, diff_id: str, epoch: int) -> dict[str, object]:
    """The OCI image config (also valid as a docker image config)."""
    config: dict[str, object] = {}
    if recipe.labels:
        config["Labels"] = dict(recipe.labels)
    if recipe.env:
        config["Env"] = [f"{k}={v}" for k, v in recipe.env]
    if recipe.entrypoint is not None:
        config["Entrypoint"] = list(recipe.entrypoint)
    if recipe.cmd is not None:
        config["Cmd"] = list(recipe.cmd)
    if recipe.workdirs:
        config["WorkingDir"] = recipe.workdir
    created = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "urunc-build"}],
    }


def build_image(
    containerfile: Path,
    context: Path,
    tag: str,
    output: Path | None = None,
    fmt: str = "oci",
    *,
    epoch: int | None = None,
) -> BuiltImage:
    """Build ``containerfile`` over ``context`` into an archive at ``output``.

    ``fmt`` is ``oci`` (OCI image layout tar, for ``ctr image import`` and
    ``skopeo copy oci-archive:``) or ``docker`` (``docker load``).
    ``epoch`` fixes every timestamp; by default SOURCE_DATE_EPOCH or 0.
    """
    if fmt not in FORMATS:
        raise ImageBuildError(f"unknown archive format {fmt!r} (oci or docker)")
    ref = parse_reference(tag)
    containerfile, context = Path(containerfile), Path(context)
    out = Path(output) if output is not None else default_output(tag)
    epoch = source_date_epoch() if epoch is None else epoch
    text = read_containerfile(containerfile)
    source = str(containerfile)
    recipe = parse_containerfile(text, source)
    table = resolve_copies(recipe.copies, context, source)
    for workdir in recipe.workdirs:
        table.ensure_dir(workdir.strip("/"))
    annotations = urunc_labels(recipe.labels)
    for key in FILE_LABELS:
        value = annotations.get(URUNC_PREFIX + key)
        if value and table.resolve_file(value) is None:
            raise ImageBuildError(
                f"{source}: label {URUNC_PREFIX}{key} names {value!r}, which is not a file in the image"
            )
    if annotations:
        if table.get(URUNC_JSON) is not None:
            raise ImageBuildError(
                f"{source}: /{URUNC_JSON} is generated from the com.urunc.unikernel.* labels; do not COPY one as well"
            )
        table.put(
            LayerEntry(
                path=URUNC_JSON,
                kind=FILE,
                mode=0o644,
                data=encode_urunc_json(annotations),
            )
        )

    if not out.parent.is_dir():
        raise ImageBuildError(f"output directory does not exist: {str(out.parent)!r}")
    with _workdir.scratch(out.parent) as work:
        layer_tar = work / "layer.tar"
        with open(layer_tar, "wb") as f:
            diff_id, tar_size = write_layer(table.entries(), f, epoch)
        config = Blob.of(canonical_json(image_config(recipe, diff_id, epoch)))
        staged = work / "image.tar"
        manifest_digest: str | None = None
        if fmt == "oci":
            layer = _gzip(layer_tar, work / "layer.tar.gz")
            manifest = oci_manifest(config, layer, annotations)
            manifest_digest = manifest.digest
            write_oci_archive(staged, ref, manifest, config, layer, epoch)
        else:
            layer = Blob(digest=diff_id, size=tar_size, path=layer_tar)
            write_docker_archive(staged, ref, config, layer, epoch)
        os.replace(staged, out)
    return BuiltImage(
        name=ref.name,
        reference=ref,
        manifest_digest=manifest_digest,
        config_digest=config.digest,
        diff_id=diff_id,
        output=out,
        format=fmt,
    )


def _gzip(src: Path, dst: Path) -> Blob:
    """Gzip with no file name and mtime 0 in the header, so the bytes are stable."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        sink = HashingWriter(fout)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=_GZIP_LEVEL
        ) as gz:
            shutil.copyfileobj(fin, gz, _COPY_CHUNK)
    return Blob(digest=sink.digest, size=sink.size, path=dst)
