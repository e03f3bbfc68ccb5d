"""The host side of the Linux guest's exec channel (docs/exec-protocol.md).

The VM has PORTS virtio-serial ports named ``urunc.exec.N``; QEMU serves each
as a Unix socket in the container's state dir (``exec-N.sock``, bound by the
container's init and handed to QEMU, so they exist before the guest does). One
exec holds one port for its whole life, under an flock on ``exec-N.lock``; the
guest's agent (``guests/linux/agent.c``) runs the process.

Everything from the guest is untrusted: a frame is at most MAX_PAYLOAD bytes
(a longer one ends the exec with an error), a type the host does not know ends
it too, output is written out as it comes (nothing accumulates), and every wait
is bounded or ends with the guest's socket.
"""

from __future__ import annotations

import os

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

PORTS = 16
PROTOCOL = "urunc-exec/1"
MAX_PAYLOAD = 65536
PORT_WAIT_SECONDS = 60.0
GUEST_TYPES = frozenset(b"AOEFX")
ANSWER_SECONDS = 20.0  # for the agent's first answer ('A' or 'F') to a request
EXIT_CHANNEL_LOST = 137  # the VM ended under the exec: as if the process was killed


def socket_path(state_dir: str, index: int) -> str:
    return os.path.join(state_dir, f"exec-{index}.sock")


def frame(kind: str, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {len(payload)} bytes")
    return kind.encode() + len(payload).to_bytes(4, "big") + payload


def request(args: Sequence[str], env: Sequence[str], cwd: str, uid: int, gid: int, groups: Sequence[int],
            tty: bool, rows: int = 0, cols: int = 0) -> bytes:
    """The 'R' frame: NUL-terminated fields (agent.c parse_request)."""
    if not args:
        raise _errors.UsageError("exec needs a command (process.args is empty)")
    fields = [PROTOCOL, "1" if tty else "0", str(rows), str(cols), str(uid), str(gid), str(len(groups)),
              *map(str, groups), cwd or "/", str(len(args)), *args, str(len(env)), *env]
    data = b"".join(os.fsencode(f) + b"\0" for f in fields)
    if any("\0" in f for f in fields):
        raise _errors.UsageError("exec arguments, environment and cwd cannot hold NUL bytes")
    if len(data) > MAX_PAYLOAD:
        raise _errors.UsageError(f"exec request of {len(data)} bytes is larger than {MAX_PAYLOAD}")
    return frame("R", data)


class Frames:
    """Frames from the guest, cut from a byte stream; refuses what the protocol does not allow."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out: list[tuple[int, bytes]] = []
        while len(self.buf) >= 5:
            kind = self.buf[0]
            size = int.from_bytes(self.buf[1:5], "big")
            if kind not in GUEST_TYPES:
                raise _errors.HostError(f"exec channel: the guest sent an unknown frame type {kind}")
            if size > MAX_PAYLOAD:
                raise _errors.HostError(f"exec channel: the guest sent a frame of {size} bytes")
            if len(self.buf) < 5 + size:
                break
            out.append((kind, self.buf[5:5 + size]))
            self.buf = self.buf[5 + size:]
        return out


def exit_status(payload: bytes) -> int:
    """An 'X' frame's status: 0-255, anything else is the guest's error."""
    text = payload.decode("ascii", "replace")
    if not text.isdigit() or len(text) > 3 or int(text) > 255:
        raise _errors.HostError(f"exec channel: the guest sent an invalid exit status {text[:20]!r}")
    return int(text)


def stop_application(state_dir: str, signum: int, timeout: float = 5.0) -> bool:
    """Ask the guest's init to pass SIGNUM to the application (a graceful stop): True once the
    agent confirmed, False when it cannot be asked (no channel, all ports busy, no answer)."""
    import select
    import time

    try:
        lock, sock = acquire_port(state_dir, timeout=1.0)
    except _errors.UruncError:
        return False
    try:
        os.write(sock, frame("K", str(signum).encode()))
        frames = Frames()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            data = os.read(sock, 4096)
            if not data:
                break
            for kind, payload in frames.feed(data):
                if kind == ord("X"):
                    return exit_status(payload) == 0
    except (OSError, _errors.UruncError):
        return False
    finally:
        os.close(sock)
        os.close(lock)
    return False


def acquire_port(state_dir: str, timeout: float = PORT_WAIT_SECONDS) -> tuple[int, int]:
    """(lock fd, connected socket fd) of a free port; waits while all are busy."""
    import _socket
    import fcntl
    import time

    deadline = time.monotonic() + timeout
    missing = 0
    while True:
        missing = 0
        for index in range(PORTS):
            path = socket_path(state_dir, index)
            if not os.path.exists(path):
                missing += 1
                continue
            lock = os.open(os.path.join(state_dir, f"exec-{index}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                           0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(lock)
                continue
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.connect(_short(path))
            except OSError as exc:
                sock.close()
                os.close(lock)
                raise _errors.HostError(f"cannot reach the exec channel {path}: {exc.strerror}") from None
            return lock, sock.detach()
        if missing == PORTS:
            raise _errors.NotSupported("this container has no exec channel (a linux guest on qemu has one)")
        if time.monotonic() > deadline:
            raise _errors.HostError(f"all {PORTS} exec channels stayed busy for {timeout:.0f} s")
        time.sleep(0.02)


def _short(path: str) -> str:
    """A Unix socket path within the 108 bytes bind/connect take: through /proc/self/fd."""
    if len(os.fsencode(path)) < 100:
        return path
    directory = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{directory}/{os.path.basename(path)}"  # the fd lives as long as the relay


def listen_all(state_dir: str, ports: int = PORTS) -> list[int]:
    """Bind every port's socket (as root, before the monitor runs): fds the monitor inherits."""
    from urunc.monitors import qmp

    return [qmp.listen(_short(socket_path(state_dir, i))) for i in range(ports)]
