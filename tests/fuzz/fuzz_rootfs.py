"""Paths from an image resolved inside its rootfs (urunc.unikernel.rootfs.resolve, regular_file).

Input, one item a line: the first line is the path to resolve; then ``d NAME`` (directory),
``f NAME`` (file), ``l NAME TARGET`` (symlink, TARGET may be anything, absolute or climbing),
``p NAME`` (FIFO), made in that order under the rootfs (lines that cannot be made are skipped).
Correct result: a path under the rootfs with no ``..``, no ``.`` and no symlink along it (every
existing component a real directory or the final file), which is where the kernel's own
resolution rooted at the rootfs (RESOLVE_IN_ROOT) lands. Error: BundleError, one line.
"""

from __future__ import annotations

import os
import stat

from _fuzzlib import fresh, guard, one_line

from urunc import _errors
from urunc.unikernel import rootfs as _rootfs


def _make(rootfs: str, lines: list[bytes]) -> None:
    for line in lines[:32]:
        kind, _, rest = line.partition(b" ")
        name, _, target = rest.partition(b" ")
        rel = os.fsdecode(name).strip("/")
        if not rel or "\0" in rel or ".." in rel.split("/"):
            continue
        path = os.path.join(rootfs, rel)
        try:
            if kind == b"d":
                os.makedirs(path)
            elif kind == b"f":
                with open(path, "xb"):
                    pass
            elif kind == b"l" and target and b"\0" not in target:
                os.symlink(target, path)
            elif kind == b"p":
                os.mkfifo(path)
        except (OSError, ValueError):
            continue


def _in_root(rootfs: str, path: str) -> str:
    """Resolve PATH the way the kernel does with RESOLVE_IN_ROOT (the reference), or "" when it fails."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        here = os.path.join(rootfs, *resolved, part)
        if os.path.islink(here):
            hops += 1
            if hops > 40:
                return ""
            target = os.readlink(here)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(rootfs, *resolved)


def one(data: bytes) -> None:
    first, *rest = data.split(b"\n")
    path = os.fsdecode(first)
    with fresh("rootfs") as rootfs:
        _make(rootfs, rest)
        with guard():
            try:
                got = _rootfs.resolve(rootfs, path, "kernel")
            except _errors.UruncError as exc:
                one_line(exc)
                got = None
            try:
                regular = _rootfs.regular_file(rootfs, path, "kernel", max_bytes=1 << 20)
            except _errors.UruncError as exc:
                one_line(exc)
                regular = None
        if got is None:
            assert regular is None
            return
        assert got == rootfs or got.startswith(rootfs + "/"), got
        rel = got[len(rootfs):].split("/")[1:]
        assert all(p not in ("", ".", "..") for p in rel), got
        walk = rootfs
        missing = False
        for part in rel:
            walk = os.path.join(walk, part)
            st = os.lstat(walk) if os.path.lexists(walk) else None
            if missing:
                assert st is None, f"{walk} exists below a missing component"
                continue
            if st is None:
                missing = True
                continue
            assert not stat.S_ISLNK(st.st_mode), f"{got} passes through the symlink {walk}"
        # where resolve succeeds no ".." reached above the rootfs, so refusing and clamping agree
        assert got == _in_root(rootfs, path), (got, _in_root(rootfs, path))
        if regular is not None:
            assert regular == got and stat.S_ISREG(os.stat(regular).st_mode)
