"""Initrd writer: newc format, rootfs walk rules, overlay, determinism, /.urunc/ files."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from urunc.guests.linux_initrd import InitrdEntry, urunc_init_entries, write_initrd


@dataclass(frozen=True)
class Member:
    name: str
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    data: bytes


def read_newc(blob: bytes) -> list[Member]:
    """A minimal newc reader, independent of the writer."""
    members: list[Member] = []
    pos = 0
    while True:
        assert blob[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        _, mode, uid, gid, nlink, mtime, size, *_rest = fields
        namesize = fields[11]
        name_start = pos + 110
        name = blob[name_start : name_start + namesize - 1].decode()
        assert blob[name_start + namesize - 1] == 0
        data_start = (name_start + namesize + 3) & ~3
        data = blob[data_start : data_start + size]
        pos = (data_start + size + 3) & ~3
        if name == "TRAILER!!!":
            assert not blob[pos:].strip(b"\0"), "garbage after the trailer"
            assert len(blob) % 512 == 0
            return members
        members.append(Member(name, mode, uid, gid, nlink, mtime, data))


def by_name(path: Path) -> dict[str, Member]:
    return {m.name: m for m in read_newc(path.read_bytes())}


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "bin" / "busybox").write_bytes(
        b"\x7fELF" + bytes(range(256)) * 1200
    )  # > inline limit
    (root / "bin" / "busybox").chmod(0o755)
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc" / "passwd").chmod(0o600)
    (root / "etc" / "shadow-link").symlink_to("/nonexistent/target")
    os.link(root / "etc" / "passwd", root / "etc" / "passwd-hardlink")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "odd name ü").write_bytes(b"x")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return root


def test_rootfs_files_dirs_and_symlinks_keep_type_mode_and_content(
    tmp_path: Path, rootfs: Path
) -> None:
    out = tmp_path / "initrd"
    write_initrd(out, rootfs, [])
    m = by_name(out)
    assert m["bin"].mode == stat.S_IFDIR | 0o755
    assert m["bin/busybox"].mode == stat.S_IFREG | 0o755
    assert m["bin/busybox"].data == (rootfs / "bin" / "busybox").read_bytes()
    assert m["bin/sh"].mode == stat.S_IFLNK | 0o777 and m["bin/sh"].data == b"busybox"
    assert m["etc/shadow-link"].data == b"/nonexistent/target"
    assert m["etc/passwd"].mode == stat.S_IFREG | 0o600
    assert m["tmp"].mode == stat.S_IFDIR | 0o1777
    assert m["odd name ü"].data == b"x"


def test_hard_links_are_independent_copies_and_devices_are_skipped(
    tmp_path: Path, rootfs: Path
) -> None:
    out = tmp_path / "initrd"
    write_initrd(out, rootfs, [])
    m = by_name(out)
    assert m["etc/passwd-hardlink"].data == m["etc/passwd"].data
    assert m["etc/passwd-hardlink"].nlink == 1
    assert "null" not in m


def test_entries_are_sorted_parents_first_with_mtime_zero(
    tmp_path: Path, rootfs: Path
) -> None:
    out = tmp_path / "initrd"
    write_initrd(out, rootfs, [InitrdEntry.file("/.urunc/args", b"sh\0")])
    members = read_newc(out.read_bytes())
    names = [m.name for m in members]
    assert names == sorted(names)
    seen: set[str] = set()
    for name in names:
        parent = name.rpartition("/")[0]
        assert not parent or parent in seen, f"{name} before its directory"
        seen.add(name)
    assert {m.mtime for m in members} == {0}


def test_output_is_deterministic(tmp_path: Path, rootfs: Path) -> None:
    extra = [InitrdEntry.file("/.urunc/args", b"sh\0"), InitrdEntry.symlink("/x", "y")]
    write_initrd(tmp_path / "a", rootfs, extra)
    os.utime(rootfs / "etc" / "passwd", (1, 1))
    write_initrd(tmp_path / "b", rootfs, list(reversed(extra)))
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_extra_entries_override_rootfs_and_get_parent_directories(
    tmp_path: Path, rootfs: Path
) -> None:
    out = tmp_path / "initrd"
    src = tmp_path / "init-binary"
    src.write_bytes(b"INIT")
    src.chmod(0o700)
    write_initrd(
        out,
        rootfs,
        [
            InitrdEntry.file("/etc/passwd", b"new\n", 0o644),
            InitrdEntry.copy("/.urunc/init", src),
            InitrdEntry.directory("/.urunc/empty", 0o700),
            InitrdEntry.symlink("/a/b/link", "../target"),
        ],
    )
    m = by_name(out)
    assert (
        m["etc/passwd"].data == b"new\n"
        and m["etc/passwd"].mode == stat.S_IFREG | 0o644
    )
    assert m[".urunc"].mode == stat.S_IFDIR | 0o755
    assert (
        m[".urunc/init"].data == b"INIT"
        and m[".urunc/init"].mode == stat.S_IFREG | 0o700
    )
    assert m[".urunc/empty"].mode == stat.S_IFDIR | 0o700
    assert stat.S_ISDIR(m["a"].mode) and stat.S_ISDIR(m["a/b"].mode)
    assert m["a/b/link"].data == b"../target"
    assert (m[".urunc/init"].uid, m[".urunc/init"].gid) == (0, 0)


def test_without_rootfs_only_the_extra_entries_are_written(tmp_path: Path) -> None:
    out = tmp_path / "initrd"
    write_initrd(out, None, [InitrdEntry.file("/f", b"1")])
    assert [m.name for m in read_newc(out.read_bytes())] == ["f"]


def test_compressed_output_is_gzip_of_the_same_archive(
    tmp_path: Path, rootfs: Path
) -> None:
    write_initrd(tmp_path / "plain", rootfs, [])
    write_initrd(tmp_path / "gz", rootfs, [], compress=True)
    raw = gzip.decompress((tmp_path / "gz").read_bytes())
    assert read_newc(raw) == read_newc((tmp_path / "plain").read_bytes())


def test_a_missing_rootfs_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    from urunc._errors import HostError

    with pytest.raises(HostError, match="is not a directory"):
        write_initrd(tmp_path / "initrd", tmp_path / "nope", [])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "relative"},
        {"path": "/"},
        {"path": "/x", "data": b"", "symlink_target": "y"},
    ],
)
def test_invalid_entries_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        InitrdEntry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
def test_gnu_cpio_extracts_the_archive(tmp_path: Path, rootfs: Path) -> None:
    out = tmp_path / "initrd"
    write_initrd(out, rootfs, [InitrdEntry.file("/.urunc/args", b"a b\0")])
    dest = tmp_path / "x"
    dest.mkdir()
    with out.open("rb") as f:
        subprocess.run(
            ["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"],
            stdin=f,
            cwd=dest,
            check=True,
        )
    assert (dest / "bin" / "busybox").read_bytes() == (
        rootfs / "bin" / "busybox"
    ).read_bytes()
    assert os.readlink(dest / "bin" / "sh") == "busybox"
    assert (dest / ".urunc" / "args").read_bytes() == b"a b\0"


def test_urunc_init_files_encode_the_process_exactly(tmp_path: Path) -> None:
    init = tmp_path / "urunc-init"
    init.write_bytes(b"ELF")
    mods = tmp_path / "modules"
    mods.mkdir()
    for name in ("virtio.ko", "virtio_mmio.ko", "9p.ko"):
        (mods / name).write_bytes(name.encode())
    (mods / "order").write_text("virtio.ko\nvirtio_mmio.ko\n9p.ko\n")
    entries = urunc_init_entries(
        init=init,
        args=["sh", "-c", "echo 'a  b'", ""],
        env=["A=1 2", "EMPTY="],
        cwd="/srv/my dir",
        net={"ip": "10.0.0.2/24", "gw": "10.0.0.1", "dns": ["1.1.1.1", "8.8.8.8"]},
        hostname="box",
        user=(1000, 100, [10, 11]),
        terminal=True,
        modules=mods,
        module_names=["virtio_mmio", "virtio"],
        root="9p rootfs trans=virtio",
    )
    files = {e.path: e for e in entries}
    assert files["/.urunc/init"].source == init and files["/.urunc/init"].mode == 0o755
    assert files["/.urunc/args"].data == b"sh\0-c\0echo 'a  b'\0\0"
    assert files["/.urunc/env"].data == b"A=1 2\0EMPTY=\0"
    assert files["/.urunc/cwd"].data == b"/srv/my dir"
    assert (
        files["/.urunc/net"].data
        == b"ip=10.0.0.2/24\ngw=10.0.0.1\ndns=1.1.1.1\ndns=8.8.8.8\n"
    )
    assert files["/.urunc/hostname"].data == b"box"
    assert files["/.urunc/user"].data == b"1000 100 10 11"
    assert files["/.urunc/tty"].data == b""
    assert files["/.urunc/root"].data == b"9p rootfs trans=virtio\n"
    assert files["/.urunc/modules/order"].data == b"virtio.ko\nvirtio_mmio.ko\n"
    assert "/.urunc/modules/9p.ko" not in files


@pytest.mark.parametrize(
    "kwargs",
    [
        {"args": []},
        {"args": ["a\0b"]},
        {"args": ["x"], "env": ["A=\0"]},
        {"args": ["x"], "net": {"ip": "1\n"}},
    ],
)
def test_urunc_init_files_refuse_what_the_format_cannot_carry(
    tmp_path: Path, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        urunc_init_entries(init=tmp_path / "init", **kwargs)  # type: ignore[arg-type]


def test_module_names_pull_in_their_dependencies_in_load_order(tmp_path: Path) -> None:
    mods = tmp_path / "modules"
    mods.mkdir()
    order = ["virtio_ring.ko", "virtio.ko", "virtio_mmio.ko", "failover.ko", "9p.ko"]
    for name in order:
        (mods / name).write_bytes(b"")
    (mods / "order").write_text("\n".join(order) + "\n")
    (mods / "deps").write_text(
        "virtio_ring.ko:\nvirtio.ko: virtio_ring.ko\n"
        "virtio_mmio.ko: virtio_ring.ko virtio.ko\nfailover.ko:\n9p.ko:\n"
    )
    entries = urunc_init_entries(
        init=tmp_path / "init", args=["x"], modules=mods, module_names=["virtio_mmio"]
    )
    files = {e.path: e for e in entries}
    assert (
        files["/.urunc/modules/order"].data
        == b"virtio_ring.ko\nvirtio.ko\nvirtio_mmio.ko\n"
    )
