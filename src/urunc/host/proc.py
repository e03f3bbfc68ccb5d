"""Facts about host processes from /proc, cheap enough for every command."""

from __future__ import annotations

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


def is_alive(pid: int, expected_start: int | None) -> bool:
    """True while PID is the process we started (not a zombie, not a reused PID)."""
    if pid <= 0:
        return False
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X", "x"):
        return False
    return expected_start is None or int(fields[19]) == expected_start


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
