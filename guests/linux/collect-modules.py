#!/usr/bin/python3
"""Copy kernel modules and their dependencies, and write their load order.

Usage: collect-modules.py MODULES_DIR OUT_DIR NAME...
MODULES_DIR is lib/modules/<release> of an extracted kernel package (which has
no modules.dep: depmod runs at install time), so dependencies are read from
each module's own .modinfo ELF section ("depends=a,b"). OUT_DIR/order lists
one file name per line, dependencies first; OUT_DIR/deps has a
"name.ko: dep.ko..." line per module with all it needs, in load order. Compressed modules (.ko.xz,
.ko.gz, .ko.zst) are stored decompressed so the guest's init can hand them to
finit_module without a decompressor. A NAME built into the kernel is skipped.
"""

import gzip
import lzma
import os
import struct
import subprocess
import sys


def load(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc"], input=data, stdout=subprocess.PIPE, check=True).stdout
    return data


def modinfo(elf: bytes) -> dict[str, list[str]]:
    """The key=value strings of an ELF64 little-endian module's .modinfo."""
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        if elf[stroff + name : elf.index(b"\0", stroff + name)] == b".modinfo":
            info: dict[str, list[str]] = {}
            for item in elf[off : off + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
            return info
    return {}


def modname(path: str) -> str:
    base = os.path.basename(path)
    return base[: base.index(".ko")].replace("-", "_")


def main() -> int:
    moddir, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    paths: dict[str, str] = {}
    for root, _, files in os.walk(os.path.join(moddir, "kernel")):
        for fname in files:
            if ".ko" in fname:
                paths[modname(fname)] = os.path.join(root, fname)
    with open(os.path.join(moddir, "modules.builtin")) as f:
        builtin = {modname(line.strip()) for line in f if line.strip()}

    order: list[str] = []
    blobs: dict[str, bytes] = {}
    direct: dict[str, list[str]] = {}

    # A soft dependency ("softdep=pre: crypto-crc32c") names an alias; it is
    # honoured when one of the requested modules provides that alias.
    aliases: dict[str, str] = {}
    for name in names:
        key = name.replace("-", "_")
        if key in paths:
            for alias in modinfo(load(paths[key])).get("alias", []):
                aliases.setdefault(alias, key)

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in order or name in builtin:
            return
        if name in chain:
            raise SystemExit(f"collect-modules: dependency cycle {' -> '.join(chain + (name,))}")
        if name not in paths:
            raise SystemExit(f"collect-modules: no module {name}")
        blobs[name] = load(paths[name])
        info = modinfo(blobs[name])
        deps = [d.replace("-", "_") for d in ",".join(info.get("depends", [])).split(",") if d]
        for soft in info.get("softdep", []):
            pre = soft.partition("pre:")[2].partition("post:")[0].split()
            deps += [aliases[a] for a in pre if a in aliases]
        direct[name] = [d for d in deps if d not in builtin]
        for dep in deps:
            visit(dep, chain + (name,))
        order.append(name)

    for name in names:
        visit(name.replace("-", "_"), ())

    def closure(name: str) -> set[str]:
        found = {name}
        for dep in direct[name]:
            found |= closure(dep)
        return found

    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        os.unlink(os.path.join(out, old))
    for name in order:
        with open(os.path.join(out, name + ".ko"), "wb") as ko:
            ko.write(blobs[name])
    with open(os.path.join(out, "order"), "w") as f:
        f.write("".join(name + ".ko\n" for name in order))
    with open(os.path.join(out, "deps"), "w") as f:
        for name in order:
            needed = sorted(closure(name) - {name}, key=order.index)
            f.write(f"{name}.ko:" + "".join(f" {d}.ko" for d in needed) + "\n")
    print("collect-modules: " + " ".join(order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
