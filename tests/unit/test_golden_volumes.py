"""Volumes pinned: the spec's mounts → the Plan's, QEMU's 9p devices, Unikraft's vfs.fstab."""

from __future__ import annotations

from pathlib import Path

import pytest
from _plans import plan

from urunc import _errors, guests, monitors
from urunc.unikernel import mounts


def _bind(source: Path, destination: str, *options: str) -> dict[str, object]:
    return {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind", *options]}


def test_spec_mounts_are_classified_and_ordered_parents_first(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    raw = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev/shm", "type": "bind", "source": str(tmp_path / "d"), "options": ["rbind"]},
        _bind(tmp_path / "d", "/data/inner", "ro"),
        _bind(tmp_path / "f", "/etc/app.conf", "ro"),
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k", "mode=755"]},
        _bind(tmp_path / "d", "/data/", "rw"),
    ]
    # By depth, then in the spec's order: /data before /data/inner, whatever the spec said.
    assert mounts.from_spec(raw) == [
        ("tmpfs", "tmpfs", "/run", False, "size=64k,mode=755"),
        ("share", str(tmp_path / "d"), "/data", False, ""),
        ("share", str(tmp_path / "d"), "/data/inner", True, ""),
        ("file", str(tmp_path / "f"), "/etc/app.conf", True, ""),
    ]


def test_unikernels_skip_engine_files_and_tmpfs_but_refuse_user_files(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("x")
    engine = [_bind(tmp_path / "hosts", "/etc/hosts"), {"destination": "/run", "type": "tmpfs", "source": "t"}]
    assert mounts.for_guest(engine, "unikraft", True, False, False, "qemu") == ()
    with pytest.raises(_errors.PlanError, match=r"^mount /etc/app.conf .*cannot mount a single file"):
        mounts.for_guest([_bind(tmp_path / "hosts", "/etc/app.conf")], "unikraft", True, False, False, "qemu")
    with pytest.raises(_errors.PlanError, match=r"^mount /data .*solo5 on hvt has no shared filesystem"):
        mounts.for_guest([_bind(tmp_path, "/data")], "solo5", False, False, False, "hvt")


SHARES = (("share", "/srv/a,b", "/data", False, ""), ("share", "/srv/cfg", "/etc/app", True, ""))


@pytest.mark.parametrize("uid, model", [(0, "passthrough"), (1000, "none")])
def test_qemu_gives_each_share_a_9p_device(uid: int, model: str) -> None:
    argv = monitors.get("qemu").argv(plan(mounts=SHARES, uid=uid), guests.get("unikraft"), None)
    i = argv.index("-fsdev")
    assert argv[i:i + 8] == [
        "-fsdev", f"local,id=fs0,path=/srv/a,,b,security_model={model}",
        "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=urunc0",
        "-fsdev", f"local,id=fs1,path=/srv/cfg,security_model={model},readonly=on",
        "-device", "virtio-9p-pci,fsdev=fs1,mount_tag=urunc1",
    ]


def test_qemu_microvm_shares_use_virtio_mmio() -> None:
    argv = monitors.get("qemu").argv(plan(guest="linux", mounts=SHARES[:1]), guests.get("linux"), None)
    assert "virtio-9p-device,fsdev=fs0,mount_tag=urunc0" in argv


def test_unikraft_mounts_shares_through_vfs_fstab_on_a_ramfs_root() -> None:
    cmdline = guests.get("unikraft").cmdline(plan(mounts=SHARES), None)
    assert cmdline == ('vfs.fstab=[ "none:/:ramfs" "urunc0:/data:9pfs:::mkmp" "urunc1:/etc/app:9pfs:0x1::mkmp" ] '
                       'env.vars=[ PATH=/bin A=b ] -- app -v')


def test_unikraft_with_an_initrd_root_adds_shares_after_it() -> None:
    cmdline = guests.get("unikraft").cmdline(plan(initrd="/b/rootfs/i.cpio", mounts=SHARES[1:]), None)
    assert cmdline.startswith('vfs.fstab=[ "initrd0:/:extract:::" "urunc0:/etc/app:9pfs:0x1::mkmp" ] ')


@pytest.mark.parametrize("destination", ["/a:b", '/a"b', "/a b"])
def test_unikraft_refuses_a_mount_point_its_fstab_cannot_hold(destination: str) -> None:
    with pytest.raises(_errors.PlanError, match=f"^mount {destination}"):
        guests.get("unikraft").prepare(plan(mounts=(("share", "/srv", destination, False, ""),)))


def test_unikraft_before_0_16_1_takes_no_volume() -> None:
    with pytest.raises(_errors.PlanError, match=r"^mount /data: unikraft 0.15.0 takes no volumes"):
        guests.get("unikraft").prepare(plan(version="0.15.0", mounts=SHARES[:1]))


def test_qemu_shares_a_root_first_with_its_own_tag() -> None:
    root = mounts.root_share("/b/rootfs", True)
    argv = monitors.get("qemu").argv(plan(guest="linux", mounts=(root, *SHARES[:1])), guests.get("linux"), None)
    i = argv.index("-fsdev")
    assert argv[i:i + 4] == ["-fsdev", "local,id=fs0,path=/b/rootfs,security_model=passthrough,readonly=on",
                             "-device", "virtio-9p-device,fsdev=fs0,mount_tag=rootfs"]
    assert "virtio-9p-device,fsdev=fs1,mount_tag=urunc0" in argv


def test_unikraft_mount_rootfs_is_the_9pfs_root() -> None:
    root = mounts.root_share("/b/rootfs", False)
    cmdline = guests.get("unikraft").cmdline(plan(mounts=(root, *SHARES[:1])), None)
    assert cmdline.startswith('vfs.fstab=[ "rootfs:/:9pfs:::" "urunc0:/data:9pfs:::mkmp" ] ')


def test_rootfs_size_walk_stops_at_the_limit(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 100)
    (tmp_path / "link").symlink_to("/usr")  # never followed
    assert mounts.rootfs_larger_than(str(tmp_path), 99)
    assert not mounts.rootfs_larger_than(str(tmp_path), 100)
