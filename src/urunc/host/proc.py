"""Facts about host processes from /proc, cheap enough for every command."""

from __future__ import annotations

import os
import time


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state letter)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    close = data.rfind(b")")
    return data[close + 2 :].decode("ascii", "replace").split()


def start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot; with the PID it names one process for ever."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return int(fields[19])


PF_EXITING = 0x4  # in the flags of /proc/PID/stat from the start of exit(2), before its files close


def is_alive(pid: int, expected_start: int | None) -> bool:
    """True while PID is the process we started (not exiting or a zombie, not a reused PID).

    Without a start time nothing says which process PID names: never alive, so no
    command acts on it (a record whose start time is lost or null names no process).
    Exiting counts as dead: an init that dies closes exec.fifo before it is a zombie, and
    `start` must not take that EOF for its exec of the monitor (which it announces with a
    NUL first, so a monitor that ends at once is not taken for a dead init either).
    The same rule as ``alive`` in src/front/urunc.c (tests/front holds them together).
    """
    if pid <= 0 or expected_start is None:
        return False
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X", "x") or int(fields[6]) & PF_EXITING:
        return False
    return int(fields[19]) == expected_start


def in_cgroup(pid: int, cgroup_dir: str) -> bool:
    """Whether PID is listed in CGROUP_DIR's cgroup.procs."""
    from urunc._files import read_regular

    try:
        listed = read_regular(os.path.join(cgroup_dir, "cgroup.procs"), 1 << 22, nofollow=True).split()
    except OSError:
        return False
    return str(pid).encode() in listed


def send_signal(pid: int, expected_start: int | None, signal: int, cgroup_dir: str | None = None) -> bool:
    """Send SIGNAL to PID if it is still the process that started at EXPECTED_START (and, with
    CGROUP_DIR, is in that cgroup: a start time copied from another process is not enough).

    Through a pidfd, taken before the checks: the PID cannot be reused between the checks
    and the signal. False when that process is gone, or is not the one named.
    """
    import _signal  # type: ignore[import-not-found]  # not `signal`: its enum import costs ~7 ms

    def ours() -> bool:
        return is_alive(pid, expected_start) and (cgroup_dir is None or in_cgroup(pid, cgroup_dir))

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # no pidfds (before Linux 5.3): the check and the signal, as close as they come
        if not ours():
            return False
        try:
            os.kill(pid, signal)
        except ProcessLookupError:
            return False
        return True
    try:
        if not ours():
            return False
        try:
            _signal.pidfd_send_signal(pidfd, signal)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)


def wait_gone(pid: int, expected_start: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while is_alive(pid, expected_start):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(text: str) -> int:
    """A signal by number (``9``), name (``KILL``, ``SIGKILL``, ``sigkill``) or RT name."""
    from urunc._errors import UsageError

    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
        raise UsageError(f"invalid signal {text}")
    name = text.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in _SIGNALS:
        return _SIGNALS[name]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        base = 34 if name.startswith("RTMIN") else 64
        rest = name[5:]
        try:
            offset = int(rest) if rest else 0
        except ValueError:
            offset = 99
        num = base + offset
        if 34 <= num <= 64:
            return num
    raise UsageError(f"invalid signal {text}")
