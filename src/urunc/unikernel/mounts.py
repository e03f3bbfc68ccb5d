"""config.json's ``mounts`` → what the guest gets, decided once at ``create``.

Kubernetes volumes (ConfigMaps, Secrets, emptyDir, hostPath, persistent
volumes), ``docker run -v`` and ``ctr run --mount`` all arrive as bind mounts.
Each mount becomes exactly one of:

    guest's own   /proc, /sys, /dev and anything under them: the kernel and
                  runtime filesystems every guest makes for itself (a Linux
                  guest's init mounts proc, sysfs, devtmpfs, devpts, /dev/shm;
                  a unikernel has none of them). Not user data.
    engine file   /etc/hosts, /etc/hostname, /etc/resolv.conf, written by the
                  engine for every container: a Linux guest gets them like any
                  file mount; a unikernel gets their content through its network
                  configuration (hostname, DNS) and the mount is logged as skipped.
    share         a bind-mounted directory: a 9p share (QEMU's ``-fsdev local``),
                  mounted by the guest at its destination, ``ro`` enforced by
                  QEMU itself (``readonly=on``), not only by the guest.
    file          a bind-mounted regular file (a ConfigMap key, ``/etc/app.conf``):
                  9p shares directories only, and sharing the parent would show
                  its siblings, so the file is copied into the guest at create
                  (Linux guests), as Kubernetes' own subPath mounts see no later
                  updates either; the guest's writes to it stay in the guest.
    tmpfs         a ``tmpfs`` mount (containerd's ``/run``, Docker ``--tmpfs``): a
                  Linux guest mounts a tmpfs there, sized from its options; other
                  guests have none, and an empty scratch space carries no data, so
                  the mount is logged as skipped.

Anything a guest or monitor cannot take fails ``create`` in one line naming the
mount: nothing is dropped silently.

A mount is a tuple ``(kind, source, destination, readonly, options)``, kind one
of "share", "file", "tmpfs", or "root" (the container's rootfs shared as the
guest's root, tag ``rootfs``); the Plan keeps them in the order the guest must
mount them (the root first, then parents before what is mounted inside them).
"""

from __future__ import annotations

import os
import stat

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GUEST_OWN = ("/proc", "/sys", "/dev")
ENGINE_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"})
# QEMU's pc machine has 32 PCI slots and each share takes one; pods use 5-10 volumes.
MAX_SHARES = 16
MAX_MOUNTS = 256
MAX_FILE_BYTES = 1024 * 1024
MAX_PATH = 4096
_BIND = ("bind", "rbind")

Mount = tuple[str, str, str, bool, str]  # (kind, source, destination, readonly, options)


def _destination(raw: Any, index: int) -> str:
    if not isinstance(raw, str) or not raw.startswith("/") or "\0" in raw or len(raw) > MAX_PATH:
        raise _errors.BundleError(f"mounts[{index}]: invalid destination {raw!r} (an absolute path is needed)")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _errors.BundleError(f"mounts[{index}]: destination {raw!r} contains '..'")
    return "/" + "/".join(parts)


def _guest_own(destination: str) -> bool:
    return any(destination == top or destination.startswith(top + "/") for top in GUEST_OWN)


