"""The Linux guest's side of templates (urunc/templates.py): its init, started with
``/.urunc/template``, loads the modules the container's devices need, prints READY_LINE and
waits on the virtio-serial port ``urunc.job`` for its job: the same ``/.urunc/`` files and
rootfs archive a cold boot's initramfs holds (``guests/linux/README.md``, "Template mode and
the job"), after a JOB_HEADER-byte header with the host's clock and 32 random bytes the init
reseeds the kernel's CRNG with, so siblings never share their random state.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

READY_LINE = b"urunc-template-ready"
JOB_HEADER = 256
JOB_PROTOCOL = "urunc-job/1"


def write_job(out: str, rootfs: str | None, job_entries: list[Any], exclude: tuple[Any, ...]) -> None:
    """The job a restored guest's init reads: a header (written at start) and the archive."""
    from urunc.guests import linux_initrd as initrd

    initrd.write_initrd(out, rootfs, job_entries, exclude=exclude,
                        prefix=b" " * (JOB_HEADER - 1) + b"\n")


def finish_job(path: str) -> None:
    """Right before the monitor starts: the header with the job's size, the host's clock now
    and 32 fresh random bytes (guests/linux/README.md)."""
    import time

    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size - JOB_HEADER
        now = time.time_ns()
        line = f"{JOB_PROTOCOL} {size} {now // 1_000_000_000} {now % 1_000_000_000} {os.urandom(32).hex()}"
        os.pwrite(fd, line.encode().ljust(JOB_HEADER - 1) + b"\n", 0)
    finally:
        os.close(fd)
