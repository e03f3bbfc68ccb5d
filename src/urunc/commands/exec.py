"""urunc exec: a process inside a running Linux guest, in runc's dialect.

    exec [--process FILE] [--detach] [--pid-file F] [--console-socket S] [--tty]
         [--env K=V]... [--cwd DIR] [--user UID[:GID]] ID [COMMAND [ARG...]]

containerd's shim runs ``exec --process FILE --detach --pid-file P ID`` and then
waits on that PID as its subreaper; so the PID written is a relay process that
lives exactly as long as the guest process and exits with its status (128 + N
for a process killed by signal N). Signals sent to the relay reach the guest
process; SIGKILL ends the relay, its channel closes, and the guest kills the
process. Unikernel guests have no processes: their exec fails in one line.
"""

from __future__ import annotations

import os
import sys

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.cli import Args, Context

MAX_PROCESS_JSON = 1024 * 1024
# Forwarded to the guest process as they reach the relay (SIGKILL cannot be caught: see above).
FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGTSTP",
             "SIGWINCH", "SIGALRM")


def run(ctx: Context, args: Args) -> int:
    from urunc.guests import linux_exec
    from urunc.oci import store
    from urunc.unikernel.plan import Plan

    container = _common.ours_or_delegate(ctx, args, "exec")
    record = container.load()
    plan = Plan.from_dict(record["plan"])
    if not plan.exec_ports:
        raise _errors.NotSupported(f"exec is not supported for unikernel containers "
                                   f"({plan.guest} guest of container {container.id})")
    status = container.status()
    if status != store.RUNNING:
        raise _errors.ContainerError(f"cannot exec in a {status} container {container.id}")
    process = _process(args, plan)
    terminal = bool(process.get("terminal"))
    console_socket = args.value("console-socket")
    if terminal and not console_socket and not os.isatty(0):
        raise _errors.UsageError("a terminal exec needs --console-socket or a terminal on stdin")
    lock, sock = linux_exec.acquire_port(plan.state_dir)
    if args.flag("detach"):
        pid = os.fork()
        if pid:
            os.close(sock)
            os.close(lock)
            pid_file = args.value("pid-file")
            if pid_file:
                from urunc.lifecycle import write_pid_file

                write_pid_file(pid_file, pid)
            return 0
    from urunc.host import freezer

    freezer.join(container.pid)  # the relay is the container's: `ps` lists it, `delete` ends it
    try:
        code = _relay(sock, process, terminal, console_socket)
    except _errors.UruncError as exc:
        from urunc import _log

        _log.error(str(exc))
        code = 255
    if args.flag("detach"):
        sys.stdout.flush()
        os._exit(code)
    return code


def _process(args: Args, plan: Any) -> dict[str, Any]:
    """The OCI process to run: --process FILE, or the command line (runc's flags)."""
    path = args.value("process")
    if path:
        from urunc import _jsonlite
        from urunc._files import read_regular

        try:
            data = read_regular(path, MAX_PROCESS_JSON)
        except OSError as exc:
            raise _errors.UsageError(f"cannot read process file {path}: {exc.strerror}") from None
        return _jsonlite.loads_object(data, f"process file {path}", _errors.UsageError)
    command = args.positional[1:]
    env = list(plan.env)
    extra = args.options.get("env")
    if isinstance(extra, list):
        env += extra
    user = args.value("user") or f"{plan.uid}:{plan.gid}"
    uid_text, _, gid_text = user.partition(":")
    if not uid_text.isdigit() or (gid_text and not gid_text.isdigit()):
        raise _errors.UsageError(f"invalid --user {user!r} (UID[:GID], numeric)")
    return {"args": command, "env": env, "cwd": args.value("cwd") or plan.cwd,
            "user": {"uid": int(uid_text), "gid": int(gid_text or 0)}, "terminal": args.flag("tty")}


