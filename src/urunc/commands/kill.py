"""urunc kill [--all] ID [SIGNAL]: signal by name or number, SIGTERM by default."""

from __future__ import annotations

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle
    from urunc.host.proc import parse_signal

    container = _common.ours_or_delegate(ctx, args, "kill")
    signal = parse_signal(args.positional[1]) if len(args.positional) > 1 else 15
    lifecycle.kill(container, signal, args.flag("all"))
    return 0
