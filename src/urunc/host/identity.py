"""The monitor's identity: ``process.user`` applied in the init right before ``execve``.

    as root (init)    ─ which of the monitor's files and devices can the user open?
                        devices: add the device's group when its group bits allow it
                        files not readable: kernel/initrd copied into a sealed memfd,
                        a disk opened read-write and handed to QEMU as an fd set
    drop              ─ no_new_privs (always), setgroups, setresgid, setresuid
    execve(monitor)   ─ runs with no capabilities and cannot regain any

Image files are never chmod-ed: the image decides its modes, the runtime
decides what it hands over. A user the devices refuse gets a one-line error.
"""

from __future__ import annotations

import os

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.plan import Plan

PR_SET_NO_NEW_PRIVS = 38
MFD_ALLOW_SEALING = 2
F_ADD_SEALS = 1033
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
BLOCK_FDSET = 1


def _can_open(path: str, mode: int) -> bool:
    """Whether the current effective uid/gid/groups may open PATH with MODE (os.R_OK...)."""
    return os.access(path, mode, effective_ids=True)


def _memfd_copy(path: str, name: str) -> int:
    """PATH's bytes in a sealed, inheritable memfd (any user may reopen /proc/self/fd/N)."""
    src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.memfd_create(f"urunc-{name}", os.MFD_CLOEXEC | MFD_ALLOW_SEALING)
        size = os.fstat(src).st_size
        offset = 0
        while offset < size:
            sent = os.sendfile(fd, src, offset, size - offset)
            if sent == 0:
                break
            offset += sent
    finally:
        os.close(src)
    import fcntl

    fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)
    os.set_inheritable(fd, True)
    return fd


def prepare(plan: Plan, fd_sets: bool) -> tuple[Plan, list[int], list[int]]:
    """As root: (the Plan with unreachable files swapped for fds, fds to keep, groups).

    FD_SETS: the monitor takes a disk as an inherited fd (QEMU's fd sets); without, a disk
    its user cannot open is an error.

    A no-op for uid 0 beyond the groups the spec names.
    """
    groups = list(dict.fromkeys([plan.gid, *plan.additional_gids]))
    if plan.uid == 0:
        return plan, [], groups
    devices = []
    if plan.accel == "kvm":
        devices.append("/dev/kvm")
    if os.path.exists("/dev/net/tun"):
        devices.append("/dev/net/tun")
    files = dict(plan.files)
    wanted = [("kernel", plan.kernel, os.R_OK),
              ("initrd", files.get("initrd") or plan.initrd, os.R_OK),
              ("block", files.get("block") or plan.block, os.R_OK | os.W_OK)]
    denied: list[tuple[str, str, int]] = []
    denied_devices: list[str] = []
    unshared: list[tuple[str, str]] = []
    os.setgroups(groups)
    os.setegid(plan.gid)
    os.seteuid(plan.uid)
    try:
        for device in devices:
            if not _can_open(device, os.R_OK | os.W_OK):
                denied_devices.append(device)
        for what, path, mode in wanted:
            if path and not _can_open(path, mode):
                denied.append((what, path, mode))
        # A shared directory is the monitor's to open, as this user: say so now, not in its words.
        unshared = [(m[2], m[1]) for m in plan.mounts
                    if m[0] in ("share", "root") and not _can_open(m[1], os.R_OK | os.X_OK)]
    finally:
        os.seteuid(0)
        os.setegid(0)
    if unshared:
        destination, source = unshared[0]
        raise _errors.HostError(f"mount {destination}: uid {plan.uid} cannot read its source {source}")
    for device in denied_devices:
        st = os.stat(device)
        if (st.st_mode >> 3) & 0o6 == 0o6:
            groups.append(st.st_gid)
        elif device == "/dev/kvm":
            raise _errors.HostError(f"{device} is not usable by uid {plan.uid} and its group gives no access")
        # /dev/net/tun is needed only with a network, and then the tap must be the user's
        # (created with its owner); QEMU reports it if it cannot attach.
    keep: list[int] = []
    changes: dict[str, object] = {}
    for what, path, _mode in denied:
        if what == "block":
            if not fd_sets:
                raise _errors.HostError(f"block {path} is not readable and writable by uid {plan.uid}")
            fd = os.open(path, os.O_RDWR)
            os.set_inheritable(fd, True)
            files["block"] = f"/dev/fdset/{BLOCK_FDSET}"
            files["block_fd"] = str(fd)
        else:
            fd = _memfd_copy(path, what)
            if what == "kernel":
                changes["kernel"] = f"/proc/self/fd/{fd}"
            else:
                files["initrd"] = f"/proc/self/fd/{fd}"
        keep.append(fd)
    if keep:
        changes["files"] = files
        plan = plan.replace(**changes)
    return plan, keep, list(dict.fromkeys(groups))


def drop(uid: int, gid: int, groups: list[int]) -> None:
    """no_new_privs, then the groups, the gid and the uid (the uid last: it drops capabilities)."""
    from urunc.host import syscalls

    syscalls.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if os.getuid() == uid and os.getgid() == gid and uid != 0:
        return
    try:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise _errors.HostError(f"cannot become uid {uid} gid {gid}: {exc.strerror}") from None
