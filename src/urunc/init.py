"""The container's init: started with ``create``, waits for ``start``, then becomes the monitor.

Usually the init runs ``create`` itself (``_create_here``):

    urunc create (C front end) ──clone (PID 1 of a new PID namespace) + exec──▶ init
    init: parse, plan, cgroup, session, console, namespaces, record, pid file
    front end ◀── "ok" | "fail CODE" | "runc PATH" ── init; the front end exits with it
    init: blocks opening exec.fifo

With create hooks (they run in the runtime's namespaces) or a joined PID or mount
namespace, it answers "python" and Python's ``create`` drives it (``Launch``):

    create ──plan, namespaces──▶ init: session, console, namespaces
    create ──cgroup files (made meanwhile)──▶ init: joins; a PID namespace it is not
                                              PID 1 of needs one more fork
       ◀── "pid N" ─── the PID containerd must hold
    create ──ack (after its record names the PID)──▶ init: blocks opening exec.fifo

Then, either way:

    start ──opens exec.fifo──▶ init: network, user, fds … execve(monitor argv)

exec.fifo is the start barrier and the error channel at once: the init keeps
its write end open (close-on-exec) until ``execve``, and writes one NUL right
before it. ``start`` reading the NUL and EOF means the monitor replaced the
init (however soon the monitor then ends); other bytes are the init's error
message; EOF alone, an init that died first.
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


# Set by the native front end (src/front/urunc.c) for `create`: "PID:REQUEST_FD:REPORT_FD:NEWPID"
# of the init it started, which answered "python" (see _create_here) and now waits for a
# Launch; NEWPID is 1 when it was started as PID 1 of a new PID namespace.
PREWARMED_ENV = "URUNC_INIT"


class Handle:
    """An init process waiting for its request: host PID, the request and report pipes."""

    __slots__ = ("pid", "request", "report", "new_pid_ns", "used")

    def __init__(self, pid: int, request: int, report: int, new_pid_ns: bool = False) -> None:
        self.pid, self.request, self.report = pid, request, report
        self.new_pid_ns = new_pid_ns  # PID 1 of a PID namespace of its own already
        self.used = False

    def discard(self) -> None:
        """Unless a ``Launch`` took it (create failed early, the bundle is runc's): end it."""
        if not self.used:
            self.end()

    def end(self) -> None:
        """Close its pipes, kill it and reap it."""
        self.used = True
        for fd in (self.request, self.report):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def take_prewarmed() -> Handle | None:
    """The front end's waiting init, if it started one; the variable never reaches hooks or runc."""
    value = os.environ.pop(PREWARMED_ENV, None)
    try:
        pid, request, report, new_pid_ns = (int(part) for part in (value or "").split(":"))
        for fd in (request, report):
            os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return Handle(pid, request, report, bool(new_pid_ns))


def _start_init() -> Handle:
    """Start an init process now (no front end started one): this interpreter, this package."""
    import urunc

    request_r, request_w = os.pipe()
    report_r, report_w = os.pipe()
    os.set_inheritable(request_r, True)
    os.set_inheritable(report_w, True)
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(urunc.__file__)))
    code = (f"import gc; gc.disable(); import sys; sys.path.insert(0, {package_dir!r}); "
            "from urunc.init import main; main()")
    try:
        pid = os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", "-c", code, f"{request_r}:{report_w}:0"],
                             dict(os.environ))
    except OSError as exc:
        for fd in (request_r, request_w, report_r, report_w):
            os.close(fd)
        raise _errors.HostError(f"cannot start the container init ({sys.executable}): {exc.strerror}") from None
    os.close(request_r)
    os.close(report_w)
    return Handle(pid, request_w, report_r)


