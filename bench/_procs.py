"""Process plumbing for the bench: timed children, first output line, reaping, /proc facts."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from tests.helpers.procs import cmdline_of  # the one /proc/PID/cmdline reader

PR_SET_CHILD_SUBREAPER = 36


class BenchError(RuntimeError):
    """A contender failed; the message says which and how."""


def become_subreaper() -> None:
    """Orphaned container processes (the monitor after `urunc create` exits) become our
    children, so we can reap them and read their exit status instead of leaving zombies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap(pid: int, timeout: float) -> int | None:
    """Wait for child *pid* (ours as subreaper) and return its wait status, None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.002)


def reap_orphans() -> None:
    """Collect exited orphans; call only when no subprocess.Popen of ours is pending."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_exit(proc: subprocess.Popen[bytes], timeout: float, watch: LineWatch | None = None) -> None:
    """Return the moment PROC exits, reading WATCH's pipe meanwhile; BenchError after TIMEOUT.

    A pidfd, not a polling loop: ``Popen.wait(timeout)`` sleeps 0.5, 1, 2, 4 ... ms
    between checks, which rounds every short command up to 15.5, 31.5 or 63.5 ms.
    """
    pidfd = os.pidfd_open(proc.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if watch is not None and not watch.eof_ns:
            poller.register(watch.fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                proc.wait()
                raise BenchError(f"{proc.args!r} did not finish within {timeout:.0f} s")
            ready = {fd for fd, _ in poller.poll(remaining * 1000)}
            if watch is not None and watch.fd in ready and watch.poll(0):
                poller.unregister(watch.fd)  # EOF: it would stay readable
            if pidfd in ready:
                break
    finally:
        os.close(pidfd)
    proc.wait()


def timed_run(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 30.0,
              cwd: str | None = None) -> float:
    """Wall time in ms of one command, which must exit 0 (stderr kept in a file for errors)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
        wait_exit(proc, timeout)
        t1 = time.monotonic_ns()
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {read_back(err)}")
    return (t1 - t0) / 1e6


def run_quiet(argv: Sequence[str], **kwargs: Any) -> tuple[int, str]:
    """Run to completion; stderr goes to a file, not a pipe: a container init forked by
    `create` inherits it and would hold a pipe open long after `create` exits."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=err, check=False, **kwargs)
        return proc.returncode, read_back(err)


def read_back(f: Any) -> str:
    f.seek(0)
    return f.read().decode(errors="replace").strip()[-500:]


class LineWatch:
    """The read end of a pipe some process writes its output to: first line and EOF times."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.first_line_ns = 0
        self.eof_ns = 0
        self.marker = b""      # when set: the time it first appears goes to marker_ns
        self.marker_ns = 0
        os.set_blocking(fd, False)

    def drain(self) -> None:
        """Read everything there is now, without waiting."""
        while not self.eof_ns:
            before = len(self.buf)
            self.poll(0)
            if len(self.buf) == before:
                break

    def poll(self, timeout_s: float) -> bool:
        """Read what is there (waiting up to *timeout_s*); True once EOF was seen."""
        if self.eof_ns:
            return True
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout_s))
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        now = time.monotonic_ns()
        if not chunk:
            self.eof_ns = now
            if not self.first_line_ns:
                self.first_line_ns = now
            return True
        self.buf += chunk
        if not self.first_line_ns and b"\n" in self.buf:
            self.first_line_ns = now
        if self.marker and not self.marker_ns and self.marker in self.buf:
            self.marker_ns = now
        return False

    def wait_for(self, text: bytes | None, deadline: float) -> bool:
        """Until *text* was printed (None: the first line), EOF or the deadline; True if seen."""
        while time.monotonic() < deadline:
            if text is None and self.first_line_ns:
                return True
            if text is not None and text in self.buf:
                return True
            if self.poll(min(0.05, deadline - time.monotonic())):
                break
        return (self.first_line_ns != 0) if text is None else (text in self.buf)

    def wait_eof(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.poll(min(0.05, deadline - time.monotonic())):
                return True
        return bool(self.eof_ns)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def ppid_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    return int(data[data.rindex(b")") + 2:].split()[1])


def memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of *pid* in KiB, from smaps_rollup."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                key, _, rest = line.partition(b":")
                if key in (b"Rss", b"Pss"):
                    out[key.decode().lower()] = int(rest.split()[0])
    except OSError:
        pass
    return out


def python_processes() -> list[tuple[int, list[str]]]:
    """Every process whose executable is a Python interpreter, with its argv."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if os.path.basename(exe_of(pid)).startswith("python"):
            found.append((pid, cmdline_of(pid)))
    return found
