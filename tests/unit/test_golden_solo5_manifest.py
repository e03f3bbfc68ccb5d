"""The Solo5 manifest note: parsed from real ELF layouts, malformed notes refused, names attached."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from _bundles import build
from _plans import elf_with_note, manifest_desc

from urunc import _errors
from urunc.guests import solo5_manifest
from urunc.guests.solo5_manifest import Device, Manifest

NET, BLOCK = 2, 1


def write(tmp: object, data: bytes, name: str = "k.elf") -> str:
    path = os.path.join(str(tmp), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_reads_names_and_types(tmp_path: object) -> None:
    path = write(tmp_path, elf_with_note(manifest_desc([(b"service0", NET), (b"storage", BLOCK), (b"mgmt", NET)])))
    manifest = solo5_manifest.read(path)
    assert manifest == Manifest(devices=(Device(name="service0", kind="NET_BASIC"),
                                         Device(name="storage", kind="BLOCK_BASIC"),
                                         Device(name="mgmt", kind="NET_BASIC")))
    assert manifest.first("NET_BASIC") == "service0" and manifest.first("BLOCK_BASIC") == "storage"


def test_entry_size_follows_the_descriptor(tmp_path: object) -> None:
    # forks that add device types (PCI_BASIC) grow struct mft_entry; only name and type are read
    path = write(tmp_path, elf_with_note(manifest_desc([(b"net0", NET), (b"pci0", 3)], size=136)))
    assert solo5_manifest.read(path) == Manifest(devices=(Device(name="net0", kind="NET_BASIC"),
                                                          Device(name="pci0", kind="TYPE3")))


def test_no_note_or_not_elf_is_none(tmp_path: object) -> None:
    assert solo5_manifest.read(write(tmp_path, b"#!/bin/sh\n")) is None
    other = elf_with_note(manifest_desc([(b"x", NET)]), name=b"GNU\0")
    assert solo5_manifest.read(write(tmp_path, other)) is None
    assert solo5_manifest.read(write(tmp_path, elf_with_note(b"\0" * 16, ntype=1))) is None


MALFORMED = [
    (elf_with_note(manifest_desc([(b"x", NET)], version=2)), "version 2"),
    (elf_with_note(manifest_desc([(b"x", NET)])[:-10]), "do not hold 2 entries"),
    (elf_with_note(manifest_desc([(b"x", NET)]), descsz=4096), "note descriptor size 4096"),
    (elf_with_note(manifest_desc([(b"a" * 68, NET)])), "name is not terminated"),
    (elf_with_note(manifest_desc([(b"bad-name", NET)])), "name 'bad-name'"),
    (elf_with_note(b"\0" * 4 + b"\x01\0\0\0\0\0\0\0"), "0 entries"),
    (elf_with_note(manifest_desc([(b"x", NET)]).replace(b"\0\0\0\x40", b"\0\0\0\0", 1)),
     "entry 0 is not the reserved first entry"),
    (elf_with_note(manifest_desc([(b"x", NET)]))[:200], "truncated note"),
]


@pytest.mark.parametrize("data, why", MALFORMED, ids=[why for _, why in MALFORMED])
def test_malformed_note_is_refused(tmp_path: object, data: bytes, why: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(_errors.PlanError, match=f"malformed solo5 manifest in {path}: .*{why}"):
        solo5_manifest.read(path)


ASM = r"""
    .text
    .globl _start
_start:
    hlt
    .section .note.solo5.manifest, "a", @note
    .balign 4
    .long 6                       /* n_namesz */
    .long 4 + 8 + 3 * 104         /* n_descsz: alignment padding + struct mft */
    .long 0x3154464d              /* MFT1 */
    .asciz "Solo5"
    .balign 4
    .long 0                       /* pad struct mft to 8 */
    .long 1                       /* version */
    .long 3                       /* entries */
    .fill 68, 1, 0
    .long 0x40000000              /* MFT_RESERVED_FIRST */
    .fill 32, 1, 0
    .ascii "service"
    .fill 61, 1, 0
    .long 2                       /* NET_BASIC */
    .fill 32, 1, 0
    .ascii "storage"
    .fill 61, 1, 0
    .long 1                       /* BLOCK_BASIC */
    .fill 32, 1, 0
"""


@pytest.mark.skipif(not (shutil.which("as") and shutil.which("ld")), reason="binutils (as, ld) not installed")
def test_note_linked_by_binutils(tmp_path: object) -> None:
    src, obj, elf = (os.path.join(str(tmp_path), n) for n in ("m.s", "m.o", "m.elf"))
    with open(src, "w") as f:
        f.write(ASM)
    subprocess.run(["as", "--64", "-o", obj, src], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-static", "-o", elf, obj], check=True)
    headers = subprocess.run(["readelf", "-lW", elf], check=True, capture_output=True, text=True).stdout
    assert "NOTE" in headers   # ld put the note section in a PT_NOTE segment, as Solo5's linker scripts do
    assert solo5_manifest.read(elf) == Manifest(devices=(Device(name="service", kind="NET_BASIC"),
                                                         Device(name="storage", kind="BLOCK_BASIC")))


KERNEL = elf_with_note(manifest_desc([(b"service0", NET), (b"storage", BLOCK)]))


def test_create_attaches_the_declared_names(tmp_path: object) -> None:
    plan = build(str(tmp_path), {"unikernelType": "mirage", "hypervisor": "spt", "block": "/disk.img"},
                 kernel=KERNEL, files={"disk.img": b"d"})
    assert plan.guest == "mirage" and plan.devices == {"net": "service0", "block": "storage"}


def test_annotations_override_the_manifest(tmp_path: object) -> None:
    plan = build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt", "block": "/disk.img",
                                 "netDevice": "other", "blockDevice": "disk1"},
                 kernel=b"\x7fELF not even read", files={"disk.img": b"d"})
    assert plan.devices == {"net": "other", "block": "disk1"}


def test_kernel_without_manifest_fails_at_create(tmp_path: object) -> None:
    with pytest.raises(_errors.PlanError, match="solo5 kernel .*app.elf carries no solo5 manifest note"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt"}, kernel=b"#!/bin/sh\n")


def test_block_without_declared_block_device_fails_at_create(tmp_path: object) -> None:
    kernel = elf_with_note(manifest_desc([(b"service", NET)]))
    with pytest.raises(_errors.PlanError, match="declares no block device"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt", "block": "/disk.img"},
              kernel=kernel, files={"disk.img": b"d"})


def test_rumprun_block_needs_a_mount_point(tmp_path: object) -> None:
    with pytest.raises(_errors.PlanError, match="rumprun mounts its block device at .*blkMntPoint"):
        build(str(tmp_path), {"unikernelType": "rumprun", "hypervisor": "spt", "block": "/disk.img"},
              kernel=KERNEL, files={"disk.img": b"d"})
    plan = build(str(tmp_path), {"unikernelType": "rumprun", "hypervisor": "spt", "block": "/disk.img",
                                 "blkMntPoint": "/data"}, kernel=KERNEL, files={"disk.img": b"d"})
    assert plan.block_mountpoint == "/data" and plan.devices == {"net": "service0", "block": "storage"}


def test_osv_disk_is_its_root(tmp_path: object) -> None:
    with pytest.raises(_errors.PlanError, match="osv mounts its block device as the root filesystem, not at /data"):
        build(str(tmp_path), {"unikernelType": "osv", "block": "/disk.img", "blkMntPoint": "/data"},
              files={"disk.img": b"d"})
