"""The image's files the monitor reads, opened once inside the rootfs and handed over as fds.

``create`` checks the kernel, initrd and disk paths (``unikernel/rootfs.py``),
but the image's rootfs can change until the monitor opens them: a path
swapped for a symlink to a host file between ``create`` and ``start`` would
boot that file. So the init opens each one itself, before it waits for
``start``, and the monitor gets only ``/proc/self/fd/N``:

- openat2 with RESOLVE_IN_ROOT: ``..`` and every symlink, absolute or not,
  resolve as if the rootfs were ``/``, so no change to the rootfs can reach a
  host file; no /proc magic link is followed.
- O_NONBLOCK, then fstat: a FIFO or device put there cannot block the open or
  be handed over; only a regular file is.
- The name the monitor sees holds no character that any monitor's option
  syntax splits on: QEMU's multiboot ``-initrd`` splits on commas (into
  modules) and cuts at a space (module arguments), ``-drive`` splits on
  commas, the tenders' ``--block:NAME=PATH`` on ``=``.

Files that are not the image's (the host kernel a Linux guest boots, the
initramfs urunc writes into its own state dir) keep their paths.
"""

from __future__ import annotations

import os
import stat

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.plan import Plan


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _open_image_file(root_fd: int, rootfs: str, what: str, host_path: str, flags: int) -> int:
    from urunc.host import syscalls

    inside = host_path[len(rootfs):]
    try:
        fd = syscalls.open_in_root(root_fd, inside, flags | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise _errors.HostError(f"cannot open {what} {inside} in the rootfs: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _errors.HostError(f"{what} {inside} in the rootfs is no longer a regular file")
        os.set_inheritable(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hold(plan: Plan) -> tuple[Plan, list[int]]:
    """(the Plan naming the image's kernel, initrd and disk as /proc/self/fd/N, those fds).

    The fds are inheritable: the monitor reopens them by that name after ``execve``.
    """
    prefix = plan.rootfs.rstrip("/") + "/"
    files = dict(plan.files)
    wanted = [("kernel", plan.kernel, os.O_RDONLY)]
    if not files.get("initrd"):
        wanted.append(("initrd", plan.initrd, os.O_RDONLY))
    if not files.get("block"):
        wanted.append(("block", plan.block, os.O_RDWR))
    wanted = [(what, path, flags) for what, path, flags in wanted if path.startswith(prefix)]
    if not wanted:
        return plan, []
    fds: list[int] = []
    try:
        root_fd = os.open(plan.rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _errors.HostError(f"cannot open rootfs {plan.rootfs}: {exc.strerror}") from None
    try:
        kernel = plan.kernel
        for what, path, flags in wanted:
            fd = _open_image_file(root_fd, prefix[:-1], what, path, flags)
            fds.append(fd)
            if what == "kernel":
                kernel = fd_path(fd)
            else:
                files[what] = fd_path(fd)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(root_fd)
    return plan.replace(kernel=kernel, files=files), fds
