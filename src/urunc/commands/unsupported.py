"""update, checkpoint, restore, events, spec.

runc's containers get runc's behaviour; urunc implements none of these for a
unikernel container (a VM's resources and memory are not a process tree's), so
they fail in one line.
"""

from __future__ import annotations

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    if ctx.command == "spec":
        _common.delegate(ctx)
    container = _common.ours_or_delegate(ctx, args, ctx.command)
    raise _errors.NotSupported(f"{ctx.command} is not supported for unikernel containers (container {container.id})")
