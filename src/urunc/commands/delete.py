"""urunc delete [--force] ID"""

from __future__ import annotations

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import _errors, lifecycle

    try:
        container = _common.ours_or_delegate(ctx, args, "delete")
    except _errors.NotFound:
        if args.flag("force"):
            return 0  # nothing to delete: runc's `delete --force` succeeds too
        raise
    lifecycle.delete(container, args.flag("force"))
    return 0
