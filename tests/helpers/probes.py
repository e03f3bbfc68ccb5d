"""Reaching a guest from the host, retried until it answers or time runs out."""

from __future__ import annotations

import subprocess
import time


def ping(ip: str, timeout: float = 40) -> bool:
    """True once IP answers one ICMP echo (busybox ping; the host has no other)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["/bin/busybox", "ping", "-c", "1", "-W", "1", ip], capture_output=True,
                          timeout=10, check=False).returncode == 0:
            return True
    return False


def http_get(ip: str, timeout: float) -> str:
    """The body of http://IP/, or "no answer: <last error>" when none came in time."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        # busybox's own -T timeout crashes in Debian's static build: bound it from outside.
        got = subprocess.run(["timeout", "3", "/bin/busybox", "wget", "-q", "-O", "-", f"http://{ip}/"],
                             capture_output=True, text=True, check=False)
        if got.returncode == 0:
            return got.stdout
        last = got.stderr
        time.sleep(0.3)
    return f"no answer: {last}"