class Launch:
    """Hand an init its container in two steps, so that ``create`` makes the cgroup meanwhile.

    ``Launch(...)`` sends the plan and namespaces: the init enters its session and
    namespaces while ``create`` creates the cgroup; ``finish(cgroup_files, record_pid)``
    sends where to join, then returns the init's host PID once it is in place.

    The init is a process of its own (``main``): the one the front end started,
    handed over after it answered "python" (see ``_create_here``), else one started
    here. Either way a fresh process, not a fork of this one: after a fork every
    page either side touches is copied, which tripled the cost of what both did.

    The init goes on only after ``record_pid(pid)`` returned and acknowledged it:
    if ``create`` dies before its state names the PID, the init sees the request
    pipe close and exits, so no init is ever left that ``delete`` cannot find.
    """

    def __init__(self, plan: Plan, namespaces: list[tuple[str, str]], fifo: str, console_socket: str | None,
                 handle: Handle | None = None) -> None:
        from urunc import _jsonlite

        new_pid_ns = ("pid", "") in namespaces
        if handle is not None and handle.new_pid_ns and not new_pid_ns:
            handle.discard()  # the front end read the spec otherwise: not this one
            handle = None
        self.init = handle or _start_init()
        self.init.used = True
        # Made PID 1 of the container's PID namespace by the front end, or it forks once more
        # (see _enter), and its PID comes from the intermediate process.
        self.pid_ns_ready = new_pid_ns and self.init.new_pid_ns
        self.forks_again = any(kind == "pid" for kind, _ in namespaces) and not self.pid_ns_ready
        from urunc import _log

        log = [os.path.abspath(_log._log_path) if _log._log_path else None, _log._log_format, _log._debug]
        request = {"plan": plan.to_dict(), "namespaces": namespaces, "fifo": fifo,
                   "console_socket": console_socket, "log": log, "pid_ns_ready": self.pid_ns_ready}
        self._send((_jsonlite.dumps(request) + "\n").encode())

    def _send(self, data: bytes) -> None:
        try:
            _write_all(self.init.request, data)
        except OSError:
            pass  # it died: its report says why, or nothing ("container init died")

    def finish(self, cgroup_files: list[str], record_pid: Callable[[int], None] | None = None) -> int:
        from urunc import _jsonlite

        init = self.init
        try:
            self._send((_jsonlite.dumps(cgroup_files) + "\n").encode())
            chunks = []
            while True:
                chunk = os.read(init.report, 4096)
                if not chunk:
                    break
                chunks.append(chunk)
            message = b"".join(chunks).decode(errors="replace")
            if self.forks_again or not message.startswith("pid "):
                try:
                    os.waitpid(init.pid, 0)  # the intermediate process, or an init that failed
                except ChildProcessError:
                    pass
            if not message.startswith("pid "):
                raise _errors.HostError(message[6:] if message.startswith("error ") else "container init died")
            init_pid = init.pid if self.pid_ns_ready else int(message[4:])  # the init sees itself as 1
            if record_pid is not None:
                record_pid(init_pid)
            _write_all(init.request, b"1")
            return init_pid
        finally:
            os.close(init.request)
            os.close(init.report)

    def abort(self) -> None:
        self.init.end()


def spawn(plan: Plan, namespaces: list[tuple[str, str]], fifo: str, console_socket: str | None,
          record_pid: Callable[[int], None] | None = None, cgroup_files: list[str] | None = None,
          handle: Handle | None = None) -> int:
    """Both steps of ``Launch`` at once."""
    return Launch(plan, namespaces, fifo, console_socket, handle).finish(cgroup_files or [], record_pid)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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