def from_spec(raw_mounts: Any) -> list[Mount]:
    """The spec's mounts that carry user data, classified; skipped ones are not listed."""
    if raw_mounts is None:
        return []
    if not isinstance(raw_mounts, list):
        raise _errors.BundleError("mounts in config.json must be a list")
    if len(raw_mounts) > MAX_MOUNTS:
        raise _errors.BundleError(f"config.json has {len(raw_mounts)} mounts, more than {MAX_MOUNTS}")
    out: list[Mount] = []
    for index, entry in enumerate(raw_mounts):
        if not isinstance(entry, dict):
            raise _errors.BundleError(f"mounts[{index}] in config.json must be an object")
        destination = _destination(entry.get("destination"), index)
        if destination == "/":
            raise _errors.BundleError(f"mounts[{index}]: a mount at / cannot be given to a guest "
                                      "(its root is the image's)")
        if _guest_own(destination):
            continue
        options = entry.get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise _errors.BundleError(f"mount {destination}: options must be a list of strings")
        kind = entry.get("type") or ""
        readonly = "ro" in options
        if kind == "bind" or any(o in _BIND for o in options):
            source = entry.get("source")
            if not isinstance(source, str) or not source.startswith("/") or "\0" in source \
                    or len(source) > MAX_PATH:
                raise _errors.BundleError(f"mount {destination}: invalid source {source!r}")
            try:
                st = os.stat(source)
            except OSError as exc:
                raise _errors.BundleError(f"mount {destination}: source {source}: {exc.strerror}") from None
            if stat.S_ISDIR(st.st_mode):
                out.append(("share", source, destination, readonly, ""))
            elif stat.S_ISREG(st.st_mode):
                if st.st_size > MAX_FILE_BYTES:
                    raise _errors.BundleError(
                        f"mount {destination}: file {source} is larger than {MAX_FILE_BYTES} bytes")
                out.append(("file", source, destination, readonly, ""))
            else:
                raise _errors.BundleError(f"mount {destination}: source {source} is neither a directory "
                                          "nor a regular file")
        elif kind == "tmpfs":
            size = next((o[5:] for o in options if o.startswith("size=")), "")
            if size and not (size[:-1] if size[-1:] in "kmgKMG%" else size).isdigit():
                raise _errors.BundleError(f"mount {destination}: invalid tmpfs size {size!r}")
            mode = next((o[5:] for o in options if o.startswith("mode=")), "")
            if mode and not (mode.isdigit() and set(mode) <= set("01234567") and len(mode) <= 4):
                raise _errors.BundleError(f"mount {destination}: invalid tmpfs mode {mode!r}")
            opts = ",".join(o for o in (f"size={size}" if size else "", f"mode={mode}" if mode else "") if o)
            out.append(("tmpfs", "tmpfs", destination, readonly, opts))
        else:
            raise _errors.BundleError(f"mount {destination}: type {kind!r} cannot be given to a guest "
                                      "(bind mounts and tmpfs can)")
    # Parents first: a mount inside another one's destination comes after it.
    return sorted(out, key=lambda m: m[2].count("/") if m[2] != "/" else 0)


def for_guest(raw_mounts: Any, guest_name: str, can_share: bool, can_copy_files: bool,
              can_tmpfs: bool, monitor_name: str) -> tuple[Mount, ...]:
    """The mounts the guest gets; one-line errors for what it cannot take."""
    from urunc import _log

    wanted = from_spec(raw_mounts)
    kept: list[Mount] = []
    for mount in wanted:
        kind, source, destination = mount[0], mount[1], mount[2]
        if destination in ENGINE_FILES and kind == "file" and not can_copy_files:
            _log.debug(f"mount {destination}: not given to {guest_name} guest; its network "
                       "configuration carries the hostname and DNS")
            continue
        if kind == "share" and not can_share:
            raise _errors.PlanError(
                f"mount {destination} ({source}): {guest_name} on {monitor_name} has no shared filesystem",
                hint="volumes need a guest type and monitor with 9p (unikraft or linux on qemu)")
        if kind == "file" and not can_copy_files:
            raise _errors.PlanError(
                f"mount {destination} ({source}): {guest_name} guests cannot mount a single file",
                hint="mount its directory instead")
        if kind == "tmpfs" and not can_tmpfs:
            # containerd gives every container a tmpfs at /run: empty scratch space, no data.
            _log.debug(f"mount {destination} (tmpfs): {guest_name} guests have no tmpfs; skipped")
            continue
        kept.append(mount)
    shares = sum(1 for m in kept if m[0] == "share")
    if shares > MAX_SHARES:
        raise _errors.PlanError(f"{shares} directory mounts, more than the {MAX_SHARES} a guest can take")
    return tuple(kept)


ROOT_TAG = "rootfs"


def root_share(rootfs: str, readonly: bool) -> Mount:
    """The container's rootfs itself as the guest's root, over 9p (``mountRootfs``)."""
    return ("root", rootfs, "/", readonly, "")


def rootfs_larger_than(rootfs: str, limit: int) -> bool:
    """Whether the regular files under ROOTFS add up to more than LIMIT bytes; the walk
    stops as soon as they do, so a large image costs no more than a small one."""
    total = 0
    stack = [rootfs]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                        if total > limit:
                            return True
        except OSError:
            continue  # unreadable: whatever packs the rootfs reports it
    return False


def shares(mounts: tuple[Mount, ...]) -> list[tuple[str, Mount]]:
    """(the 9p mount tag, the mount) for each shared directory, the root first, in order."""
    root = [(ROOT_TAG, m) for m in mounts if m[0] == "root"]
    return root + [(f"urunc{i}", m) for i, m in enumerate(m for m in mounts if m[0] == "share")]


def has_root(mounts: tuple[Mount, ...]) -> bool:
    return any(m[0] == "root" for m in mounts)
