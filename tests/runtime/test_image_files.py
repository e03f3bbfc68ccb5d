"""The image's kernel, initrd and disk reach the monitor as the files create checked, and only those.

The sample guest prints every Multiboot module QEMU hands it (``module[i]=<first line>``),
so these tests see exactly which files reached the guest. Host "secrets" are files
outside the bundle with random contents; the image's own files have known contents.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tests.helpers.bundles import create, hello_bundle, leftovers, urunc, wait_status

INITRD_ANNOTATION = "com.urunc.unikernel.initrd"


def _host_secret(tmp_path: Path) -> tuple[Path, str]:
    token = "host-secret-" + secrets.token_hex(8)
    directory = tmp_path / "host"
    directory.mkdir()
    path = directory / "secret.txt"
    path.write_text(token + "\n")
    return path, token


def _boot(state_root: Path, bundle: Path, cid: str, between: object = None) -> tuple[str, str]:
    """create, then BETWEEN() (a change to the rootfs), then start; (console text, start's stderr)."""
    out = bundle / "console.out"
    code, text = create(state_root, bundle, cid, console=out)
    assert code == 0, text
    if callable(between):
        between()
    started = urunc(state_root, "start", cid)
    if started.returncode == 0:
        wait_status(state_root, cid, "stopped", timeout=60)
    assert urunc(state_root, "delete", "--force", cid).returncode == 0
    assert leftovers(state_root) == []
    return out.read_text(errors="replace"), started.stderr


def test_a_comma_in_the_initrd_path_gives_the_guest_one_image_file_and_no_host_file(
        tmp_path: Path, state_root: Path) -> None:
    secret, token = _host_secret(tmp_path)
    # The rootfs holds a file `m` and the file `m,<secret path>`: both inside it, so
    # create's checks pass; QEMU's multiboot loader would split the path at the comma.
    hostile = "/m," + str(secret)
    bundle = hello_bundle(tmp_path / "b", annotations={INITRD_ANNOTATION: hostile})
    rootfs = bundle / "rootfs"
    (rootfs / "m").write_text("image-file-m\n")
    inside = rootfs / hostile.lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("image-file-with-comma\n")
    text, err = _boot(state_root, bundle, "comma")
    assert token not in text
    assert "module[0]=<image-file-with-comma>\n" in text, text + err
    assert "module[1]" not in text
    assert text.rstrip().endswith("bye")


def test_an_initrd_swapped_for_a_host_symlink_after_create_is_not_what_boots(
        tmp_path: Path, state_root: Path) -> None:
    secret, token = _host_secret(tmp_path)
    bundle = hello_bundle(tmp_path / "b", annotations={INITRD_ANNOTATION: "/initrd.txt"})
    initrd = bundle / "rootfs" / "initrd.txt"
    initrd.write_text("image-initrd\n")

    def swap() -> None:
        initrd.unlink()
        initrd.symlink_to(secret)  # absolute, to the host file
    text, err = _boot(state_root, bundle, "swap-initrd", swap)
    assert token not in text
    assert "module[0]=<image-initrd>\n" in text, text + err
    assert text.rstrip().endswith("bye")


def test_a_kernel_swapped_after_create_still_boots_the_checked_kernel(tmp_path: Path, state_root: Path) -> None:
    secret, _token = _host_secret(tmp_path)
    bundle = hello_bundle(tmp_path / "b", args=["hello", "checked"])
    kernel = bundle / "rootfs" / "unikernel" / "hello.elf"

    def swap() -> None:
        kernel.rename(kernel.with_name("moved.elf"))
        kernel.symlink_to(secret)  # QEMU would fail to load this file as a kernel
    text, err = _boot(state_root, bundle, "swap-kernel", swap)
    assert "argv[1]=<checked>\n" in text, text + err
    assert text.rstrip().endswith("bye")


def test_a_kernel_replaced_by_a_fifo_after_create_neither_blocks_nor_boots_it(
        tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "fifo"])
    kernel = bundle / "rootfs" / "unikernel" / "hello.elf"

    def swap() -> None:
        kernel.unlink()
        os.mkfifo(kernel)
    text, err = _boot(state_root, bundle, "swap-fifo", swap)
    assert "argv[1]=<fifo>\n" in text, text + err


def test_an_image_file_gone_at_create_fails_create_in_one_line(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", annotations={INITRD_ANNOTATION: "/missing.txt"})
    code, text = create(state_root, bundle, "gone")
    assert code != 0
    assert "missing.txt" in text and len(text.strip().splitlines()) == 1, text
    assert leftovers(state_root) == []
