"""The state of one container: ``<root>/<ID>/``, one record, written atomically, locked.

The record is ours alone (runc keeps ``state.json`` in its own directories
under the same root), so ``urunc-state.json`` marks a directory as a urunc
container; any other directory there belongs to runc.

Beside the record, every save writes ``state-answer``: the answer to ``state`` rendered
here for each combination of the facts only known when it is asked (is the init alive,
is exec.fifo there, is the paused mark there), for the C front end (src/front/urunc.c),
which answers ``state`` and runs ``start`` without an interpreter. It checks those facts
and prints the answer they select; every rule (the status, the OCI state, whether ``start``
may run natively) is decided here. The answer names the record it was rendered from by
its digest (``record_digest``) and size: a record changed since (by anyone) is answered by
Python. Its form::

    urunc-answer-1 ID DIGEST SIZE PID START HEAD TAIL LEN0 FLAG0 ... LEN7 FLAG7\n
    HEAD bytes, the LEN0 ... LEN7 bytes of each middle, TAIL bytes

Facts index ``i`` = alive (1) | exec.fifo exists (2) | paused mark exists (4); answer
``i`` is HEAD + middle ``i`` + TAIL; FLAG ``s``: ``start`` may run natively, ``-``: it
is Python's. PID and START (its start time) name the process whose liveness is checked
(0 0: none, never alive).

With it goes ``delete-answer``, the plan of a stopped container's ``delete`` for the same
front end (``Container.delete_answer``), also tied to ``resources.json`` as it is then.
"""

from __future__ import annotations

import fcntl
import os
import time

from urunc import OCI_VERSION, _errors, _jsonlite
from urunc._files import read_regular
from urunc.host import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

STATE_FILE = "urunc-state.json"
ANSWER_FILE = "state-answer"
ANSWER_FORMAT = "urunc-answer-1"
DELETE_ANSWER_FILE = "delete-answer"
DELETE_FORMAT = "urunc-delete-1"
FIFO = "exec.fifo"

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
STOPPED = "stopped"
PAUSED = "paused"  # a running container with a PAUSE_MARK (see host/freezer.py)
PAUSE_MARK = "paused"

