"""The OCI lifecycle for unikernel containers: create, start, kill, delete.

Each step checks the state machine before any side effect, and every
failure path releases what this container created, recorded in its state
directory; nothing is found by a name pattern.
"""

from __future__ import annotations

import os

from urunc import _errors, _log
from urunc.oci import store
from urunc.oci.store import CREATED, CREATING, RUNNING, STOPPED, Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Context
    from urunc.oci.spec import Spec
    from urunc.unikernel.config import UnikernelConfig

START_TIMEOUT = 60.0
RESOURCES_FILE = "resources.json"


def write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.urunc-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def create(ctx: Context, container_id: str, spec: Spec, ucfg: UnikernelConfig,
           pid_file: str | None, console_socket: str | None) -> int:
    from urunc import config
    from urunc.host import init, proc
    from urunc.unikernel import plan as _plan

    container = Container(ctx.root, container_id)
    if container.kind() != "missing":
        raise _errors.AlreadyExists(container_id)
    if spec.terminal and not console_socket:
        raise _errors.UsageError("process.terminal is true but no --console-socket was given")
    cfg = config.load()
    plan = _plan.build(container_id, spec, ucfg, cfg, container.dir)
    container.create_dir()
    try:
        with container:
            container.record = {
                "id": container_id, "status": CREATING, "pid": 0, "pid_start": None,
                "bundle": spec.bundle, "rootfs": spec.rootfs, "created": store.rfc3339_now(),
                "annotations": spec.annotations, "plan": plan.to_dict(),
            }
            container.save()
            fifo = container.path(store.FIFO)
            os.mkfifo(fifo, 0o600)
            pid = init.spawn(plan, spec.namespaces, fifo, console_socket)
            container.record["pid"] = pid
            container.record["pid_start"] = proc.start_time(pid)
            container.record["status"] = CREATED
            container.save()
            if pid_file:
                write_pid_file(pid_file, pid)
    except BaseException:
        _destroy(container)
        raise
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
        if message:
            container.record["status"] = STOPPED
            container.save()
            raise _errors.HostError(message.decode(errors="replace"))
        if not proc.is_alive(pid, pid_start):
            container.record["status"] = STOPPED
            container.save()
            raise _errors.HostError(f"container {container.id} init exited before start")
        container.record["status"] = RUNNING
        container.save()


def kill(container: Container, signal: int, all_processes: bool) -> None:
    with container:
        container.load()
        status = container.status()
        if status not in (CREATED, RUNNING):
            if all_processes and status == STOPPED:
                return
            raise _errors.WrongState(f"container {container.id} is not running: it is {status}")
        try:
            os.kill(container.pid, signal)
        except ProcessLookupError:
            raise _errors.WrongState(f"container {container.id} is not running") from None


def delete(container: Container, force: bool) -> None:
    from urunc.host import proc

    with container:
        container.load()
        status = container.status()
        if status == RUNNING and not force:
            raise _errors.WrongState(
                f"cannot delete container {container.id} that is not stopped: it is {status}",
                hint="use delete --force")
        pid = container.pid
        if status in (CREATED, RUNNING, CREATING) and pid > 0:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            if not proc.wait_gone(pid, container.record.get("pid_start"), 10.0):
                raise _errors.HostError(f"container {container.id} process {pid} did not die")
        _destroy(container)


def _destroy(container: Container) -> None:
    """Release every recorded host resource, newest first, then the state directory."""
    from urunc import _jsonlite

    try:
        with open(container.path(RESOURCES_FILE), "rb") as f:
            resources = _jsonlite.loads(f.read())
    except (FileNotFoundError, ValueError):
        resources = []
    for resource in reversed(resources if isinstance(resources, list) else []):
        try:
            _release(resource)
        except Exception as exc:  # noqa: BLE001 - go on releasing the rest, report each
            _log.warning(f"cannot release {resource}: {exc}")
    _remove_tree(container.dir)


def _release(resource: dict[str, str]) -> None:
    kind = resource.get("kind")
    if kind == "file":
        try:
            os.unlink(resource["path"])
        except FileNotFoundError:
            pass
    elif kind == "tap":
        from urunc.host import network

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
