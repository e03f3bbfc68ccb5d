"""Pausing a container: by its monitor where the monitor can (QEMU's QMP ``stop``/``cont``, see
``Monitor.pause_vm``), else by the cgroup freezer.

A paused container has a ``paused`` file in its state directory, written
before the monitor is stopped and removed once it runs again; it says how it
was paused (``monitor``, or ``freezer DIR``) and is what ``state`` reads (Python's
``Container.status`` and the native ``status_of`` in src/front/urunc.c): a
running container with that file is ``paused``. Written first, a pause that
dies half-way leaves a container that says ``paused`` and resumes (a ``cont``
or a thaw of what runs is harmless), never a stopped VM that says ``running``.

The freezer cgroup is the monitor's own, read from ``/proc/PID/cgroup``: v1's
``freezer`` hierarchy (``freezer.state`` FROZEN/THAWED), or the unified
hierarchy on a pure v2 host (``cgroup.freeze`` 1/0). A monitor in the root
cgroup has nothing to freeze that is its alone, and is refused.
"""

from __future__ import annotations

import os
import time

from urunc import _errors
from urunc.oci.store import PAUSE_MARK as MARKER  # what store.Container.status looks for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FREEZE_TIMEOUT = 10.0
_MAX_MARKER = 8192


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(1 << 16).decode("ascii", "replace")


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


# -- where --------------------------------------------------------------------------------------
def monitor_cgroup(pid: int) -> tuple[int, str]:
    """(cgroup version, directory) of PID's freezer cgroup; (0, "") when it has none of its own."""
    from urunc.host import cgroups

    version, mounts = cgroups.host_layout()
    try:
        text = _read(f"/proc/{pid}/cgroup")
    except OSError:
        return 0, ""
    key = "freezer" if version == 1 else ""
    path = cgroups.own_cgroups(text).get(key, "")
    point = mounts.get(key, "")
    if not point or not path.startswith("/") or path == "/" or "\n" in path:
        return 0, ""
    directory = os.path.normpath(os.path.join(point, path.lstrip("/")))
    if not directory.startswith(point.rstrip("/") + "/") or not os.path.isdir(directory):
        return 0, ""
    return version, directory


def members(directory: str) -> list[int]:
    """The processes in cgroup DIRECTORY (and the cgroups below it), as the kernel lists them."""
    found: list[int] = []
    for dirpath, _dirs, _files in os.walk(directory):
        try:
            with open(os.path.join(dirpath, "cgroup.procs"), "rb") as f:
                found += [int(p) for p in f.read(1 << 22).split() if p.isdigit()]
        except OSError:
            continue
    return sorted(set(found))


# -- the marker ---------------------------------------------------------------------------------
def marker(state_dir: str) -> str:
    """The marker's content ("" when the container is not paused)."""
    from urunc._files import read_regular

    try:
        return read_regular(os.path.join(state_dir, MARKER), _MAX_MARKER, nofollow=True).decode(errors="replace")
    except OSError:
        return ""


def _set_marker(state_dir: str, how: str) -> None:
    from urunc._files import write_atomic

    write_atomic(os.path.join(state_dir, MARKER), how.encode(), tmp=os.path.join(state_dir, MARKER + ".tmp"))


def _clear_marker(state_dir: str) -> None:
    try:
        os.unlink(os.path.join(state_dir, MARKER))
    except FileNotFoundError:
        pass


def _freezer_dir(how: str) -> str:
    """The directory a ``freezer DIR`` marker names, checked to lie below a cgroup mount."""
    from urunc.host import cgroups

    directory = how[len("freezer "):].strip()
    cgroups.checked({"dirs": [directory], "leaves": [directory]})
    return directory


