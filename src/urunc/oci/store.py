"""The state of one container: ``<root>/<ID>/``, one record, written atomically, locked.

The record is ours alone (runc keeps ``state.json`` in its own directories
under the same root), so ``urunc-state.json`` marks a directory as a urunc
container; any other directory there belongs to runc.
"""

from __future__ import annotations

import fcntl
import os
import time

from urunc import _errors, _jsonlite
from urunc._files import read_regular
from urunc.host import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "urunc-state.json"
FIFO = "exec.fifo"

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
STOPPED = "stopped"
PAUSED = "paused"  # a running container with a PAUSE_MARK (see host/freezer.py)
PAUSE_MARK = "paused"

MAX_ID_LENGTH = 255  # NAME_MAX: the ID names the state directory (and, by default, the cgroup)
MAX_RECORD_BYTES = 16 * 1024 * 1024
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(container_id: str) -> None:
    """runc's rule (letters, digits, ``_+-.``), and a length the state dir's name can take:
    the same rule as ``valid_id`` in src/front/urunc.c."""
    if len(container_id) > MAX_ID_LENGTH:
        raise _errors.UsageError(f"invalid container id {container_id[:40]!r}... "
                                 f"({len(container_id)} characters, at most {MAX_ID_LENGTH})")
    if not container_id or container_id in (".", "..") or not set(container_id) <= _ID_CHARS:
        raise _errors.UsageError(f"invalid container id {container_id!r}")


def rfc3339_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int((now % 1) * 1e9):09d}Z"


class Container:
    """A container's directory and record; use as a context manager to hold its lock."""

    __slots__ = ("id", "dir", "record", "_lock_fd")

    def __init__(self, root: str, container_id: str) -> None:
        validate_id(container_id)
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self.record: dict[str, Any] = {}
        self._lock_fd = -1

    # -- locating -----------------------------------------------------------------------------
    def kind(self) -> str:
        """``urunc``, ``runc`` (a directory we did not make) or ``missing``."""
        if os.path.exists(os.path.join(self.dir, STATE_FILE)):
            return "urunc"
        if os.path.exists(os.path.join(self.dir, "state.json")):
            return "runc"
        # Neither record: a create (ours or runc's) killed before its first save;
        # like runc, `delete --force` removes such a directory.
        return "urunc" if os.path.isdir(self.dir) else "missing"

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- locking ------------------------------------------------------------------------------
    def lock(self) -> None:
        try:
            self._lock_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _errors.NotFound(self.id) from None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    @property
    def lock_fd(self) -> int:
        return self._lock_fd

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Container:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    # -- the record ---------------------------------------------------------------------------
    def create_dir(self) -> None:
        root = os.path.dirname(self.dir)
        os.makedirs(root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.dir, 0o700)
        except FileExistsError:
            raise _errors.AlreadyExists(self.id) from None

    def load(self) -> dict[str, Any]:
        try:
            data = read_regular(os.path.join(self.dir, STATE_FILE), MAX_RECORD_BYTES, nofollow=True)
        except FileNotFoundError:
            raise _errors.NotFound(self.id) from None
        except OSError as exc:
            raise _errors.ContainerError(f"state of container {self.id} is corrupt: "
                                         f"{STATE_FILE}: {exc.strerror}") from None
        try:
            record = _jsonlite.loads(data)
        except ValueError as exc:
            raise _errors.ContainerError(f"state of container {self.id} is corrupt: {exc}") from None
        if not isinstance(record, dict):
            raise _errors.ContainerError(f"state of container {self.id} is corrupt")
        damage = _damage(record)
        if damage:
            raise _errors.ContainerError(f"state of container {self.id} is corrupt: {damage}")
        self.record = record
        return record

    def save(self) -> None:
        """Write, rename: a reader (or a crash) sees the old record or the new, never half of one."""
        from urunc._files import write_atomic

        final = os.path.join(self.dir, STATE_FILE)
        # A fixed temporary name: `delete --force` salvages the PID from it after a crash.
        write_atomic(final, _jsonlite.dumps(self.record).encode(), tmp=final + ".tmp")

    # -- derived facts ------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return int(self.record.get("pid") or 0)

    def status(self) -> str:
        recorded = self.record.get("status", CREATING)
        if recorded == STOPPED:
            return STOPPED
        pid = self.pid
        if pid <= 0:
            return CREATING if recorded == CREATING else STOPPED
        if not proc.is_alive(pid, self.record.get("pid_start")):
            return STOPPED
        if recorded == CREATED and not os.path.exists(os.path.join(self.dir, FIFO)):
            recorded = RUNNING  # started by the native `start` (src/front/urunc.c), which leaves the record be
        if recorded == RUNNING and os.path.exists(os.path.join(self.dir, PAUSE_MARK)):
            return PAUSED
        return str(recorded)

    def oci_state(self) -> dict[str, Any]:
        status = self.status()
        return {
            "ociVersion": "1.0.2",
            "id": self.id,
            "status": status,
            "pid": self.pid if status in (CREATING, CREATED, RUNNING, PAUSED) else 0,
            "bundle": self.record.get("bundle", ""),
            "rootfs": self.record.get("rootfs", ""),
            "created": self.record.get("created", ""),
            "annotations": self.record.get("annotations", {}),
            "owner": "",
        }


def _damage(record: dict[str, Any]) -> str:
    """What in a loaded record has a type or value no urunc writes ("" when none): every command
    reads these fields as typed (a PID is signalled, the OCI state goes to containerd)."""
    status = record.get("status", CREATING)
    if status not in (CREATING, CREATED, RUNNING, STOPPED):
        return f"status {status!r:.80}"
    for key in ("pid", "pid_start"):
        value = record.get(key)
        if value is not None and (type(value) is not int or not 0 <= value < (2**31 if key == "pid" else 2**63)):
            return f"{key} {value!r:.80}"
    for key in ("bundle", "rootfs", "created"):
        if not isinstance(record.get(key, ""), str):
            return f"{key} is not a string"
    annotations = record.get("annotations", {})
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        return "annotations are not strings"
    if not isinstance(record.get("hooks") or {}, dict):
        return "hooks are not an object"
    return ""


def list_ids(root: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(root) if not name.startswith("."))
    except FileNotFoundError:
        return []
