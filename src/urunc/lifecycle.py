"""The OCI lifecycle for unikernel containers: create, start, kill, delete.

Each step checks the state machine before any side effect, and every
failure path releases what this container created, recorded in its state
directory; nothing is found by a name pattern.
"""

from __future__ import annotations

import os

from urunc import _errors, _log, _timestamps
from urunc._files import write_atomic
from urunc.oci import store
from urunc.oci.store import CREATED, CREATING, PAUSED, RUNNING, STOPPED, Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from urunc import init
    from urunc.cli import Context
    from urunc.oci.spec import Spec
    from urunc.unikernel.config import UnikernelConfig
    from urunc.unikernel.plan import Plan

START_TIMEOUT = 60.0
DEFAULT_STOP_GRACE = 10
SIGKILL = 9
SIGTERM = 15
# A mark for the native `start` (src/front/urunc.c): poststart hooks only Python runs.
POSTSTART_MARK = "poststart"


def front_end_defines() -> list[str]:
    """The C front end's constants, as its build's -D options: they are Python's (the start
    timeout, the container ID rule), passed in by packaging/install.sh and tests/helpers/front.py."""
    chars = "".join(sorted(store.ID_CHARS))  # letters, digits and _+-.: one shell word, one C string
    return [f"-DSTART_TIMEOUT_MS={round(START_TIMEOUT * 1000)}", f'-DID_CHARS="{chars}"',
            f"-DID_MAX={store.MAX_ID_LENGTH}"]


def write_pid_file(path: str, pid: int) -> None:
    write_atomic(path, str(pid).encode(), 0o644, tmp=f"{path}.urunc-tmp")


def create(ctx: Context, container_id: str, spec: Spec, ucfg: UnikernelConfig,
           pid_file: str | None, console_socket: str | None, handle: init.Handle | None = None,
           place: Callable[[Plan, list[str], list[int]], int] | None = None) -> int:
    """Create the container; return its PID.

    The init is another process (started by the front end, HANDLE, or now), given its
    plan by a ``Launch``; or, with PLACE, this process is the init (``init._create_here``):
    ``place(plan, cgroup_files, fds_to_keep)`` moves it into its namespaces and cgroup and
    returns its host PID.
    """
    _timestamps.mark("spec-loaded")
    from urunc import config, init
    from urunc.host import proc
    from urunc.unikernel import plan as _plan

    container = Container(ctx.root, container_id)
    if container.kind() != "missing":
        raise _errors.AlreadyExists(container_id)
    if spec.terminal and not console_socket:
        raise _errors.UsageError("process.terminal is true but no --console-socket was given")
    if any(kind == "user" and not path for kind, path in spec.namespaces):
        raise _errors.NotSupported("user namespaces are not supported for unikernel containers")
    from urunc.oci import hooks

    spec_hooks = hooks.validate(spec.raw.get("hooks"))
    cfg = config.load(ctx.root)
    _timestamps.mark("config-loaded")
    plan = _plan.build(container_id, spec, ucfg, cfg, container.dir)
    _timestamps.mark("plan-built")
    container.create_dir()
    joined: list[str] = []
    try:
        with container:
            from urunc import guests

            # Guest files (a Linux guest's initrd) live in the state dir, made only now.
            guest = guests.get(plan.guest)
            if plan.template:
                from urunc import templates

                plan = templates.choose(plan, guest)
            plan = guest.write_files(plan)
            _timestamps.mark("guest-prepared")
            # Created before the hooks run, created once they ran (none: at once).
            create_hooks = bool(spec_hooks.get("prestart") or spec_hooks.get("createRuntime"))
            container.record = {
                "id": container_id, "status": CREATING if create_hooks else CREATED, "pid": 0,
                "pid_start": None, "bundle": spec.bundle, "rootfs": spec.rootfs,
                "created": store.rfc3339_now(), "annotations": spec.annotations, "plan": plan.to_dict(),
                "hooks": spec_hooks,
                "stop_grace": cfg.monitor_int(plan.monitor, "shutdown_grace_seconds",
                                              DEFAULT_STOP_GRACE, 0, 3600),
            }
            fifo = container.path(store.FIFO)
            os.mkfifo(fifo, 0o600)
            if spec_hooks.get("poststart"):
                write_atomic(container.path(POSTSTART_MARK), b"")  # the native start leaves these to Python
            def record_pid(pid: int) -> None:
                # The record's first write, before the init may go on: a create killed
                # from here on leaves a PID that `delete --force` kills, and one killed
                # before leaves an init that exits by itself (see init.Launch). One
                # write, not two: replacing a file costs ~0.3-1 ms on ext4 (auto_da_alloc).
                container.record["pid"] = pid
                container.record["pid_start"] = proc.start_time(pid)
                container.save()

            from urunc.host import cgroups

            if place is not None:
                cgroup_files = cgroups.setup(container.dir, container_id, spec, plan, ctx.systemd_cgroup)
                joined = cgroup_files  # from here on this process may be in the container's cgroup
                pid = place(plan, cgroup_files, [container.lock_fd])
                record_pid(pid)
            else:
                launch = init.Launch(plan, spec.namespaces, fifo, console_socket, handle)
                try:
                    cgroup_files = cgroups.setup(container.dir, container_id, spec, plan, ctx.systemd_cgroup)
                except BaseException:
                    launch.abort()
                    raise
                pid = launch.finish(cgroup_files, record_pid)
            _timestamps.mark("init-placed")
            if create_hooks:
                for stage in ("prestart", "createRuntime"):
                    hooks.run(stage, spec_hooks, container.oci_state(), fatal=True)
                container.record["status"] = CREATED
                container.save()
            if pid_file:
                write_pid_file(pid_file, pid)
    except BaseException as exc:
        if place is not None:
            container.record["pid"] = 0  # the recorded init is this very process: it exits by itself
            if joined:
                from urunc.host import cgroups

                cgroups.leave(joined)  # or its cgroup could not be removed
        _destroy(container)
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            raise _errors.HostError(
                f"cannot create container {container_id}: {exc.strerror or exc}{where}") from None
        raise
    _timestamps.mark("create-done")
    return pid