# -- the freezer --------------------------------------------------------------------------------
def freeze(directory: str, timeout: float = FREEZE_TIMEOUT) -> None:
    """Freeze cgroup DIRECTORY and wait until every task in it is frozen."""
    v1 = os.path.exists(os.path.join(directory, "freezer.state"))
    try:
        if v1:
            _write(os.path.join(directory, "freezer.state"), "FROZEN")
        else:
            _write(os.path.join(directory, "cgroup.freeze"), "1")
    except OSError as exc:
        raise _errors.HostError(f"cannot freeze cgroup {directory}: {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            if v1:
                done = _read(os.path.join(directory, "freezer.state")).strip() == "FROZEN"
            else:
                done = "frozen 1" in _read(os.path.join(directory, "cgroup.events")).splitlines()
        except OSError as exc:
            raise _errors.HostError(f"cannot read cgroup {directory}: {exc.strerror}") from None
        if done:
            return
        if time.monotonic() > deadline:
            thaw(directory)
            raise _errors.HostError(f"cgroup {directory} did not freeze within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def thaw(directory: str) -> None:
    """Thaw cgroup DIRECTORY (nothing to do when it is gone)."""
    if os.path.exists(os.path.join(directory, "freezer.state")):
        name, value = "freezer.state", "THAWED"
    elif os.path.exists(os.path.join(directory, "cgroup.freeze")):
        name, value = "cgroup.freeze", "0"
    else:
        return
    try:
        _write(os.path.join(directory, name), value)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _errors.HostError(f"cannot thaw cgroup {directory}: {exc.strerror}") from None


# -- pause and resume ---------------------------------------------------------------------------
PAUSED_BY_MONITOR = "monitor"


def pause(state_dir: str, pid: int, stop_vm: Callable[[], bool]) -> None:
    """Stop the running VM (the caller holds the container's lock and checked it runs):
    ``stop_vm()`` (the monitor stops itself; False when it cannot), else the freezer."""
    _set_marker(state_dir, PAUSED_BY_MONITOR)
    try:
        stopped = stop_vm()
    except BaseException:
        _clear_marker(state_dir)
        raise
    if stopped:
        return
    _clear_marker(state_dir)
    version, directory = monitor_cgroup(pid)
    if not directory:
        raise _errors.HostError(f"its monitor (pid {pid}) has no freezer cgroup of its own")
    if version == 1 and not os.path.exists(os.path.join(directory, "freezer.state")) or \
            version == 2 and not os.path.exists(os.path.join(directory, "cgroup.freeze")):
        raise _errors.HostError(f"cgroup {directory} has no freezer")
    _set_marker(state_dir, f"freezer {directory}")
    try:
        freeze(directory)
    except BaseException:
        try:
            thaw(directory)
        finally:
            _clear_marker(state_dir)
        raise


def resume(state_dir: str, continue_vm: Callable[[], object] | None = None) -> None:
    """Let a paused VM run again and remove the marker (the caller holds the lock):
    ``continue_vm()`` for one its monitor stopped, a thaw for a frozen one."""
    how = marker(state_dir)
    if how.startswith("freezer "):
        thaw(_freezer_dir(how))
    elif how == PAUSED_BY_MONITOR and continue_vm is not None:
        continue_vm()
    _clear_marker(state_dir)


def unfreeze(state_dir: str) -> None:
    """Before a kill or a delete: thaw what a freezer pause froze (a frozen task cannot die on
    v1, a frozen cgroup should not be removed); a QMP-stopped QEMU dies of signals as it is.
    The marker stays (the state dir goes with the container). Never raises: the kill goes on."""
    how = marker(state_dir)
    if how.startswith("freezer "):
        try:
            thaw(_freezer_dir(how))
        except _errors.UruncError as exc:
            from urunc import _log

            _log.warning(str(exc))


def after_signal(state_dir: str, signal: int) -> None:
    """``kill`` of a paused container: SIGKILL and SIGTERM end it, so a frozen one is thawed to
    take them (as Docker resumes a container it stops); other signals wait for ``resume``. A
    QMP-stopped QEMU takes every signal in its main loop, paused or not."""
    if signal in (9, 15) and marker(state_dir).startswith("freezer "):
        resume(state_dir)


def join(container_pid: int) -> None:
    """Move this process (single-threaded: see cgroups.join) into CONTAINER_PID's v1 freezer cgroup,
    so ``ps`` lists it and ``pause`` and ``delete`` reach it (``urunc exec``'s relay). Only the
    freezer hierarchy: the memory and pids limits are sized for the VM alone, and on a pure v2
    host, where one cgroup holds every limit, nothing is joined."""
    try:
        version, directory = monitor_cgroup(container_pid)
    except _errors.UruncError:
        return
    if version == 1 and directory:
        try:
            _write(os.path.join(directory, "tasks"), "0")
        except OSError as exc:
            from urunc import _log

            _log.debug(f"exec relay stays out of cgroup {directory}: {exc.strerror}")
