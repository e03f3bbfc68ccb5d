"""urunc pause ID / urunc resume ID: stop a running VM where it is, and let it go on.

QEMU is stopped through QMP (``stop``/``cont``: the vCPUs halt, the monitor
still answers); every other monitor through the cgroup freezer (see
host/freezer.py). ``state`` then says ``paused``. runc's containers go to runc.
"""

from __future__ import annotations

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc.host import freezer
    from urunc.oci.store import PAUSED, RUNNING

    command = ctx.command
    container = _common.ours_or_delegate(ctx, args, command)
    with container:
        record = container.load()
        status = container.status()
        if command == "pause":
            if status != RUNNING:
                raise _errors.WrongState(f"cannot pause container {container.id}: container not running "
                                         f"(it is {status})")
            plan = record.get("plan")
            monitor = plan.get("monitor") if isinstance(plan, dict) else None
            try:
                freezer.pause(container.dir, monitor if isinstance(monitor, str) else "", container.pid)
            except _errors.UruncError as exc:
                raise _errors.HostError(f"cannot pause container {container.id}: {exc}") from None
        else:
            if status != PAUSED:
                raise _errors.WrongState(f"cannot resume container {container.id}: container not paused "
                                         f"(it is {status})")
            try:
                freezer.resume(container.dir)
            except _errors.UruncError as exc:
                raise _errors.HostError(f"cannot resume container {container.id}: {exc}") from None
    return 0
