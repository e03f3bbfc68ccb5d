"""urunc start ID"""

from __future__ import annotations

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle

    container = _common.ours_or_delegate(ctx, args, "start")
    try:
        lifecycle.start(ctx, container)
    except OSError as exc:  # a full disk while saving the state, say: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        raise _errors.HostError(f"cannot start container {container.id}: {exc.strerror or exc}{where}") from None
    return 0
