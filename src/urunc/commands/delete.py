"""urunc delete [--force] ID"""

from __future__ import annotations

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle

    lifecycle.delete(_common.ours_or_delegate(ctx, args, "delete"), args.flag("force"))
    return 0
