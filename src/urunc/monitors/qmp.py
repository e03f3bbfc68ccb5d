"""A minimal QMP client: connect, read the greeting, ``qmp_capabilities``, one command.

QEMU listens on ``<state dir>/qmp.sock`` (``-qmp unix:PATH,server=on,wait=off``).
Only ``kill`` talks to it, to ask for an ACPI power-down on SIGTERM; anything
unexpected (no socket, a dead QEMU, a slow answer), and a guest that has not
enabled its power button, is a ``QmpError`` and the caller falls back to the
plain signal at once.
"""

from __future__ import annotations

import os

from urunc import _errors, _jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SOCKET_NAME = "qmp.sock"
# sockaddr_un.sun_path holds 108 bytes with the terminating NUL; QEMU binds the path as given.
MAX_SOCKET_PATH = 107
TIMEOUT = 2.0
_MAX_REPLY = 1 << 20


class QmpError(_errors.HostError):
    pass


def socket_path(state_dir: str) -> str:
    """Where QEMU listens for this container, or "" when the path is too long to bind."""
    path = os.path.join(state_dir, SOCKET_NAME)
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else ""


def listen(path: str) -> int:
    """Bind and listen on PATH as the caller (root), return an inheritable fd for QEMU.

    ``_socket`` rather than ``socket``: the latter costs ~19 ms to import.
    """
    import _socket

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(4)
    except OSError as exc:
        sock.close()
        raise _errors.HostError(f"cannot listen on {path}: {exc.strerror}") from None
    fd: int = sock.detach()
    os.set_inheritable(fd, True)
    return fd


class Client:
    """One QMP session; use as a context manager."""

    __slots__ = ("_sock", "_buf", "path")

    def __init__(self, path: str, timeout: float = TIMEOUT) -> None:
        self.path = path
        self._buf = b""
        import socket  # ~19 ms: only when a monitor is really asked something, not to build argv

        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
            greeting = self._read()
            if "QMP" not in greeting:
                raise QmpError(f"no qmp greeting on {path}")
            self.execute("qmp_capabilities")
        except OSError as exc:
            self._sock.close()
            raise QmpError(f"qmp on {path}: {exc.strerror or exc}") from None
        except BaseException:
            self._sock.close()
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()

    def send_fd(self, name: str, fd: int) -> None:
        """``getfd``: FD passed to QEMU (SCM_RIGHTS) under NAME, for a later ``fd:NAME``."""
        self.execute("getfd", {"fdname": name}, fd=fd)

    def execute(self, command: str, arguments: dict[str, Any] | None = None, fd: int | None = None) -> Any:
        """Send one command and return its ``return`` value (events are skipped)."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        try:
            data = _jsonlite.dumps(message).encode() + b"\r\n"
            if fd is None:
                self._sock.sendall(data)
            else:
                import socket

                rights = fd.to_bytes(4, "little", signed=True)
                self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            while True:
                reply = self._read()
                if "return" in reply:
                    return reply["return"]
                if "error" in reply:
                    error = reply["error"]
                    desc = error.get("desc", error) if isinstance(error, dict) else error
                    raise QmpError(f"qmp {command} failed: {desc}")
        except OSError as exc:
            raise QmpError(f"qmp {command} on {self.path}: {exc.strerror or exc}") from None

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QmpError(f"qmp connection {self.path} closed")
            self._buf += chunk
            if len(self._buf) > _MAX_REPLY:
                raise QmpError(f"qmp reply on {self.path} too long")
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            value = _jsonlite.loads(line)
        except ValueError:
            raise QmpError(f"malformed qmp reply on {self.path}") from None
        if not isinstance(value, dict):
            raise QmpError(f"malformed qmp reply on {self.path}")
        return value


# PM1_EN's power-button enable bit (ACPI spec, "PM1 Event Grouping"): the OS sets it when it
# wants to hear the button; PM1_EN is the 16-bit register at the PM block's base + 2.
PM1_EN_OFFSET = 2
PWRBTN_EN = 0x0100


def powerdown(path: str, timeout: float = TIMEOUT) -> None:
    """Press the guest's ACPI power button; raises QmpError if QEMU did not accept it,
    or if the guest shows it will not hear it (then the caller signals at once
    instead of waiting out the grace period for nothing)."""
    with Client(path, timeout) as client:
        deaf = guest_ignores_power_button(client)
        if deaf:
            raise QmpError(f"the guest ignores the acpi power button: {deaf}")
        client.execute("system_powerdown")


def guest_ignores_power_button(client: Client) -> str:
    """Why the guest cannot hear a power-button press, or "" when it may.

    On ``pc`` and ``q35`` the OS enables the button in PM1_EN (PWRBTN_EN) before
    it can be told of a press; a guest that never did (the sample guest, most
    unikernels) would let the whole grace period run out. The register is read
    through QEMU's monitor (``i /h PORT``, an I/O port read with no side effect).
    On ``microvm`` the button exists only with ACPI on, and then nothing shows
    whether the guest listens: "" (press it and wait).
    """
    try:
        device = client.execute("qom-get", {"path": "/machine", "property": "acpi-device"})
    except QmpError:  # a machine without that link (microvm): is ACPI on at all?
        try:
            acpi = client.execute("qom-get", {"path": "/machine", "property": "acpi"})
        except QmpError:
            return ""
        return "the machine has no acpi" if acpi == "off" else ""
    if not isinstance(device, str) or not device:
        return ""
    try:
        base = client.execute("qom-get", {"path": device, "property": "pm_io_base"})
    except QmpError:
        return ""
    if not isinstance(base, int) or isinstance(base, bool) or not 0 <= base <= 0xFFFF - PM1_EN_OFFSET:
        return ""
    if base == 0:
        return "its firmware never mapped the acpi registers"
    port = base + PM1_EN_OFFSET
    reply = client.execute("human-monitor-command", {"command-line": f"i /h {port:#x}"})
    # "portw[0x0602] = 0x0100\r\n"
    value = reply.rpartition("=")[2].strip() if isinstance(reply, str) else ""
    try:
        enabled = int(value, 16)
    except ValueError:
        return ""
    if enabled == 0xFFFF:  # nothing answers the port: the firmware has not enabled the PM block yet
        return f"no acpi registers at port {port:#x} yet"
    if enabled & PWRBTN_EN:
        return ""
    return f"pm1_en at port {port:#x} is {enabled:#06x} (power button not enabled)"
