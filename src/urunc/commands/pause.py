"""urunc pause ID / urunc resume ID: stop a running VM where it is, and let it go on.

A monitor that can stop its VM does (QEMU through QMP ``stop``/``cont``: the
vCPUs halt, the monitor still answers); every other one is frozen through the
cgroup freezer (host/freezer.py). ``state`` then says ``paused``. runc's
containers go to runc.
"""

from __future__ import annotations

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import monitors
    from urunc.host import freezer
    from urunc.oci.store import PAUSED, RUNNING

    command = ctx.command
    container = _common.ours_or_delegate(ctx, args, command)
    with container:
        record = container.load()
        status = container.status()
        plan = record.get("plan")
        name = plan.get("monitor") if isinstance(plan, dict) else None
        monitor = monitors.get(name) if isinstance(name, str) else monitors.Monitor()
        if command == "pause":
            if status != RUNNING:
                raise _errors.WrongState(f"cannot pause container {container.id}: container not running "
                                         f"(it is {status})")
            try:
                freezer.pause(container.dir, container.pid, lambda: monitor.pause_vm(container.dir))
            except _errors.UruncError as exc:
                raise _errors.HostError(f"cannot pause container {container.id}: {exc}") from None
        else:
            if status != PAUSED:
                raise _errors.WrongState(f"cannot resume container {container.id}: container not paused "
                                         f"(it is {status})")
            try:
                freezer.resume(container.dir, lambda: monitor.resume_vm(container.dir))
            except _errors.UruncError as exc:
                raise _errors.HostError(f"cannot resume container {container.id}: {exc}") from None
    return 0
