"""Images from urunc-build import into a real containerd and pass skopeo.

Uses the session fixture ``containerd`` (tests/e2e/conftest.py): a private
containerd whose ``.ctr(*args, check=True, timeout=60)`` runs ``ctr --address
SOCK -n NAMESPACE ...``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from urunc.image import BuiltImage, build_image, decode_urunc_json

CONTAINERFILE = """\
FROM scratch
COPY kernel /unikernel/kernel
LABEL com.urunc.unikernel.binary=/unikernel/kernel \\
      com.urunc.unikernel.unikernelType=unikraft \\
      com.urunc.unikernel.hypervisor=qemu
CMD ["/unikernel/kernel"]
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "kernel").write_bytes(b"\x7fELF" + b"\0" * 4096)
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    return ctx


@pytest.fixture
def tag() -> Iterator[str]:
    yield f"urunc-build-e2e-{uuid.uuid4().hex[:8]}:v1"


def _built(context: Path, tag: str, fmt: str) -> BuiltImage:
    return build_image(
        context / "Containerfile",
        context,
        tag,
        context.parent / f"image-{fmt}.tar",
        fmt,
    )


def _image_names(containerd: Any) -> list[str]:
    return containerd.ctr("image", "ls", "-q").stdout.split()


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_ctr_import_lists_the_fully_qualified_name(
    containerd: Any, context: Path, tag: str, fmt: str
) -> None:
    image = _built(context, tag, fmt)
    assert image.name == f"docker.io/library/{tag}"
    containerd.ctr("image", "import", str(image.output))
    try:
        assert image.name in _image_names(containerd)
        listing = containerd.ctr("image", "ls").stdout
        if image.manifest_digest is not None:
            line = next(
                x for x in listing.splitlines() if x.startswith(image.name + " ")
            )
            assert image.manifest_digest in line
    finally:
        # --sync: the next test imports the same layer; its snapshot must not be mid-GC then
        containerd.ctr("image", "rm", "--sync", image.name, check=False)


def test_imported_rootfs_carries_urunc_json(
    containerd: Any, context: Path, tag: str, tmp_path: Path
) -> None:
    image = _built(context, tag, "oci")
    containerd.ctr("image", "import", str(image.output))
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        containerd.ctr("image", "mount", image.name, str(mountpoint))
        try:
            annotations = decode_urunc_json((mountpoint / "urunc.json").read_bytes())
            assert annotations["com.urunc.unikernel.hypervisor"] == "qemu"
            assert (
                (mountpoint / "unikernel" / "kernel")
                .read_bytes()
                .startswith(b"\x7fELF")
            )
        finally:
            containerd.ctr("image", "unmount", "--rm", str(mountpoint), check=False)
    finally:
        # --sync: the next test imports the same layer; its snapshot must not be mid-GC then
        containerd.ctr("image", "rm", "--sync", image.name, check=False)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_copies_the_oci_archive_unchanged(
    context: Path, tag: str, tmp_path: Path
) -> None:
    image = _built(context, tag, "oci")
    dest = tmp_path / "copied"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci-archive:{image.output}", f"dir:{dest}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    manifest = (dest / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == image.manifest_digest
    assert json.loads(manifest)["config"]["digest"] == image.config_digest
