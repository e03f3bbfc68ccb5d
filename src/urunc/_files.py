"""Small files written whole: the state record, the resources record, pid files, caches."""

from __future__ import annotations

import os


def write_atomic(path: str, data: bytes, mode: int = 0o600, *, tmp: str | None = None) -> None:
    """Write DATA to PATH through a temporary file and a rename.

    A reader (or our own death half-way) sees the old content or the new, never
    half of it; a failed write (a full disk) removes the temporary file. No
    fsync: what is written here lives under /run, volatile by design, and an
    fsync on a disk-backed /run costs milliseconds on every call.
    """
    tmp = tmp or f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.close(fd)
    os.rename(tmp, path)
