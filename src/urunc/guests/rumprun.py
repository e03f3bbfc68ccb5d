"""Rumprun on Solo5: one JSON object as the only argument after the kernel.

``{"cmdline": "...", "env": "K=V", ..., "net": {...}, "blk": {...}}``, keys in
that order; ``env`` repeats once per variable (Rumprun's config reader takes
duplicate keys, so this is not strict JSON). Rumprun splits ``cmdline`` with
``rumprun_parseargs``: blanks (space, TAB, newline) separate arguments, a
backslash takes the next byte literally, quotes group; so each argument is
written with a backslash before every such byte, and an empty one as ``""``.

Network: the guest takes eth0's address on ``ukvmif0`` with eth0's prefix;
when the gateway lies outside that prefix (point-to-point CNI setups) the
mask widens to 1, as the Go urunc always does, because NetBSD refuses an
off-link default route. Block: the disk attaches to the manifest's
BLOCK_BASIC name and mounts at ``blkMntPoint`` (required with a block).
"""

from __future__ import annotations

from urunc import _errors, _jsonlite
from urunc.guests import Guest
from urunc.guests.solo5 import resolve_devices

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan

_SPECIAL = frozenset(" \t\n\\\"'")


def quote(arg: str) -> str:
    """One argument as ``rumprun_parseargs`` reads it back."""
    if not arg:
        return '""'
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in arg)


def _ip_int(ip: str) -> int:
    value = 0
    for part in ip.split("."):
        value = (value << 8) | int(part)
    return value


def route_prefix(net: NetInfo) -> int:
    """eth0's prefix, or 1 when the gateway is off-link for it."""
    try:
        shift = 32 - net.prefix
        if _ip_int(net.ip) >> shift == _ip_int(net.gateway) >> shift:
            return int(net.prefix)
    except ValueError:
        pass
    return 1


class Rumprun(Guest):
    name = "rumprun"
    monitors = frozenset({"hvt", "spt"})
    default_monitor = "hvt"
    storage = frozenset({"block"})
    default_memory_mib = 256

    def prepare(self, plan: Plan) -> Plan:
        if plan.block and not plan.block_mountpoint:
            raise _errors.PlanError(
                "rumprun mounts its block device at com.urunc.unikernel.blkMntPoint, which is not set")
        return resolve_devices(plan, self.name)

    def config(self, plan: Plan, net: NetInfo | None) -> str:
        s = _jsonlite.dumps
        parts = [f'"cmdline":{s(" ".join(quote(a) for a in plan.args))}']
        parts += [f'"env":{s(e)}' for e in plan.env]
        if net is not None:
            fields = {"if": "ukvmif0", "cloner": "True", "type": "inet", "method": "static",
                      "addr": net.ip, "mask": str(route_prefix(net)), "gw": net.gateway}
            parts.append('"net":{' + ",".join(f"{s(k)}:{s(v)}" for k, v in fields.items()) + "}")
        if plan.block:
            fields = {"source": "etfs", "path": "/dev/ld0a", "fstype": "blk",
                      "mountpoint": plan.block_mountpoint}
            parts.append('"blk":{' + ",".join(f"{s(k)}:{s(v)}" for k, v in fields.items()) + "}")
        return "{" + ",".join(parts) + "}"

    def tender_args(self, plan: Plan, net: NetInfo | None) -> list[str]:
        return [self.config(plan, net)]


GUEST = Rumprun()
