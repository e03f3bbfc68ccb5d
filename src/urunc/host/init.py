"""The container's init: forked at ``create``, waits for ``start``, then becomes the monitor.

    create ──fork──▶ init: new session, console, namespaces (join by path or create)
       │               (a new PID namespace needs one more fork: the child is its PID 1)
       ◀── "pid N" ─── reports the PID containerd must hold, then blocks opening exec.fifo
    start ──opens exec.fifo──▶ init: network, user, fds … execve(monitor argv)

exec.fifo is the start barrier and the error channel at once: the init keeps
its write end open (close-on-exec) until ``execve``. ``start`` reading EOF
means the monitor replaced the init; bytes read are the init's error message.
"""

from __future__ import annotations

import os
import sys

from urunc import _errors, _timestamps
from urunc.oci import spec as _spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from urunc.unikernel.plan import Plan

TIOCSCTTY = 0x540E
MONITOR_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# Joining order: user first (it governs the others), mount last (paths resolve before it).
_JOIN_ORDER = ("user", "cgroup", "ipc", "uts", "network", "pid", "time", "mount")


def spawn(plan: Plan, namespaces: list[tuple[str, str]], fifo: str, console_socket: str | None,
          record_pid: Callable[[int], None] | None = None, cgroup_procs: list[str] | None = None) -> int:
    """Fork the init and return its host PID once it is in its namespaces.

    The init goes on only after ``record_pid(pid)`` returned and acknowledged it:
    if ``create`` dies before its state names the PID, the init sees the ack
    pipe close and exits, so no init is ever left that ``delete`` cannot find.
    """
    ns_fds = []
    for kind in _JOIN_ORDER:
        for ns_kind, path in namespaces:
            if ns_kind == kind and path:
                try:
                    ns_fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
                except OSError as exc:
                    raise _errors.HostError(f"cannot open {kind} namespace {path}: {exc.strerror}") from None
    new_flags = 0
    for kind, path in namespaces:
        if not path and kind != "user":
            new_flags |= _spec.NAMESPACE_FLAGS[kind]
    if any(kind == "user" and not path for kind, path in namespaces):
        raise _errors.NotSupported("user namespaces are not supported for unikernel containers")
    # The init forks once more, in a new or a joined PID namespace (see _child).
    forks_again = bool(new_flags & _spec.NAMESPACE_FLAGS["pid"]) or any(kind == "pid" for kind, _ in ns_fds)
    console = _console_pty(console_socket) if console_socket else None
    report_r, report_w = os.pipe()
    ack_r, ack_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(report_r)
            os.close(ack_w)
            _child(plan, ns_fds, new_flags, fifo, console, report_w, ack_r, cgroup_procs or [])
        except BaseException as exc:  # noqa: BLE001 - a forked child must never return
            _report(report_w, f"error {exc}")
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(ack_r)
    for _, fd in ns_fds:
        os.close(fd)
    if console is not None:
        os.close(console)
    chunks = []
    while True:
        chunk = os.read(report_r, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(report_r)
    message = b"".join(chunks).decode(errors="replace")
    if forks_again:
        os.waitpid(pid, 0)  # the intermediate child, which exits once the init exists
    if message.startswith("pid "):
        init_pid = int(message[4:])
        try:
            if record_pid is not None:
                record_pid(init_pid)
            os.write(ack_w, b"1")
        finally:
            os.close(ack_w)
        return init_pid
    os.close(ack_w)
    if not forks_again:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    raise _errors.HostError(message[6:] if message.startswith("error ") else "container init died")


def _report(fd: int, message: str) -> None:
    try:
        os.write(fd, message.encode())
        os.close(fd)
    except OSError:
        pass


def _console_pty(socket_path: str) -> int:
    """Open a pty, send its master over the console socket, return the slave."""
    import socket

    master, slave = os.openpty()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(socket_path)
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as exc:
        os.close(slave)
        raise _errors.HostError(f"cannot send console to {socket_path}: {exc.strerror or exc}") from None
    finally:
        os.close(master)
    return slave


def _child(plan: Plan, ns_fds: list[tuple[str, int]], new_flags: int, fifo: str,
           console: int | None, report_w: int, ack_r: int, cgroup_procs: list[str]) -> None:
    from urunc.host import cgroups, syscalls

    # Drop everything inherited but what the init needs (the state-dir lock above all:
    # holding it would block `start`).
    keep = sorted({0, 1, 2, report_w, ack_r, *(fd for _, fd in ns_fds), *([console] if console is not None else [])})
    low = 3
    for fd in keep:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)
    os.setsid()
    # Before any namespace: a new cgroup namespace is rooted where the init stands.
    cgroups.join(cgroup_procs)
    if console is not None:
        import fcntl

        fcntl.ioctl(console, TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(console, fd)
        if console > 2:
            os.close(console)
    # setns into a PID namespace moves only our children there, and a process whose
    # children's PID namespace is not its own cannot create threads (the monitor must).
    joined_pid = any(kind == "pid" for kind, _ in ns_fds)
    for kind, fd in ns_fds:
        syscalls.setns(fd, 0, f"{kind} namespace")
        os.close(fd)
    if new_flags:
        syscalls.unshare(new_flags)
    if new_flags & _spec.NAMESPACE_FLAGS["mount"]:
        # Nothing this container mounts may propagate back to the host.
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
    if new_flags & _spec.NAMESPACE_FLAGS["pid"] or joined_pid:
        pid = os.fork()
        if pid != 0:
            _report(report_w, f"pid {pid}")
            os._exit(0)
        os.close(report_w)
    else:
        _report(report_w, f"pid {os.getpid()}")
    acked = os.read(ack_r, 1)  # b"" when create died before recording our PID
    os.close(ack_r)
    if not acked:
        os._exit(1)
    _wait_and_exec(plan, fifo)


def _exit_on_terminating_signals() -> None:
    """Until it becomes the monitor, let the usual terminating signals end the init.

    The init of a PID namespace receives only the signals it handles (SIGKILL
    aside), so without handlers ``kill TERM`` of a created container would do
    nothing; execve resets them for the monitor, and SIGWINCH stays ignored.
    """
    import _signal  # type: ignore[import-not-found]

    def end(signum: int, frame: object) -> None:
        os._exit(128 + signum)

    for signum in (_signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2,
                   _signal.SIGALRM, _signal.SIGTERM):
        _signal.signal(signum, end)


def _wait_and_exec(plan: Plan, fifo: str) -> None:
    _exit_on_terminating_signals()
    if plan.netns != "none":
        import _thread

        from urunc.host import network

        # pyroute2 costs ~65 ms to import: load it in the background while CNI runs, so
        # that neither `start` nor a container without eth0 waits for it.
        _thread.start_new_thread(network.preload, ())
    _timestamps.mark("init-waiting")
    fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)  # blocks until `start` opens the other end
    _timestamps.mark("init-released")
    try:
        from urunc.host import identity

        plan, granted, groups = identity.prepare(plan)  # as root: files the user cannot open
        argv, monitor_fds = _prepare_start(plan)
        granted = [*granted, *monitor_fds]
        _timestamps.mark("argv-built")
        import _signal

        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        sys.stdout.flush()
        os.chdir("/")
        _timestamps.mark("init-exec")
        # Only the standard streams, the fifo (closed by execve itself) and the
        # fds granted to the monitor reach it. Nothing opens a descriptor from here
        # to execve: the preload thread, if it still runs, may close numbers it once
        # held, and whatever it opens is close-on-exec.
        low = 3
        for keep in sorted({fd, *granted}):
            os.closerange(low, keep)
            low = keep + 1
        os.closerange(low, 1 << 20)
        identity.drop(plan.uid, plan.gid, groups)
        if plan.monitor == "hvt":  # spt confines itself, QEMU has -sandbox; hvt needs ours
            from urunc.host import seccomp

            seccomp.install(seccomp.hvt_filter())
        os.execve(argv[0], argv, MONITOR_ENV)
    except BaseException as exc:  # noqa: BLE001 - report to `start`, never return into create's code
        message = str(exc) if isinstance(exc, _errors.UruncError) else f"{type(exc).__name__}: {exc}"
        try:
            os.write(fd, message.encode()[:4000] or b"init failed")
        except OSError:
            pass
        os._exit(1)


def _prepare_start(plan: Plan) -> tuple[list[str], list[int]]:
    """Start-time work inside the container's namespaces: network, then the monitor's argv
    and the descriptors it inherits."""
    from urunc import guests, monitors
    from urunc.host import network

    guest = guests.get(plan.guest)
    monitor = monitors.get(plan.monitor)
    net = network.setup(plan)
    fds: list[int] = []
    if net is not None and plan.uid != 0:
        fd = network.open_tap(net.tap)
        fds.append(fd)
        plan = plan.replace(files={**plan.files, "tap_fd": str(fd)})
    if plan.monitor == "qemu" and plan.uid != 0:
        # The monitor's user cannot bind in the 0700 state dir: hand it a bound QMP socket.
        from urunc.host import qmp

        path = qmp.socket_path(plan.state_dir)
        if path:
            fd = qmp.listen(path)
            fds.append(fd)
            plan = plan.replace(files={**plan.files, "qmp_fd": str(fd)})
    guest.start_files(plan, net)
    return monitor.argv(plan, guest, net), fds