MAX_ID_LENGTH = 255  # NAME_MAX: the ID names the state directory (and, by default, the cgroup)
MAX_RECORD_BYTES = 16 * 1024 * 1024
_DIGEST_PRIME = (1 << 61) - 1
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(container_id: str) -> None:
    """runc's rule (letters, digits, ``_+-.``), and a length the state dir's name can take
    (src/front/urunc.c gets both from its build: lifecycle.front_end_defines)."""
    if len(container_id) > MAX_ID_LENGTH:
        raise _errors.UsageError(f"invalid container id {container_id[:40]!r}... "
                                 f"({len(container_id)} characters, at most {MAX_ID_LENGTH})")
    if not container_id or container_id in (".", "..") or not set(container_id) <= ID_CHARS:
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
        """Write, rename: a reader (or a crash) sees the old record or the new, never half of one.
        Then the front end's answer for it (see the top of this module)."""
        from urunc._files import write_atomic

        final = os.path.join(self.dir, STATE_FILE)
        data = _jsonlite.dumps(self.record).encode()
        # A fixed temporary name: `delete --force` salvages the PID from it after a crash.
        write_atomic(final, data, tmp=final + ".tmp")
        answer = self.answer(data)
        self._write_answer(ANSWER_FILE, answer)
        self._write_answer(DELETE_ANSWER_FILE, self.delete_answer(data) if answer is not None else None)

    def _write_answer(self, name: str, answer: bytes | None) -> None:
        # No rename needed: the front end takes only an answer of exactly the length it declares,
        # so one half-written (or being written) is Python's; and a new file costs less than a
        # replaced one (ext4 flushes a file truncated, or renamed over, when it is closed).
        path = self.path(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            if answer is None:
                os.unlink(path)
                return
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:
                os.unlink(path)
                fd = os.open(path, flags, 0o600)
            try:
                os.write(fd, answer)
            finally:
                os.close(fd)
        except OSError:
            pass  # no answer, or a torn one, or one for another record: the front end asks Python

    def answer(self, data: bytes) -> bytes | None:
        """The ``state-answer`` for this record, saved as DATA (None: a record no urunc
        writes, which only Python answers, in its own words)."""
        record = self.record
        if _damage(record):
            return None
        native_start = not (record.get("hooks") or {}).get("poststart")  # hooks only Python runs
        # One rendering with holes for the status and the PID, the only fields a status changes.
        template = self.oci_state(STOPPED)
        template["status"] = template["pid"] = _jsonlite.HOLE
        head, between, tail = _jsonlite.dumps_around(template, indent=2)
        middles: dict[str, str] = {}
        entries: list[tuple[bytes, bool]] = []
        for facts in range(8):
            status = derive_status(record, *(_yes if facts & bit else _no for bit in (1, 2, 4)))
            middle = middles.get(status)
            if middle is None:
                state = self.oci_state(status)
                if any(state[key] != template[key] for key in template if key not in ("status", "pid")):
                    return None  # (a status that changes more than these: Python answers)
                middle = middles[status] = _jsonlite.dumps(state["status"]) + between + _jsonlite.dumps(state["pid"])
            entries.append((middle.encode(), status == CREATED and native_start))
        pid, start = self.pid, record.get("pid_start")
        check = f"{pid} {start}" if pid > 0 and start is not None else "0 0"
        head_bytes, tail_bytes = head.encode(), (tail + "\n").encode()
        header = [ANSWER_FORMAT, self.id, str(record_digest(data)), str(len(data)), check,
                  str(len(head_bytes)), str(len(tail_bytes))]
        for middle_bytes, startable in entries:
            header += [str(len(middle_bytes)), "s" if startable else "-"]
        body = [head_bytes, *(middle_bytes for middle_bytes, _ in entries), tail_bytes]
        return (" ".join(header) + "\n").encode() + b"".join(body)

    def delete_answer(self, data: bytes) -> bytes | None:
        """The plan of the front end's ``delete`` for this record, saved as DATA, and the
        resources.json there now (None: every delete is Python's)::

            urunc-delete-1 ID DIGEST SIZE RES_DIGEST RES_SIZE FLAGS COUNT\n
            then COUNT lines "l PATH" or "a PATH"

        FLAGS has one character per facts index (see the top of this module): ``d`` where
        ``delete`` may run natively, which is where the container is stopped, its init not
        alive and not paused; ``-`` elsewhere. The lines are the cgroup directories
        lifecycle._destroy removes, in its order: ``l`` a leaf, which must go, ``a`` an
        ancestor, which stays while another container uses it. A record with poststop hooks,
        or resources of any other kind (a tap, a file), has no plan: Python deletes."""
        record = self.record
        if (record.get("hooks") or {}).get("poststop"):
            return None
        from urunc.host import resources as _resources

        try:
            resources = read_regular(self.path(_resources.RESOURCES_FILE), _resources.MAX_BYTES, nofollow=True)
            entries = _jsonlite.loads(resources)
        except FileNotFoundError:
            resources, entries = b"", []
        except (OSError, ValueError):
            return None
        if not isinstance(entries, list):
            return None
        lines: list[str] = []
        for entry in reversed(entries):  # newest first, each deepest first: lifecycle._destroy's order
            if not isinstance(entry, dict) or entry.get("kind") != "cgroup":
                return None
            from urunc.host import cgroups

            try:
                dirs, leaves = cgroups.checked(entry)
            except _errors.UruncError:
                return None
            lines += [f"{'l' if d in leaves else 'a'} {d}" for d in sorted(dirs, key=lambda d: -d.count("/"))]
        if any("\n" in line or "/." in line or "//" in line for line in lines):
            return None  # (the front end takes plain paths only)
        flags = "".join("d" if not facts & 5 and derive_status(record, _no, _yes if facts & 2 else _no, _no) == STOPPED
                        else "-" for facts in range(8))
        header = [DELETE_FORMAT, self.id, str(record_digest(data)), str(len(data)),
                  str(record_digest(resources)), str(len(resources)), flags, str(len(lines))]
        return (" ".join(header) + "\n" + "".join(line + "\n" for line in lines)).encode()

    # -- derived facts ------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return int(self.record.get("pid") or 0)

    def status(self) -> str:
        return derive_status(self.record, lambda: proc.is_alive(self.pid, self.record.get("pid_start")),
                             lambda: os.path.exists(os.path.join(self.dir, FIFO)),
                             lambda: os.path.exists(os.path.join(self.dir, PAUSE_MARK)))

    def oci_state(self, status: str | None = None) -> dict[str, Any]:
        """The OCI state: in STATUS, or the status the record and the host give now."""
        if status is None:
            status = self.status()
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": self.pid if status in (CREATING, CREATED, RUNNING, PAUSED) else 0,
            "bundle": self.record.get("bundle", ""),
            "rootfs": self.record.get("rootfs", ""),
            "created": self.record.get("created", ""),
            "annotations": self.record.get("annotations", {}),
            "owner": "",
        }


def derive_status(record: dict[str, Any], alive: Callable[[], bool], has_fifo: Callable[[], bool],
                  paused: Callable[[], bool]) -> str:
    """The status of a container from its record and three facts of the host, each asked
    only when it matters: its init is alive (the recorded PID with its start time), its
    exec.fifo is there (not started yet), its paused mark is there."""
    recorded = record.get("status", CREATING)
    if recorded == STOPPED:
        return STOPPED
    if int(record.get("pid") or 0) <= 0:
        return CREATING if recorded == CREATING else STOPPED
    if not alive():
        return STOPPED
    if recorded == CREATED and not has_fifo():
        recorded = RUNNING  # started by the native `start` (src/front/urunc.c), which leaves the record be
    if recorded == RUNNING and paused():
        return PAUSED
    return str(recorded)


def record_digest(data: bytes) -> int:
    """DATA read as one big-endian number, modulo the prime 2**61 - 1: what names a record in
    its answer (no import: binascii's would cost every create ~50 µs)."""
    return int.from_bytes(data, "big") % _DIGEST_PRIME


def _yes() -> bool:
    return True


def _no() -> bool:
    return False


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
