#!/usr/bin/python3
"""Extract the uncompressed ELF vmlinux from an x86 bzImage (vmlinuz).

The compressed payload's offset and length are in the boot protocol header
(payload_offset at 0x248, payload_length at 0x24c, both relative to the
protected-mode code that starts after the setup sectors); its format is told
by its magic. xz, lzma and gzip are decompressed with the stdlib; zstd, lz4,
bzip2 and lzo fall back to the matching command-line tool.
Usage: extract-vmlinux.py VMLINUZ OUT
"""

import bz2
import gzip
import lzma
import struct
import subprocess
import sys

MAGICS = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b", "gzip"),
    (b"\x5d\x00\x00", "lzma"),
    (b"BZh", "bzip2"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x89LZO", "lzo"),
)
TOOLS = {"zstd": ["zstd", "-dc"], "lz4": ["lz4", "-dc"], "lzo": ["lzop", "-dc"]}


def decompress(kind: str, data: bytes) -> bytes:
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "bzip2":
        return bz2.decompress(data)
    return subprocess.run(TOOLS[kind], input=data, stdout=subprocess.PIPE, check=True).stdout


def main() -> int:
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        image = f.read()
    if image[0x202:0x206] != b"HdrS":
        print(f"extract-vmlinux: {src}: not a bzImage", file=sys.stderr)
        return 1
    setup_sects = image[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    payload_offset, payload_length = struct.unpack_from("<II", image, 0x248)
    payload = image[pm_start + payload_offset : pm_start + payload_offset + payload_length]
    kind = next((k for magic, k in MAGICS if payload.startswith(magic)), None)
    if kind is None:
        print(f"extract-vmlinux: {src}: unknown payload magic {payload[:6].hex()}", file=sys.stderr)
        return 1
    elf = decompress(kind, payload)
    if not elf.startswith(b"\x7fELF"):
        print(f"extract-vmlinux: {src}: {kind} payload is not an ELF image", file=sys.stderr)
        return 1
    with open(out, "wb") as f:
        f.write(elf)
    print(f"extract-vmlinux: {kind} payload, {len(elf)} bytes -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
