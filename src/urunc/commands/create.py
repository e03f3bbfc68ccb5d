"""urunc create --bundle B --pid-file P [--console-socket S] ID"""

from __future__ import annotations

import os

from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import lifecycle
    from urunc.oci import spec as _spec
    from urunc.oci.store import validate_id
    from urunc.unikernel import config as _ucfg

    container_id = _common.container_id(args, "create")
    validate_id(container_id)
    spec = _spec.load(args.value("bundle") or os.getcwd())
    ucfg = _ucfg.detect(spec.annotations, spec.rootfs)
    if ucfg is None:
        _common.delegate(ctx)
    lifecycle.create(ctx, container_id, spec, ucfg, args.value("pid-file"), args.value("console-socket"))
    return 0