def _relay(sock: int, process: dict[str, Any], terminal: bool, console_socket: str | None) -> int:
    import select
    import signal

    from urunc.guests import linux_exec

    args = process.get("args")
    env = process.get("env") or []
    user = process.get("user") or {}
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args) \
            or not isinstance(env, list) or not all(isinstance(e, str) for e in env) \
            or not isinstance(user, dict):
        raise _errors.UsageError("process: args and env must be lists of strings, user an object")
    groups = [g for g in (user.get("additionalGids") or []) if isinstance(g, int)]
    stdin, stdout, stderr = 0, 1, 2
    saved_mode = None
    if terminal:
        if console_socket:
            from urunc.init import _console_pty

            slave = _console_pty(console_socket)  # the master goes to whoever asked (the shim)
            os.setsid()
            import fcntl
            import termios

            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # its resizes reach us as SIGWINCH
            # The terminal is the process's only stream: what we inherited (the caller collects
            # the output of a console exec until EOF, as containerd's shim does) must close.
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.close(slave)
        saved_mode = _raw(stdin)
    rows, cols = _window(stdin) if terminal else (0, 0)
    size = process.get("consoleSize") or {}
    if terminal and isinstance(size, dict) and not rows:
        rows, cols = int(size.get("height") or 0), int(size.get("width") or 0)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    for name in FORWARDED:
        signal.signal(getattr(signal, name), lambda signum, frame: None)
    frames = linux_exec.Frames()
    try:
        _send(sock, linux_exec.request(args, env, str(process.get("cwd") or "/"), int(user.get("uid") or 0),
                                       int(user.get("gid") or 0), groups, terminal, rows, cols))
        reading_stdin = True
        import time

        answer_by: float | None = time.monotonic() + linux_exec.ANSWER_SECONDS
        while True:
            watched = [sock, wake_r] + ([stdin] if reading_stdin else [])
            timeout = None if answer_by is None else max(0.0, answer_by - time.monotonic())
            try:
                ready, _, _ = select.select(watched, [], [], timeout)
            except InterruptedError:
                continue
            if answer_by is not None and not ready and time.monotonic() >= answer_by:
                raise _errors.HostError(f"exec channel: the guest's agent did not answer within "
                                        f"{linux_exec.ANSWER_SECONDS:.0f} s")
            if wake_r in ready:
                for signum in os.read(wake_r, 256):
                    if signum == signal.SIGWINCH:
                        if terminal:
                            r, c = _window(stdin)
                            _send(sock, linux_exec.frame("W", f"{r} {c}".encode()))
                    else:
                        _send(sock, linux_exec.frame("S", str(signum).encode()))
            if reading_stdin and stdin in ready:
                try:
                    data = os.read(stdin, 65536)
                except OSError:
                    data = b""
                if data:
                    _send(sock, linux_exec.frame("I", data))
                else:
                    reading_stdin = False
                    _send(sock, linux_exec.frame("C"))
            if sock in ready:
                data = os.read(sock, 65536)
                if not data:
                    return linux_exec.EXIT_CHANNEL_LOST
                for kind, payload in frames.feed(data):
                    answer_by = None
                    if kind == ord("A"):
                        continue
                    if kind == ord("O"):
                        _write_all(stdout, payload)
                    elif kind == ord("E"):
                        _write_all(stderr, payload)
                    elif kind == ord("F"):
                        text = payload.decode("utf-8", "replace").replace("\n", " ")[:4000]
                        _write_all(stderr, f"urunc: exec failed: {text}\n".encode())
                    else:
                        return linux_exec.exit_status(payload)
    finally:
        if saved_mode is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, saved_mode)


def _send(sock: int, data: bytes) -> None:
    try:
        _write_all(sock, data)
    except OSError:
        pass  # the guest side is gone: the read that follows says so


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue


def _window(fd: int) -> tuple[int, int]:
    import fcntl
    import struct
    import termios

    try:
        rows, cols, _x, _y = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return 0, 0
    return rows, cols


def _raw(fd: int) -> Any:
    """Raw mode on FD (the guest's terminal does the line discipline); the old mode, or None."""
    import termios

    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        return None
    new = list(old)
    new[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP | termios.IXON)
    new[1] &= ~termios.OPOST
    new[2] = (new[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    new[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
    new[6] = list(new[6])
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSAFLUSH, new)
    return old
