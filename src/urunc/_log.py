"""Report to containerd: the ``--log`` file in ``--log-format``, plus stderr.

containerd's runc shim reads the last ``error`` entry of ``log.json`` to
explain a failed call, so every error goes there as well as to stderr.
"""

from __future__ import annotations

import os
import sys
import time

from urunc import _jsonlite

_log_path: str | None = None
_log_format = "text"
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _log_path, _log_format, _debug
    _log_path = path
    _log_format = fmt
    _debug = debug


def _timestamp() -> str:
    now = time.time()
    frac = int((now % 1) * 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{frac:09d}Z"


def _write(level: str, message: str) -> None:
    if not _log_path:
        return
    if _log_format == "json":
        line = _jsonlite.dumps({"level": level, "msg": message, "time": _timestamp()})
    else:
        line = f"time={_jsonlite.dumps(_timestamp())} level={level} msg={_jsonlite.dumps(message)}"
    try:
        fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def error(message: str) -> None:
    """One line on stderr and in the log file."""
    message = " ".join(message.splitlines())  # \r too: a name from an image must not rewrite the line
    try:
        sys.stderr.write(f"urunc: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    _write("error", message)


def warning(message: str) -> None:
    _write("warning", message)


def debug(message: str) -> None:
    if _debug:
        _write("debug", message)


def is_debug() -> bool:
    return _debug
