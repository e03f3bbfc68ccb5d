"""The device manifest a Solo5 unikernel carries in its ELF file (stdlib only).

Solo5's ``include/mft_abi.h`` defines it: a PT_NOTE segment holding a single
note named ``Solo5`` of type ``MFT1`` (0x3154464d). The tender finds the note
through the program headers, skips the 20-byte note header plus padding to
an 8-byte boundary (the descriptor's internal alignment), and reads::

    struct mft { uint32_t version; uint32_t entries; struct mft_entry e[]; }
    struct mft_entry { char name[68]; uint32_t type; ...tender-private... }

``version`` is 1; entry 0 is ``MFT_RESERVED_FIRST`` with an empty name; types
1 and 2 are ``BLOCK_BASIC`` and ``NET_BASIC``. The entry size is derived from
the descriptor size rather than assumed (104 bytes on LP64 upstream; forks
that add device types grow the union), must be a multiple of 8, and only
``name`` and ``type`` are read.
The tender refuses to start unless every declared device is attached.
"""

from __future__ import annotations

from urunc import _errors
from urunc._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

NOTE_NAME = b"Solo5\0"
NOTE_TYPE_MFT1 = 0x3154464D
MFT_VERSION = 1
MFT_MAX_ENTRIES = 64
MFT_NAME_SIZE = 68
MFT_DEV_BLOCK_BASIC = 1
MFT_DEV_NET_BASIC = 2
MFT_RESERVED_FIRST = 1 << 30
TYPE_NAMES = {MFT_DEV_BLOCK_BASIC: "BLOCK_BASIC", MFT_DEV_NET_BASIC: "NET_BASIC"}

_PT_NOTE = 4
_NOTE_ALIGN = 8
_MAX_NOTE = 64 * 1024
_MAX_PHDRS = 4096


class Device(Record):
    __slots__ = ("name", "kind")   # kind: "NET_BASIC", "BLOCK_BASIC" or "TYPE<n>"
    name: str
    kind: str


class Manifest(Record):
    __slots__ = ("devices",)
    devices: tuple[Device, ...]

    def first(self, kind: str) -> str | None:
        for device in self.devices:
            if device.kind == kind:
                return str(device.name)
        return None


def _bad(path: str, why: str) -> _errors.PlanError:
    return _errors.PlanError(f"malformed solo5 manifest in {path}: {why}")


def read(path: str) -> Manifest | None:
    """The manifest of the ELF file at ``path``; None when it carries no Solo5 manifest note."""
    from urunc._files import open_regular

    try:
        # PATH was resolved inside the rootfs: not a FIFO or a device put there since (those would
        # block or never end), nor a symlink
        with open(open_regular(path, nofollow=True), "rb") as f:
            return _parse(f, path)
    except OSError as exc:
        raise _errors.PlanError(f"cannot read {path}: {exc.strerror}") from None


def _int(data: bytes, offset: int, size: int, order: str) -> int:
    return int.from_bytes(data[offset:offset + size], "big" if order == "big" else "little")


def _parse(f: BinaryIO, path: str) -> Manifest | None:
    ident = f.read(64)
    if len(ident) < 64 or ident[:4] != b"\x7fELF":
        return None
    if ident[4] != 2:          # ELFCLASS64: Solo5 builds nothing else
        return None
    order = {1: "little", 2: "big"}.get(ident[5])
    if order is None:
        raise _bad(path, f"unknown elf data encoding {ident[5]}")

    def u(data: bytes, offset: int, size: int) -> int:
        return _int(data, offset, size, order)

    phoff, phentsize, phnum = u(ident, 32, 8), u(ident, 54, 2), u(ident, 56, 2)
    if phnum == 0:
        return None
    if phentsize < 56 or phnum > _MAX_PHDRS:
        raise _bad(path, f"program header table ({phnum} entries of {phentsize} bytes)")
    size = f.seek(0, 2)   # offsets come from the file: one past its end (even 2**64-1) is truncation
    if phoff > size:
        raise _bad(path, f"program header table at offset {phoff} past the end ({size} bytes)")
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    if len(table) != phentsize * phnum:
        raise _bad(path, "truncated program header table")
    for i in range(phnum):
        ph = table[i * phentsize:(i + 1) * phentsize]
        if u(ph, 0, 4) != _PT_NOTE:
            continue
        offset, filesz = u(ph, 8, 8), u(ph, 32, 8)
        if filesz < 20:
            continue
        if offset > size:
            raise _bad(path, f"note at offset {offset} past the end ({size} bytes)")
        f.seek(offset)
        header = f.read(20)
        if len(header) != 20:
            raise _bad(path, "truncated note header")
        namesz, descsz, ntype = u(header, 0, 4), u(header, 4, 4), u(header, 8, 4)
        if namesz != len(NOTE_NAME) or header[12:18] != NOTE_NAME or ntype != NOTE_TYPE_MFT1:
            continue
        pad = (-20) % _NOTE_ALIGN   # the descriptor's first bytes, before its 8-aligned struct
        if descsz <= pad or descsz > _MAX_NOTE or filesz < 20 + descsz:
            raise _bad(path, f"note descriptor size {descsz} (segment holds {filesz} bytes)")
        f.seek(offset + 20 + pad)
        body = f.read(descsz - pad)
        if len(body) != descsz - pad:
            raise _bad(path, "truncated note descriptor")
        return _decode(body, order, path)
    return None


def _decode(body: bytes, order: str, path: str) -> Manifest:
    def u(data: bytes, offset: int, size: int) -> int:
        return _int(data, offset, size, order)

    if len(body) < 8:
        raise _bad(path, f"descriptor of {len(body)} bytes")
    version, entries = u(body, 0, 4), u(body, 4, 4)
    if version != MFT_VERSION:
        raise _bad(path, f"version {version} (expected {MFT_VERSION})")
    if not 1 <= entries <= MFT_MAX_ENTRIES:
        raise _bad(path, f"{entries} entries (allowed 1..{MFT_MAX_ENTRIES})")
    stride, rest = divmod(len(body) - 8, entries)
    if rest or stride < MFT_NAME_SIZE + 4 or stride % 8:   # entries hold 8-byte members
        raise _bad(path, f"{len(body) - 8} bytes of entries do not hold {entries} entries")
    devices: list[Device] = []
    for i in range(entries):
        entry = body[8 + i * stride:8 + (i + 1) * stride]
        raw_name, kind = entry[:MFT_NAME_SIZE], u(entry, MFT_NAME_SIZE, 4)
        if raw_name[MFT_NAME_SIZE - 1] != 0:
            raise _bad(path, f"entry {i} name is not terminated")
        name_bytes = raw_name.split(b"\0", 1)[0]
        if i == 0:
            if kind != MFT_RESERVED_FIRST or name_bytes:
                raise _bad(path, "entry 0 is not the reserved first entry")
            continue
        try:
            name = name_bytes.decode("ascii")
        except UnicodeDecodeError:
            raise _bad(path, f"entry {i} name {name_bytes!r} is not ascii") from None
        if not name or not name.isalnum():
            raise _bad(path, f"entry {i} name {name!r} (solo5 names are [A-Za-z0-9]+)")
        devices.append(Device(name=name, kind=TYPE_NAMES.get(kind, f"TYPE{kind}")))
    return Manifest(devices=tuple(devices))
