"""Values that reach a monitor's own option syntax: escaped where it has an escape, refused where not."""

from __future__ import annotations

import pytest
from _plans import plan

from urunc import _errors, guests, monitors


@pytest.mark.parametrize("path", ["/run/u,x/c1/initrd", "/run/u x/c1/initrd"])
def test_qemu_refuses_an_initrd_path_its_multiboot_loader_would_split(path: str) -> None:
    p = plan(files={"initrd": path})
    with pytest.raises(_errors.PlanError) as info:
        monitors.get("qemu").argv(p, guests.get("unikraft"), None)
    assert repr(path) in str(info.value) and "\n" not in str(info.value)


def test_qemu_escapes_commas_in_drive_and_qmp_paths() -> None:
    p = plan(guest="osv", block="/b/rootfs/d,isk.img", state_dir="/run/u,x/c1")
    argv = monitors.get("qemu").argv(p, guests.get("osv"), None)
    assert "file=/b/rootfs/d,,isk.img,if=none,id=d0,format=raw" in argv
    assert any(a.startswith("unix:/run/u,,x/c1/") for a in argv)


def test_image_files_held_by_the_init_reach_qemu_as_fd_paths() -> None:
    p = plan(kernel="/proc/self/fd/5", files={"initrd": "/proc/self/fd/6"})
    argv = monitors.get("qemu").argv(p, guests.get("unikraft"), None)
    assert argv[argv.index("-kernel") + 1] == "/proc/self/fd/5"
    assert argv[argv.index("-initrd") + 1] == "/proc/self/fd/6"
