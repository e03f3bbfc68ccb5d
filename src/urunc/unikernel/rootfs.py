"""Paths from an image, resolved inside its rootfs or refused.

An image is untrusted: a path or any symlink along it that climbs above the
rootfs is an error (not silently clamped), and absolute symlinks are read as
rooted at the rootfs, the way the guest would see them.
"""

from __future__ import annotations

import os
import stat

from urunc import _errors

_MAX_LINKS = 40


def resolve(rootfs: str, path: str, what: str) -> str:
    """The host path of PATH inside ROOTFS, following symlinks without leaving it."""
    if not path or "\0" in path:
        raise _errors.BundleError(f"invalid {what} path {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not resolved:
                raise _errors.BundleError(f"{what} path {path} escapes the rootfs")
            resolved.pop()
            continue
        candidate = os.path.join(rootfs, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            resolved.extend(p for p in parts if p not in ("", "."))
            if ".." in resolved:
                raise _errors.BundleError(f"{what} path {path} escapes the rootfs") from None
            return os.path.join(rootfs, *resolved)
        except OSError as exc:
            raise _errors.BundleError(f"cannot read {what} path {path}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise _errors.BundleError(f"{what} path {path} has too many levels of symlinks")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(rootfs, *resolved)


def regular_file(rootfs: str, path: str, what: str, max_bytes: int | None = None) -> str:
    """Resolve PATH and require a regular file there (optionally at most MAX_BYTES)."""
    host_path = resolve(rootfs, path, what)
    try:
        st = os.stat(host_path)
    except FileNotFoundError:
        raise _errors.BundleError(f"{what} {path} not found in the rootfs") from None
    if not stat.S_ISREG(st.st_mode):
        raise _errors.BundleError(f"{what} {path} is not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise _errors.BundleError(f"{what} {path} is larger than {max_bytes} bytes")
    return host_path
