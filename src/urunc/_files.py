"""Small files written whole (the state record, the resources record, pid files, caches), and
every file from outside read back, bounded and only when it is a regular file."""

from __future__ import annotations

import errno
import os
import stat


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


def open_regular(path: str, *, nofollow: bool = False, dir_fd: int | None = None) -> int:
    """A read-only descriptor of PATH, which must be a regular file.

    Opened with O_NONBLOCK (a FIFO does not block the open, a device does not wait for
    a carrier) and O_NOCTTY, then checked with fstat: a FIFO, a device, a socket or a
    directory is refused before anything is read. NOFOLLOW refuses a symlink as the last
    component (a path already resolved inside a rootfs, a file in our own state dir).
    Raises OSError naming what was wrong in its strerror: IsADirectoryError for a
    directory, EINVAL "not a regular file", ELOOP "a symbolic link".
    """
    return _open_regular(path, nofollow, dir_fd)[0]


def _open_regular(path: str, nofollow: bool, dir_fd: int | None) -> tuple[int, int]:
    """``open_regular``'s descriptor, and the file's size."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if nofollow and exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link", path) from None
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, "a directory, not a regular file", path)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return fd, st.st_size


def read_regular(path: str, limit: int, *, nofollow: bool = False, dir_fd: int | None = None) -> bytes:
    """The content of the regular file PATH, refused before it is read when larger than LIMIT.

    The one way the runtime reads a file it did not write in this process: config.json,
    config.toml, an image's urunc.json, a container's records (see ``open_regular``).
    A file that grows past LIMIT while read is refused too: at most LIMIT + 1 bytes are
    ever read. Raises OSError (EFBIG "larger than LIMIT bytes" for a large one).
    """
    fd, size = _open_regular(path, nofollow, dir_fd)
    try:
        if size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
        chunks = []
        total = 0
        want = size + 1  # one read for the content, one for EOF, on a file that keeps its size
        while True:
            chunk = os.read(fd, min(want, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
            want = 65536
    finally:
        os.close(fd)
    return b"".join(chunks)
