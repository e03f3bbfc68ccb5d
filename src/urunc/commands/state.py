"""urunc state ID: the OCI state as JSON."""

from __future__ import annotations

import sys

from urunc import _jsonlite
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    container = _common.ours_or_delegate(ctx, args, "state")
    container.load()
    sys.stdout.write(_jsonlite.dumps(container.oci_state(), indent=2) + "\n")
    return 0
