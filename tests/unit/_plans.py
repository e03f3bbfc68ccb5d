"""Plans and networks for the pure guest × monitor tests (no host side effects)."""

from __future__ import annotations

import struct

from urunc.unikernel.net import NetInfo
from urunc.unikernel.plan import Plan

NET = NetInfo(ip="10.213.0.5", prefix=24, gateway="10.213.0.1", mac="02:42:0a:d5:00:05",
              dns="10.213.0.1", tap="tap-c1", hostname="c1")


def plan(**overrides: object) -> Plan:
    values: dict[str, object] = dict(
        container_id="c1", bundle="/b", rootfs="/b/rootfs", state_dir="/run/urunc/c1",
        guest="unikraft", monitor="qemu", monitor_path="/usr/bin/qemu-system-x86_64", accel="tcg",
        kernel="/b/rootfs/unikernel/app.elf", initrd="", block="", block_mountpoint="", version="",
        memory_mib=64, vcpus=1,
        args=("app", "-v"), env=("PATH=/bin", "A=b"), cwd="/", hostname="c1",
        netns="none", uid=0, gid=0, additional_gids=(), seccomp=False, terminal=False,
        files={}, devices={}, mounts=(), exec_ports=0, template="", template_limit_mib=4096,
    )
    values.update(overrides)
    return Plan(**values)


NOTE_NAME = b"Solo5\0"
MFT1 = 0x3154464D
ENTRY_SIZE = 104   # sizeof(struct mft_entry) on LP64, upstream Solo5


def mft_entry(name: bytes, kind: int, size: int = ENTRY_SIZE) -> bytes:
    return name.ljust(68, b"\0") + struct.pack("<I", kind) + b"\0" * (size - 72)


def manifest_desc(entries: list[tuple[bytes, int]], version: int = 1, size: int = ENTRY_SIZE) -> bytes:
    """n_desc of a Solo5 MFT1 note: 4 bytes of alignment padding, then struct mft."""
    body = struct.pack("<II", version, len(entries) + 1) + mft_entry(b"", 1 << 30, size)
    body += b"".join(mft_entry(n, k, size) for n, k in entries)
    return b"\0" * 4 + body


def elf_with_note(desc: bytes, name: bytes = NOTE_NAME, ntype: int = MFT1, descsz: int | None = None) -> bytes:
    """A minimal ELF64 x86-64 executable whose only program header is a PT_NOTE holding one note."""
    note = struct.pack("<III", len(name), len(desc) if descsz is None else descsz, ntype)
    note += name.ljust((len(name) + 3) & ~3, b"\0") + desc
    note_off = 64 + 56
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x100000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    return ehdr + phdr + note
