"""urunc create --bundle B --pid-file P [--console-socket S] ID"""

from __future__ import annotations

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle

    container_id, spec, ucfg = _common.unikernel_bundle_or_delegate(ctx, args, "create")
    lifecycle.create(ctx, container_id, spec, ucfg, args.value("pid-file"), args.value("console-socket"))
    return 0