def start(ctx: Context, container: Container) -> None:
    import select
    import time

    from urunc.host import proc

    with container:
        container.load()
        status = container.status()
        if status != CREATED:
            raise _errors.WrongState(f"cannot start container {container.id}: it is {status}")
        pid = container.pid
        pid_start = container.record.get("pid_start")
        fifo = container.path(store.FIFO)
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            _timestamps.mark("start-fifo-opened")
        except FileNotFoundError:
            raise _errors.WrongState(f"cannot start container {container.id}: it was started already") from None
        message = b""
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                events = poller.poll(50)
                if events:
                    try:
                        chunk = os.read(fd, 4096)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        break
                    message += chunk
                    continue
                if not proc.is_alive(pid, pid_start):
                    break
                if time.monotonic() > deadline:
                    raise _errors.HostError(f"container {container.id} did not start within {START_TIMEOUT:.0f}s")
        finally:
            os.close(fd)
        os.unlink(fifo)
        # One NUL comes right before the init's execve (init.py): the monitor ran, however
        # soon it ended; a message after it is an execve that failed.
        execd = message.startswith(b"\0")
        message = message[1:] if execd else message
        if message:
            container.record["status"] = STOPPED
            container.save()
            raise _errors.HostError(message.decode(errors="replace"))
        if not execd and not proc.is_alive(pid, pid_start):
            container.record["status"] = STOPPED
            container.save()
            raise _errors.HostError(f"container {container.id} init exited before start")
        container.record["status"] = RUNNING
        container.save()
        _timestamps.mark("start-done")
        if container.record.get("hooks"):
            from urunc.oci import hooks

            hooks.run("poststart", container.record["hooks"], container.oci_state(), fatal=False)


def kill(container: Container, signal: int, all_processes: bool) -> None:
    """Signal the container's process; SIGTERM to a running QEMU first asks the guest to power off.

    With a QMP socket, SIGTERM becomes an ACPI power-button press and a detached
    watchdog sends SIGTERM itself after the grace period if the monitor still
    runs, so ``kill`` returns at once (containerd waits on it). A unikernel
    container has one process, so ``--all`` signals that one.
    """
    with container:
        container.load()
        status = container.status()
        if status not in (CREATED, RUNNING, PAUSED):
            if all_processes and status == STOPPED:
                return
            raise _errors.WrongState(f"container {container.id} is not running: it is {status}")
        pid = container.pid
        pid_start = container.record.get("pid_start")
        grace = container.record.get("stop_grace", DEFAULT_STOP_GRACE)
        graceful = (signal == SIGTERM and status == RUNNING and isinstance(grace, int) and grace > 0
                    and _powerdown(container))
        if not graceful:
            from urunc.host import proc

            if not proc.send_signal(pid, pid_start, signal, own_leaf(container.dir)):
                raise _errors.WrongState(f"container {container.id} is not running")
            if status == PAUSED:
                from urunc.host import freezer

                freezer.after_signal(container.dir, signal)
            return
    _signal_after(pid, pid_start, SIGTERM, grace, own_leaf(container.dir))


