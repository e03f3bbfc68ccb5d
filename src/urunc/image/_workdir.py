"""The build's scratch directory beside the output, and leftovers of killed builds.

A build writes its layer and archive (up to twice the image's size) into
``.urunc-build-<pid>-<random>`` in the output's directory and renames the
archive into place at the end. The directory goes when the build ends, by an
error or by a signal (the CLI turns SIGTERM and SIGHUP into an exception, as
Python does SIGINT). Only SIGKILL or a crash can leave one behind; the next
build into the same directory removes it when it is provably a leftover:

- its name has our prefix and it is a directory (not a symlink) owned by us;
- it holds our marker, ``owner``, written right after the directory was made,
  naming the process that made it: pid, start time (``/proc/PID/stat`` field
  22), boot id and pid namespace;
- that process is gone: the machine has rebooted since, or, in the same boot
  and pid namespace, no process has that pid with that start time.

Anything else (no marker, another pid namespace, a live owner) is left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = ".urunc-build-"
MARKER = "owner"
_MARKER_MAX = 4096
# The signals the CLI turns into a clean exit; held off while the directory is being made.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _read_small(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(_MARKER_MAX).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or "" when there is no such process."""
    text = _read_small(f"/proc/{pid}/stat")
    fields = text.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""  # fields[0] is field 3, the state


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _boot_id() -> str:
    return _read_small("/proc/sys/kernel/random/boot_id")


def _owner_line() -> str:
    pid = os.getpid()
    return f"pid={pid} start={_start_time(pid)} boot={_boot_id()} pidns={_pid_namespace()}\n"


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold off the stop signals: a signal between mkdtemp and the marker would leave an unmarked dir."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def scratch(parent: Path) -> Iterator[Path]:
    """A fresh marked directory in PARENT, removed on the way out, however that happens."""
    remove_leftovers(parent)
    work: Path | None = None
    try:
        with _signals_held():
            work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
            fd = os.open(work / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            try:
                os.write(fd, _owner_line().encode())
            finally:
                os.close(fd)
        yield work
    finally:
        if work is not None:
            with _signals_held():  # a signal now is acted on once the directory is gone
                shutil.rmtree(work, ignore_errors=True)


def remove_leftovers(parent: Path) -> list[Path]:
    """Remove the scratch directories of killed builds in PARENT; return what was removed."""
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for name in names:
        path = parent / name
        if name.startswith(PREFIX) and is_leftover(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def is_leftover(path: Path) -> bool:
    """Whether PATH is a scratch directory of ours whose build is provably gone (see the module doc)."""
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if os.fstat(dir_fd).st_uid != os.geteuid():
            return False
        try:
            fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return False
            text = os.read(fd, _MARKER_MAX).decode("ascii", "replace")
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    owner = dict(field.partition("=")[::2] for field in text.split())
    pid, start, boot, pidns = (owner.get(k, "") for k in ("pid", "start", "boot", "pidns"))
    if not (pid.isdigit() and start and boot and pidns):
        return False
    our_boot = _boot_id()
    if not our_boot:
        return False
    if boot != our_boot:
        return True  # made before the last reboot: nothing of that build runs now
    if pidns != _pid_namespace():
        return False  # another pid namespace: its pid means nothing here
    return _start_time(int(pid)) != start
