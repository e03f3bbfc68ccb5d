"""urunc ps [--format table|json] ID [PS-ARGS...]: the container's host processes, as runc lists them.

They are the processes in the monitor's cgroup (the one ``pause`` freezes: v1's
freezer hierarchy, or the unified one): the monitor, and the relays of
``urunc exec``, which join it. ``json`` prints their PIDs; ``table`` runs
``ps`` (``-ef`` unless other arguments follow the ID) and keeps its header and
the lines of those PIDs, as runc does. A stopped container has none.
"""

from __future__ import annotations

import sys

from urunc import _errors
from urunc.commands import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def pids_of(container_pid: int) -> list[int]:
    """The processes in CONTAINER_PID's cgroup (just it, when it has no cgroup of its own)."""
    from urunc.host import freezer

    try:
        _version, directory = freezer.monitor_cgroup(container_pid)
    except _errors.UruncError:
        directory = ""
    found = set(freezer.members(directory)) if directory else set()
    found.add(container_pid)
    return sorted(found)


def run(ctx: Context, args: Args) -> int:
    from urunc.oci.store import CREATED, PAUSED, RUNNING

    container = _common.ours_or_delegate(ctx, args, "ps")
    container.load()
    pids = pids_of(container.pid) if container.status() in (CREATED, RUNNING, PAUSED) else []
    fmt = args.value("format", "table")
    if fmt == "json":
        sys.stdout.write("[" + ",".join(str(p) for p in pids) + "]\n")
    elif fmt == "table":
        sys.stdout.write(_table(pids, args.positional[1:] or ["-ef"]))
    else:
        raise _errors.UsageError(f"invalid format {fmt!r}")
    return 0


def _table(pids: list[int], ps_args: list[str]) -> str:
    """``ps PS_ARGS``' header and the lines of PIDS (runc's ps: the PID column found by name)."""
    import subprocess

    try:
        result = subprocess.run(["ps", *ps_args], capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _errors.HostError(f"cannot run ps: {exc}") from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise _errors.HostError(f"ps {' '.join(ps_args)} failed: {detail[0] if detail else result.returncode}")
    lines = result.stdout.decode(errors="replace").splitlines()
    if not lines:
        raise _errors.HostError("ps printed nothing")
    header = lines[0].split()
    if "PID" not in header:
        raise _errors.HostError("ps output has no PID column (ps arguments must keep it)")
    column = header.index("PID")
    wanted = {str(p) for p in pids}
    kept = [line for line in lines[1:] if len(line.split()) > column and line.split()[column] in wanted]
    return "\n".join([lines[0], *kept]) + "\n"
