"""urunc run [--detach] --bundle B [--pid-file P] [--console-socket S] ID: create, start, wait, delete."""

from __future__ import annotations

import os

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle
    from urunc.host import syscalls
    from urunc.oci.store import Container

    container_id, spec, ucfg = _common.unikernel_bundle_or_delegate(ctx, args, "run")
    detach = args.flag("detach")
    if not detach:
        # The init (reparented when its intermediate parent exits) must come back to us.
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    pid = lifecycle.create(ctx, container_id, spec, ucfg, args.value("pid-file"), args.value("console-socket"))
    container = Container(ctx.root, container_id)
    try:
        lifecycle.start(ctx, container)
    except BaseException:
        lifecycle.delete(container, force=True)
        raise
    if detach:
        return 0
    status = 0
    while True:
        try:
            waited, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if waited == pid:
            break
    lifecycle.delete(container, force=True)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
