"""urunc ps [--format table|json] ID: the container's processes (the monitor, if it runs)."""

from __future__ import annotations

import sys

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc.oci.store import CREATED, RUNNING

    container = _common.ours_or_delegate(ctx, args, "ps")
    container.load()
    pids = [container.pid] if container.status() in (CREATED, RUNNING) else []
    fmt = args.value("format", "table")
    if fmt == "json":
        sys.stdout.write("[" + ",".join(str(p) for p in pids) + "]\n")
    elif fmt == "table":
        sys.stdout.write("PID\n" + "".join(f"{p}\n" for p in pids))
    else:
        raise _errors.UsageError(f"invalid format {fmt!r}")
    return 0
