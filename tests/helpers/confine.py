"""Run a program the way urunc's init runs solo5-hvt: no_new_privs, the hvt seccomp filter, execve."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from urunc.host import seccomp, syscalls

CLONE_NEWNET = 0x40000000


def spawn_confined(argv: Sequence[str], confine: bool = True, pass_fds: Sequence[int] = (),
                   netns: str | None = None, prepare: Callable[[], None] | None = None) -> tuple[int, int]:
    """Fork; in the child enter NETNS (a path) if given, run PREPARE (e.g. open a tap there),
    set no_new_privs, install the hvt filter (as init.py does), exec ARGV with PASS_FDS open.

    Returns (pid, read end of its output).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(w, 1)
            os.dup2(w, 2)
            for fd in pass_fds:
                os.set_inheritable(fd, True)
            if netns is not None:
                ns = os.open(netns, os.O_RDONLY)
                syscalls.setns(ns, CLONE_NEWNET, "net")
                os.close(ns)
            if prepare is not None:
                prepare()
            syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
            if confine:
                seccomp.install(seccomp.hvt_filter())
            os.execv(argv[0], list(argv))
        finally:
            os._exit(99)
    os.close(w)
    return pid, r


def finish(pid: int, r: int) -> tuple[int | None, int | None, str]:
    """Read the child's output to EOF and reap it: (terminating signal or None, exit status or None, output)."""
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode(errors="replace")
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status), None, out
    return None, os.WEXITSTATUS(status), out


def run_confined(argv: Sequence[str], confine: bool = True, pass_fds: Sequence[int] = ()
                 ) -> tuple[int | None, int | None, str]:
    """``spawn_confined`` and ``finish``: for a program that ends by itself."""
    return finish(*spawn_confined(argv, confine, pass_fds))
