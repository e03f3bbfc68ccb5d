"""A hostile image through containerd: its initrd path names a host file after a comma.

QEMU's multiboot loader splits ``-initrd`` at commas and loads every piece as a
host file. The image below (built with urunc-build) carries a file ``m`` and a
file at ``m,<host secret path>``, so every path check inside the rootfs passes;
the guest must get that one image file, and never the host's.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from tests.helpers.bundles import HELLO_ELF
from tests.helpers.containerd import Containerd
from urunc.image import build_image

RUNTIME = "io.containerd.urunc.v2"


def test_the_guest_receives_the_image_file_and_no_host_file(containerd: Containerd, unique_id: str,
                                                           tmp_path: Path) -> None:
    if not HELLO_ELF.exists():
        pytest.skip(f"{HELLO_ELF} is not built (run make guests)")
    token = "host-secret-" + secrets.token_hex(8)
    secret = tmp_path / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(token + "\n")
    initrd = "/m," + str(secret)
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy2(HELLO_ELF, context / "hello.elf")
    (context / "m").write_text("image-file-m\n")
    inside = context / initrd.lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("image-file-with-comma\n")
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(
        "FROM scratch\n"
        "COPY . /\n"
        "LABEL com.urunc.unikernel.unikernelType=unikraft \\\n"
        "      com.urunc.unikernel.hypervisor=qemu \\\n"
        "      com.urunc.unikernel.binary=/hello.elf \\\n"
        f'      com.urunc.unikernel.initrd="{initrd}"\n'
        'CMD ["hello"]\n')
    tag = f"urunc-e2e-hostile-initrd:{secrets.token_hex(3)}"
    built = build_image(containerfile, context, tag, tmp_path / "hostile.tar")
    containerd.ctr("image", "import", str(built.output), timeout=120)
    image = f"docker.io/library/{tag}"
    try:
        result = containerd.ctr("run", "--rm", "--runtime", RUNTIME, image, unique_id, "hello",
                                check=False, timeout=120)
    finally:
        containerd.ctr("image", "rm", "--sync", image, check=False)
    out = result.stdout.replace("\r\n", "\n")
    assert token not in out + result.stderr
    assert result.returncode == 0, result.stderr
    assert "module[0]=<image-file-with-comma>\n" in out, out
    assert "module[1]" not in out
    assert out.rstrip().endswith("bye")