def _powerdown(container: Container) -> bool:
    """Ask the guest to stop: a guest with an exec channel (a Linux guest) gets SIGTERM for its
    application through its init at once; others get the power button pressed through QMP.
    False when there is nobody to ask (the caller signals the monitor)."""
    plan = container.record.get("plan") or {}
    if isinstance(plan, dict) and plan.get("exec_ports"):
        from urunc.guests import linux_exec

        if linux_exec.stop_application(container.dir, SIGTERM):
            return True
    from urunc.monitors import qmp

    path = qmp.socket_path(container.dir)
    if not path or not os.path.exists(path):
        return False
    try:
        qmp.powerdown(path)
    except qmp.QmpError as exc:
        _log.warning(f"graceful stop of container {container.id} unavailable, signalling: {exc}")
        return False
    return True


def _signal_after(pid: int, pid_start: int | None, signal: int, delay: float, leaf: str | None) -> None:
    """Send SIGNAL to PID after DELAY seconds unless it is gone, from a detached process."""
    import time

    from urunc.host import proc

    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        # Hold none of the caller's pipes: the shim reads our caller's output to EOF.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1 << 20)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if not proc.is_alive(pid, pid_start):
                os._exit(0)
            time.sleep(0.1)
        proc.send_signal(pid, pid_start, signal, leaf)
    except BaseException:  # noqa: BLE001 - a forked child must never return
        pass
    os._exit(0)


def delete(container: Container, force: bool) -> None:
    try:
        _delete(container, force)
    except OSError as exc:  # the state dir cannot be changed (a read-only or full filesystem)
        where = f" ({exc.filename})" if exc.filename else ""
        raise _errors.HostError(f"cannot delete container {container.id}: {exc.strerror or exc}{where}") from None


def _delete(container: Container, force: bool) -> None:
    from urunc.host import proc

    with container:
        try:
            container.load()
        except _errors.ContainerError:
            if not force:
                raise
            # No readable record (a create killed before its first save, a damaged file):
            # kill the init if its PID and start time can still be read; _destroy finds it
            # by its cgroup either way, then removes everything.
            pid, pid_start = _salvage_pid(container)
            if proc.is_alive(pid, pid_start):
                _kill_and_wait(container, pid, pid_start)
            _destroy(container, record_damaged=True)
            return
        status = container.status()
        if status in (RUNNING, PAUSED) and not force:
            raise _errors.WrongState(
                f"cannot delete container {container.id} that is not stopped: it is {status}",
                hint="use delete --force")
        pid = container.pid
        if status in (CREATED, RUNNING, PAUSED, CREATING) and pid > 0:
            _kill_and_wait(container, pid, container.record.get("pid_start"))
        if container.record.get("hooks"):
            from urunc.oci import hooks

            state = container.oci_state()
            state["status"] = STOPPED
            hooks.run("poststop", container.record["hooks"], state, fatal=False)
        _destroy(container)


def own_leaf(state_dir: str) -> str | None:
    """The cgroup this container created for its init (None when it joined one that existed):
    the recorded PID is signalled only while it is in there."""
    from urunc.host import resources

    for resource in resources.load(state_dir, strict=False):
        if isinstance(resource, dict) and resource.get("kind") == "cgroup":
            leaves = resource.get("leaves")
            if isinstance(leaves, list) and leaves and isinstance(leaves[0], str):
                return leaves[0]
    return None


def _kill_and_wait(container: Container, pid: int, pid_start: int | None) -> None:
    from urunc.host import proc

    if not proc.send_signal(pid, pid_start, SIGKILL, own_leaf(container.dir)):
        return  # gone, or not ours to kill: the cgroup's own processes are found in _destroy
    from urunc.host import freezer

    freezer.unfreeze(container.dir)  # a paused (frozen) monitor dies only once thawed
    if not proc.wait_gone(pid, pid_start, 10.0):
        raise _errors.HostError(f"container {container.id} process {pid} did not die")


