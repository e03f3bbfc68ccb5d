"""urunc list [--format table|json] [--quiet]: urunc's containers and runc's under the same root."""

from __future__ import annotations

import subprocess
import sys

from urunc import OCI_VERSION, _errors, _jsonlite
from urunc.commands import _common

DAMAGED = "damaged"  # a record that cannot be read: not an OCI status, and no container should have it

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc.oci import store

    states: list[dict[str, Any]] = []
    for container_id in store.list_ids(ctx.root):
        try:
            container = store.Container(ctx.root, container_id)
        except _errors.UruncError:
            continue
        kind = container.kind()
        if kind == "urunc":
            try:
                container.load()
            except _errors.NotFound:
                continue  # deleted meanwhile
            except _errors.UruncError as exc:
                # Listed, not hidden: its init and cgroup are still there for `delete --force`
                from urunc import _log

                _log.warning(f"{exc}; `delete --force {container_id}` removes it")
                states.append({"ociVersion": OCI_VERSION, "id": container_id, "status": DAMAGED, "pid": 0,
                               "bundle": "", "rootfs": "", "created": "", "annotations": {}, "owner": ""})
                continue
            states.append(container.oci_state())
        elif kind == "runc":
            result = subprocess.run([_common.find_runc(), "--root", ctx.root, "state", container_id],
                                    capture_output=True, check=False)
            if result.returncode == 0:
                try:
                    states.append(_jsonlite.loads(result.stdout))
                except ValueError:
                    pass
    fmt = args.value("format", "table")
    if args.flag("quiet"):
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif fmt == "json":
        sys.stdout.write(_jsonlite.dumps(states) + "\n")
    elif fmt == "table":
        lines = ["ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER"]
        lines += [f"{s['id']}\t{s['pid']}\t{s['status']}\t{s['bundle']}\t{s['created']}\t{s.get('owner', '')}"
                  for s in states]
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        raise _errors.UsageError(f"invalid format {fmt!r}")
    return 0
