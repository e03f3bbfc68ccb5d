"""urunc start ID

The C front end (src/front/urunc.c) runs ``start`` itself and hands any outcome but success
here, on a pipe named by URUNC_FRONT_START: the init's message ("message"), an init that
died first ("exited"), or no answer within the start timeout ("timeout"). It is recorded
and reported as ``lifecycle.start`` does it, so the words and the log line are Python's.
"""

from __future__ import annotations

import os

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context
    from urunc.oci.store import Container

FRONT_START_ENV = "URUNC_FRONT_START"


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle

    outcome = _front_outcome()
    container = _common.ours_or_delegate(ctx, args, "start")
    try:
        if outcome is None:
            lifecycle.start(ctx, container)
        else:
            _finish(container, *outcome)
    except OSError as exc:  # a full disk while saving the state, say: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        raise _errors.HostError(f"cannot start container {container.id}: {exc.strerror or exc}{where}") from None
    return 0


def _front_outcome() -> tuple[str, bytes] | None:
    """(kind, message) the front end handed over, or None (a plain ``start``)."""
    value = os.environ.pop(FRONT_START_ENV, None)
    if value is None or not value.isdigit():
        return None
    fd = int(value)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        os.close(fd)
    except OSError:
        return None
    kind, _, message = b"".join(chunks).partition(b"\n")
    if kind not in (b"message", b"exited", b"timeout"):
        return None
    return kind.decode(), message


def _finish(container: Container, kind: str, message: bytes) -> None:
    """What ``lifecycle.start`` does after its wait, for the outcome the front end waited for."""
    from urunc import lifecycle
    from urunc.oci import store

    if kind == "timeout":
        raise _errors.HostError(f"container {container.id} did not start within {lifecycle.START_TIMEOUT:.0f}s")
    try:
        with container:
            container.load()
            container.record["status"] = store.STOPPED
            container.save()
    except _errors.UruncError:
        pass  # gone or damaged meanwhile: what the init said is still the answer
    if message:
        raise _errors.HostError(message.decode(errors="replace"))
    raise _errors.HostError(f"container {container.id} init exited before start")
