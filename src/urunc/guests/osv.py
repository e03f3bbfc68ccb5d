"""OSv: loader options, then the program path and its arguments, in one command line.

``--ip=eth0,IP,MASK --defaultgw=GW --nameserver=DNS``, ``--env=K=V`` per
variable, then the program and its arguments. OSv's command-line parser
splits on blanks and on ``;`` / ``&`` (it runs several commands), and keeps a
double-quoted string (``\\"`` and ``\\\\`` escapes) as one word, so every token
holding anything but safe characters is double-quoted (the same encoder as
Unikraft's). A block image becomes OSv's first disk (``vblk0``), which its
loader mounts as the root filesystem (rofs, virtiofs or zfs, probed in turn,
so no ``--rootfs`` is forced); a mount point other than ``/`` is refused.
"""

from __future__ import annotations

from urunc import _errors
from urunc.guests import Guest
from urunc.guests.unikraft import quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan


class OSv(Guest):
    name = "osv"
    monitors = frozenset({"qemu", "firecracker"})
    storage = frozenset({"block"})
    default_memory_mib = 256

    def prepare(self, plan: Plan) -> Plan:
        if plan.block_mountpoint and plan.block_mountpoint != "/":
            raise _errors.PlanError(
                f"osv mounts its block device as the root filesystem, not at {plan.block_mountpoint}")
        return plan

    def cmdline(self, plan: Plan, net: NetInfo | None) -> str:
        words: list[str] = []
        if net is not None:
            words += [f"--ip=eth0,{net.ip},{net.mask}", f"--defaultgw={net.gateway}"]
            if net.dns:
                words.append(f"--nameserver={net.dns}")
        words += [quote(f"--env={e}") for e in plan.env]
        words += [quote(a) for a in plan.args]
        return " ".join(words)


GUEST = OSv()
