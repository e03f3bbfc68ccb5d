"""Named phase timestamps for the bench: ``URUNC_TIMESTAMPS=/path/to/file``.

Each ``mark(name)`` appends ``name monotonic_ns pid`` to that file (one
``O_APPEND`` write per line, so processes can share the file). CLOCK_MONOTONIC
is system-wide, so marks from create, the container init and start line up
with the caller's own ``time.monotonic_ns()``. Off by default; when off,
importing this module costs one ``os.environ.get`` and ``mark`` one test.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("URUNC_TIMESTAMPS") or ""


def mark(name: str) -> None:
    if _PATH:
        _append(name)


def _append(name: str) -> None:
    import time

    line = f"{name} {time.monotonic_ns()} {os.getpid()}\n".encode()
    try:
        fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # timestamps are diagnostics: never fail a container over them
    try:
        os.write(fd, line)
    except OSError:
        pass  # a FIFO whose reader left between our open and write (EPIPE)
    finally:
        os.close(fd)
