"""urunc create --bundle B --pid-file P [--console-socket S] ID"""

from __future__ import annotations

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import init, lifecycle

    handle = init.take_prewarmed()
    try:
        container_id, spec, ucfg = _common.unikernel_bundle_or_delegate(
            ctx, args, "create", before_delegate=handle.discard if handle else None)
        lifecycle.create(ctx, container_id, spec, ucfg, args.value("pid-file"), args.value("console-socket"),
                         handle)
    finally:
        if handle is not None:
            handle.discard()
    return 0