def _salvage_pid(container: Container) -> tuple[int, int | None]:
    """PID and start time from a damaged state file (or its half-written successor), if any."""
    from urunc._files import read_regular

    for name in (store.STATE_FILE, store.STATE_FILE + ".tmp"):
        try:
            data = read_regular(container.path(name), store.MAX_RECORD_BYTES, nofollow=True)
        except OSError:
            continue
        pid = _int_field(data, b'"pid":')
        if pid:
            return pid, _int_field(data, b'"pid_start":')
    return 0, None


def _int_field(data: bytes, key: bytes) -> int | None:
    at = data.find(key)
    if at < 0:
        return None
    digits = data[at + len(key):at + len(key) + 24].strip().split(b",")[0].split(b"}")[0].strip()
    return int(digits) if digits.isdigit() else None


def _destroy(container: Container, record_damaged: bool = False) -> None:
    """Kill a still-living init, release every recorded host resource, newest first, then the state dir.

    With no readable record, resources.json alone names the container's cgroup, and a forged
    one could name another container's: then only a cgroup named for this container (its ID
    in the leaf's name, as containerd, Kubernetes, Docker and systemd name theirs) is emptied
    and removed; any other is left, with a warning."""
    from urunc.host import cgroups, proc, resources

    # A create failing after the fork (a hook, a full disk) leaves an init blocked on exec.fifo.
    pid = int(container.record.get("pid") or 0)
    if proc.is_alive(pid, container.record.get("pid_start")):
        try:
            _kill_and_wait(container, pid, container.record.get("pid_start"))
        except _errors.HostError as exc:
            _log.warning(str(exc))

    recorded = resources.load(container.dir, strict=False)
    if record_damaged:
        recorded = [r for r in recorded if _named_for(container, r)]
    from urunc.host import freezer

    freezer.unfreeze(container.dir)  # a frozen cgroup's members die, and it is removed, once thawed
    # Whatever still runs in the cgroup this container created is its own: the init of a
    # record too damaged to name it, or one whose PID the record lost.
    for resource in recorded:
        if isinstance(resource, dict) and resource.get("kind") == "cgroup":
            try:
                cgroups.kill_members(resource)
            except _errors.UruncError as exc:
                _log.warning(f"container {container.id}: {exc}")
    for resource in reversed(recorded):
        try:
            _release(container, resource)
        except Exception as exc:  # noqa: BLE001 - go on releasing the rest, report each
            _log.warning(f"cannot release {str(resource)[:300]}: {exc}")
    _remove_tree(container.dir)


def _named_for(container: Container, resource: Any) -> bool:
    """Whether a cgroup entry's leaves all carry the container's ID (other kinds pass)."""
    if not (isinstance(resource, dict) and resource.get("kind") == "cgroup"):
        return True
    leaves = resource.get("leaves")
    if isinstance(leaves, list) and leaves and all(isinstance(leaf, str) and container.id in os.path.basename(leaf)
                                                   for leaf in leaves):
        return True
    _log.warning(f"container {container.id}: its record is unreadable and resources.json names cgroup "
                 f"{str(leaves)[:200]} not named for it: left in place")
    return False


def _release(container: Container, resource: Any) -> None:
    """Undo one recorded resource; one that names what is not this container's is refused:
    a file outside its state dir, a directory outside the cgroup filesystem, a namespace
    that is not one (see cgroups.checked, network.release)."""
    kind = resource.get("kind") if isinstance(resource, dict) else None
    if kind == "file":
        path = resource.get("path")
        state_dir = os.path.realpath(container.dir)
        parent = os.path.realpath(os.path.dirname(path)) if isinstance(path, str) and "\0" not in path else ""
        if (not parent or os.path.basename(path) in ("", ".", "..")
                or not (parent == state_dir or parent.startswith(state_dir + "/"))):
            raise _errors.HostError(f"refusing to remove {path!r:.200}: not in the state directory")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    elif kind == "cgroup":
        from urunc.host import cgroups

        cgroups.release(resource)
    elif kind == "tap":
        import stat

        from urunc.host import network

        path = resource.get("netns")
        try:
            st = os.stat(path) if isinstance(path, str) and path else None
        except FileNotFoundError:
            return  # the namespace is gone, and our interfaces with it
        # A namespace file (nsfs) is a regular file; a FIFO here would block the open
        if st is None or not stat.S_ISREG(st.st_mode):
            raise _errors.HostError(f"refusing to open {path!r:.200}: not a network namespace")
        network.release(resource)


def _remove_tree(path: str) -> None:
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
