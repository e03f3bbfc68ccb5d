"""Host processes as the tests see them, from /proc."""

from __future__ import annotations

import os
import time
from pathlib import Path

DEAD = ("gone", "Z", "X")  # no process, a zombie waiting for its reaper, or one being reaped


def state_letter(pid: int) -> str:
    """The process's state letter from /proc/PID/stat (R, S, T, Z ...), or "gone"."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return "gone"
    return data[data.rfind(b")") + 2 :].split()[0].decode()


def wait_gone(pid: int, timeout: float = 10) -> bool:
    """Whether PID is dead (gone, or a zombie) within TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while state_letter(pid) not in DEAD and time.monotonic() < deadline:
        time.sleep(0.02)
    return state_letter(pid) in DEAD


def cmdline_of(pid: int | str) -> list[str]:
    """The process's argv from /proc/PID/cmdline, or [] once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def processes_naming(text: str, *, zombies: bool = False) -> list[int]:
    """Processes (but this one) whose argv mentions TEXT; zombies only when ZOMBIES."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in argv and (zombies or state_letter(int(entry)) not in DEAD):
            found.append(int(entry))
    return found
