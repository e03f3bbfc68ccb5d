"""urunc start ID"""

from __future__ import annotations

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle

    lifecycle.start(ctx, _common.ours_or_delegate(ctx, args, "start"))
    return 0