class _Lines:
    """Newline-framed messages from create on one pipe, then its one-byte ack."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, b""

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                os._exit(0)  # create failed, died, or handed the bundle to runc: nothing to do
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def ack(self) -> bool:
        """True once create recorded our PID; False when it died first."""
        return bool(self.buf or os.read(self.fd, 1))


def main() -> None:
    """The init process. Never returns.

    ``argv[1]`` is "REQUEST_FD:REPORT_FD:NEWPID" (NEWPID 1: started as PID 1 of a new PID
    namespace); after it, from the front end, ``create``'s own arguments: the init then
    creates the container itself (``_create_here``) and the front end only waits for its
    verdict. Without them, or when that cannot be done here, it waits for a ``Launch``.
    """
    request_fd, report_fd, new_pid_ns = (int(part) for part in sys.argv[1].split(":"))
    lines = _Lines(request_fd)
    if sys.argv[2:]:
        _create_here(sys.argv[2:], report_fd, bool(new_pid_ns))
    # Until create's request comes: the modules the init needs before it reports.
    from urunc import _jsonlite
    from urunc.host import cgroups, syscalls  # noqa: F401
    from urunc.unikernel.plan import Plan

    try:
        request = _jsonlite.loads(lines.line())
        from urunc import _log

        _log.configure(*request["log"])  # start-time warnings go where create's would
        plan = Plan.from_dict(request["plan"])
        _enter(plan, [(kind, path) for kind, path in request["namespaces"]], request["fifo"],
               request["console_socket"], lines, report_fd, bool(request["pid_ns_ready"]))
    except BaseException as exc:  # noqa: BLE001 - reported to create, which fails with it
        _report(report_fd, f"error {exc}")
    os._exit(1)


def _verdict(fd: int, line: str) -> None:
    """One line to the front end: ok, fail CODE, runc PATH or python."""
    _write_all(fd, (line + "\n").encode())


def _create_here(argv: list[str], report_fd: int, in_new_pid_ns: bool) -> None:
    """``create ARGV``, run by the init itself: one interpreter on the way, not two.

    The front end waits for the verdict. It returns (after "python") only when the
    container needs the two-process create: create hooks (they run in the runtime's
    namespaces, which this process is about to leave), a PID namespace this process
    cannot be PID 1 of without one more fork (a joined one, or a clone that failed),
    or a joined mount namespace (the record and the pid file are written after entering
    it, and their paths are the host's); then it goes on as an init waiting for a
    ``Launch``.
    """
    _timestamps.mark("cli-start")
    from urunc import _log, cli, lifecycle
    from urunc.commands import _common
    from urunc.host import cgroups, syscalls
    from urunc.oci import hooks, store

    # The front end is `create` for containerd: killed (a timeout), it takes this with it,
    # as a killed `create` always did. Cleared once the container is complete.
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, 9)
    if _reader_gone(report_fd):
        os._exit(1)
    placed: list[tuple[Plan, list[int]]] = []
    try:
        ctx, args = cli.parse(argv)
        _log.configure(ctx.log, ctx.log_format, ctx.debug)
        if ctx.command != "create":
            raise _errors.UsageError(f"the init runs create, not {ctx.command}")
        _timestamps.mark("command-imported")
        container_id, spec, ucfg = _common.unikernel_bundle(ctx, args, "create")
        if ucfg is None:
            _verdict(report_fd, f"runc {_common.find_runc()}")
            os._exit(0)
        spec_hooks = hooks.validate(spec.raw.get("hooks"))
        pid_paths = [path for kind, path in spec.namespaces if kind == "pid"]
        if (spec_hooks.get("prestart") or spec_hooks.get("createRuntime")
                or any(pid_paths) or (pid_paths and not in_new_pid_ns)
                or any(kind == "mount" and path for kind, path in spec.namespaces)):
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, 0)
            _verdict(report_fd, "python")
            return
        console_socket = args.value("console-socket")

        def place(plan: Plan, cgroup_files: list[str], keep: list[int]) -> int:
            _place(spec.namespaces, console_socket, [report_fd, *keep],
                   lambda: cgroups.join(cgroup_files), pid_ns_ready=True)
            placed.append(_hold(plan))
            return int(os.readlink("/proc/self"))  # our PID as the host sees it (PID 1 in here)

        lifecycle.create(ctx, container_id, spec, ucfg, args.value("pid-file"), console_socket, place=place)
    except _errors.UruncError as exc:
        _log.error(str(exc))
        _fail(report_fd, exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - containerd must get one line, never a traceback
        _log.error(f"internal error: {type(exc).__name__}: {exc}")
        _fail(report_fd, _errors.EXIT_ERROR)
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, 0)
    try:
        _verdict(report_fd, "ok")
    except OSError:
        os._exit(1)  # the front end died after all: `delete --force` finds our PID in the record
    os.close(report_fd)
    _timestamps.mark("cli-exit")
    plan, held = placed[0]
    _wait_and_exec(plan, os.path.join(plan.state_dir, store.FIFO), held)


def _fail(report_fd: int, code: int) -> None:
    try:
        _verdict(report_fd, f"fail {code}")
    finally:
        os._exit(code)


def _reader_gone(fd: int) -> bool:
    import select

    poller = select.poll()
    poller.register(fd, 0)
    return any(event & select.POLLERR for _, event in poller.poll(0))


def _place(namespaces: list[tuple[str, str]], console_socket: str | None, keep: list[int],
           join_cgroup: Callable[[], None], pid_ns_ready: bool) -> bool:
    """Session, console, namespaces and cgroup for the calling process.

    True when the process must fork once more to have its PID namespace: a new one
    it did not start in, or a joined one (``setns`` moves only its children there).
    """
    from urunc.host import syscalls

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
        if not path and kind != "user" and not (kind == "pid" and pid_ns_ready):
            new_flags |= _spec.NAMESPACE_FLAGS[kind]
    console = _console_pty(console_socket) if console_socket else None
    # Nothing inherited survives but what the init needs.
    keep_all = sorted({0, 1, 2, *keep, *(fd for _, fd in ns_fds), *([console] if console is not None else [])})
    low = 3
    for fd in keep_all:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)
    os.setsid()
    if console is not None:
        import fcntl

        fcntl.ioctl(console, TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(console, fd)
        if console > 2:
            os.close(console)
    # The cgroup is joined through the host's cgroupfs and from the host's cgroup
    # namespace: first, if the spec joins another mount or cgroup namespace; else after
    # the others (overlapping create's cgroup work), but before a new cgroup namespace,
    # which is rooted where the init stands when it is made.
    cgroup_first = any(kind in ("mount", "cgroup") for kind, _ in ns_fds)
    if cgroup_first:
        join_cgroup()
    joined_pid = any(kind == "pid" for kind, _ in ns_fds)
    for kind, fd in ns_fds:
        syscalls.setns(fd, 0, f"{kind} namespace")
        os.close(fd)
    new_cgroup_ns = new_flags & _spec.NAMESPACE_FLAGS["cgroup"]
    if new_flags & ~new_cgroup_ns:
        syscalls.unshare(new_flags & ~new_cgroup_ns)
    if new_flags & _spec.NAMESPACE_FLAGS["mount"]:
        # Nothing this container mounts may propagate back to the host.
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
    if not cgroup_first:
        join_cgroup()
    if new_cgroup_ns:
        syscalls.unshare(new_cgroup_ns)
    # A process whose children's PID namespace is not its own cannot create threads
    # (the monitor must): the PID namespace needs the fork.
    return bool(new_flags & _spec.NAMESPACE_FLAGS["pid"]) or joined_pid


def _enter(plan: Plan, namespaces: list[tuple[str, str]], fifo: str, console_socket: str | None,
           lines: _Lines, report_fd: int, pid_ns_ready: bool) -> None:
    """For a ``Launch``: into place, report the PID, wait for the ack, then for start."""
    from urunc import _jsonlite
    from urunc.host import cgroups

    def join_cgroup() -> None:  # the cgroup create made meanwhile (see Launch)
        cgroups.join(_jsonlite.loads(lines.line()))

    forks = _place(namespaces, console_socket, [lines.fd, report_fd], join_cgroup, pid_ns_ready)
    plan, held = _hold(plan)
    if forks:
        pid = os.fork()
        if pid != 0:
            _report(report_fd, f"pid {pid}")
            os._exit(0)
        os.close(report_fd)
    else:
        _report(report_fd, f"pid {os.getpid()}")
    acked = lines.ack()
    os.close(lines.fd)
    if not acked:
        os._exit(1)
    _wait_and_exec(plan, fifo, held)


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


def _hold(plan: Plan) -> tuple[Plan, list[int]]:
    """The image's files, opened by the init at create, inside the rootfs, and kept: what
    start boots is what create checked, whatever happens to the rootfs meanwhile."""
    from urunc.host import handover

    return handover.hold(plan)


def _wait_and_exec(plan: Plan, fifo: str, held: list[int]) -> None:
    _exit_on_terminating_signals()
    _preload(plan)
    early = _prepare_early(plan)
    _timestamps.mark("init-waiting")
    fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)  # blocks until `start` opens the other end
    _timestamps.mark("init-released")
    try:
        from urunc import monitors
        from urunc.host import handover, identity

        monitor = monitors.get(plan.monitor)
        plan, granted, groups = identity.prepare(plan, monitor.fd_sets)  # as root: what the user cannot open
        if early is not None and (plan.netns == "none" or not _has_eth()):
            argv, monitor_fds = early  # still no network to give: what was built is right
        else:
            argv, monitor_fds = _prepare_start(plan)
        # A held file identity swapped for a copy or an fd set is not the monitor's to keep.
        named = {plan.kernel, *plan.files.values()}
        granted = [*granted, *monitor_fds, *(h for h in held if handover.fd_path(h) in named)]
        _timestamps.mark("argv-built")
        import _signal

        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        sys.stdout.flush()
        os.chdir("/")
        from urunc import guests

        guests.get(plan.guest).before_exec(plan)
        _timestamps.mark("init-exec")
        # Only the standard streams, the fifo (closed by execve itself) and the
        # fds granted to the monitor reach it.
        low = 3
        for keep in sorted({fd, *granted}):
            os.closerange(low, keep)
            low = keep + 1
        os.closerange(low, 1 << 20)
        identity.drop(plan.uid, plan.gid, groups)
        monitor.confine()
        # `start` reads one NUL as "the monitor runs now": a monitor that ends at once (a
        # guest that crashes on its first instruction) is still a container that started.
        os.write(fd, b"\0")
        os.execve(argv[0], argv, MONITOR_ENV)
    except BaseException as exc:  # noqa: BLE001 - report to `start`, never return into create's code
        message = str(exc) if isinstance(exc, _errors.UruncError) else f"{type(exc).__name__}: {exc}"
        try:
            os.write(fd, message.encode()[:4000] or b"init failed")
        except OSError:
            pass
        os._exit(1)


def _prepare_early(plan: Plan) -> tuple[list[str], list[int]] | None:
    """The start-time argv, built before ``start`` when nothing there can change it yet.

    Only for a root monitor (no files to reopen as the user) and while the namespace
    has no eth0: ``start`` uses it if eth0 still has not appeared (``ctr run`` without
    CNI, ``--network none``), and builds it again if CNI ran in between.
    """
    if plan.uid != 0 or (plan.netns != "none" and _has_eth()):
        return None
    try:
        return _prepare_start(plan)
    except Exception:  # noqa: BLE001 - start builds it again and reports the error
        return None


def _preload(plan: Plan) -> None:
    """Import what the start path runs, while create finishes and before start comes.

    Not in a thread: one still holding the GIL when ``start`` arrives delays the
    start path by up to the 5 ms switch interval.
    """
    try:
        from urunc import guests, monitors
        from urunc.host import identity  # noqa: F401

        guests.get(plan.guest)
        monitors.get(plan.monitor)
        if plan.netns != "none" and _has_eth():
            from urunc.host import network  # noqa: F401
    except Exception:  # noqa: BLE001 - the start path reports the real error, if any
        pass


def _has_eth() -> bool:
    """Whether this network namespace has eth0 (one ioctl); if not yet, start imports network itself."""
    import _socket

    try:
        _socket.if_nametoindex("eth0")
    except OSError:
        return False
    return True


def _prepare_start(plan: Plan) -> tuple[list[str], list[int]]:
    """Start-time work inside the container's namespaces: network, then the monitor's argv
    and the descriptors it inherits."""
    from urunc import guests, monitors

    guest = guests.get(plan.guest)
    monitor = monitors.get(plan.monitor)
    net = None
    fds: list[int] = []
    if plan.netns == "none" or _has_eth():  # no eth0, no network: its code need not even load
        from urunc.host import network

        net = network.setup(plan)
        if net is not None and plan.uid != 0:
            fd = network.open_tap(net.tap)
            fds.append(fd)
            plan = plan.replace(files={**plan.files, "tap_fd": str(fd)})
    if plan.files.get("snapshot"):
        from urunc import templates

        plan = templates.for_network(plan, net is not None)
    plan, handed = monitor.hand_over(plan)
    fds += handed
    guest.start_files(plan, net)
    return monitor.argv(plan, guest, net), fds
